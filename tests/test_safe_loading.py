"""Safe loading (DESIGN §3): no pickle is ever executed from a file, and no model code is downloaded and run.

Two kinds of test: a scan of the source (every `torch.load` passes ``weights_only=True``; nothing calls
`pickle.load(s)`, `numpy.load(allow_pickle=True)` or passes ``trust_remote_code=True``), and behaviour: a pickle that
would run code is refused by every loader that reads .pt files, and the code does not run.
"""

import ast
import pickle
from pathlib import Path

import pytest
import torch

from seer.errors import SeerError

SRC = Path(__file__).resolve().parents[1] / "src" / "seer"
FILES = sorted(SRC.rglob("*.py"))


def calls(tree):
    """(dotted callee name, ast.Call) for every call in a module, e.g. ("torch.load", node)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            parts, func = [], node.func
            while isinstance(func, ast.Attribute):
                parts.append(func.attr)
                func = func.value
            if isinstance(func, ast.Name):
                parts.append(func.id)
            yield ".".join(reversed(parts)), node


def keyword(node, name):
    return next((k.value for k in node.keywords if k.arg == name), None)


def is_true(value):
    return isinstance(value, ast.Constant) and value.value is True


@pytest.fixture(scope="module")
def source_calls():
    return [(path.relative_to(SRC), node.lineno, name, node)
            for path in FILES for name, node in calls(ast.parse(path.read_text(encoding="utf-8")))]  # fmt: skip


def test_the_scan_sees_the_loaders_it_checks(source_calls):
    # Guards the scan itself: seer does call torch.load (checkpoints, Harmon's raw files) and from_pretrained.
    names = {name for _, _, name, _ in source_calls}
    assert "torch.load" in names and any(n.endswith("from_pretrained") for n in names)


def test_every_torch_load_is_weights_only(source_calls):
    loads = [(p, line, node) for p, line, name, node in source_calls if name == "torch.load"]
    assert [f"{p}:{line}" for p, line, node in loads if not is_true(keyword(node, "weights_only"))] == []


def test_no_pickle_or_numpy_pickle_loading(source_calls):
    bad = [f"{p}:{line} {name}" for p, line, name, node in source_calls
           if name in ("pickle.load", "pickle.loads", "dill.load", "joblib.load")
           or (name in ("np.load", "numpy.load") and is_true(keyword(node, "allow_pickle")))]  # fmt: skip
    assert bad == []


def test_trust_remote_code_is_never_switched_on_by_seer(source_calls):
    # A call may pass the user's own option through (a variable), never a literal True.
    bad = [f"{p}:{line} {name}" for p, line, name, node in source_calls if is_true(keyword(node, "trust_remote_code"))]
    assert bad == []


class RunsCode:
    """Unpickling this creates `marker`: the test for "the pickle was executed"."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def malicious_files(tmp_path):
    """A plain pickle and a torch.save zip, both holding an object whose unpickling runs code."""
    plain = tmp_path / "plain.pt"
    with plain.open("wb") as f:
        pickle.dump({"state": RunsCode(tmp_path / "ran")}, f)
    zipped = tmp_path / "zipped.pt"
    torch.save({"state": RunsCode(tmp_path / "ran")}, zipped)
    return [plain, zipped]


def test_checkpoint_loader_refuses_a_pickle_that_runs_code(tmp_path):
    from seer.train.checkpoint import _load

    for file in malicious_files(tmp_path):
        with pytest.raises(SeerError, match=f"{file.name}: cannot read this checkpoint file"):
            _load(file)
    assert not (tmp_path / "ran").exists()


def test_harmon_raw_file_loader_refuses_a_pickle_that_runs_code(tmp_path):
    from seer.models.harmon import _torch_load

    for file in malicious_files(tmp_path):
        with pytest.raises(SeerError, match="weights_only=True"):
            _torch_load(file)
    assert not (tmp_path / "ran").exists()


def test_janus_loader_reads_safetensors_only(tmp_path, small_janus):
    # A directory whose weights are a pickle (pytorch_model.bin) is refused, not loaded.
    from seer.models.janus import JanusUMM

    small_janus().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save({"x": RunsCode(tmp_path / "ran")}, tmp_path / "pytorch_model.bin")
    with pytest.raises(SeerError, match="only safetensors are loaded"):
        JanusUMM.from_pretrained(tmp_path)
    assert not (tmp_path / "ran").exists()
