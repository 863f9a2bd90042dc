"""Bad input, table-driven, through the real entry point `seer.cli.main`: every case must end with a non-zero exit,
exactly one line on stderr (``error: <where>: <what>``) that names the file or key at fault, no traceback, and every
file that existed before the command byte-identical afterwards (a failed run damages nothing already written).

The cases cover recipes and command-line values, datasets, output directories, model and training checkpoints,
adapters and images (docs/reliability.md lists them with what else tests each area). Each case builds its inputs
under ``tmp_path`` from a few shared, module-scoped artefacts: a small random-weight Janus saved with
`save_pretrained`, LoRA adapters of it and of a differently shaped model, and a `seer pretrain` checkpoint.
Cases fail before any training step, so the whole table runs in seconds.
"""

import json
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_model

from seer.cli import main
from seer.config import save_config
from seer.data.build import generate_sets
from seer.data.vie import write_vie
from seer.models.adapters import EVALUATOR, REPROMPTER
from seer.models.janus import JanusShape, JanusUMM
from seer.train import checkpoint as ckpt
from seer.train.pretrain import PretrainArgs
from seer.train.rlvr import RLVRArgs
from seer.worlds.shapeworld.corpus import corpus_words

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN_RECIPE = ROOT / "recipes" / "pretrain" / "debug_cpu.yaml"
ITEMS = generate_sets(0, 25, 1)[0][:6]
PROGRESS = re.compile(r"^[^:]*: +\d+%\|.*\| \d+/\d+ \[")  # a tqdm bar: "Loading weights:  50%|###  | 1/2 [..."


# ---- shared artefacts (built once) ----


def _other_janus():
    """A Janus of another shape (hidden size 32): its adapters do not fit the small model."""
    shape = JanusShape(
        hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, vocab_size=None, max_position_embeddings=512,
        image_size=32, patch_size=4,
        vision=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2.0),
        vq=dict(embed_dim=8, num_embeddings=64, latent_channels=32, base_channels=32, channel_multiplier=[1, 1, 2],
                num_res_blocks=1),
    )  # fmt: skip
    return JanusUMM.from_shape(shape, seed=0, words=corpus_words())


@pytest.fixture(scope="module")
def art(tmp_path_factory, small_janus):
    """Read-only artefacts: model/, adapters good/ and foreign/ (another base), pretrain checkpoint files."""
    root = tmp_path_factory.mktemp("artefacts")
    umm = small_janus()
    umm.save_pretrained(root / "model")
    umm.add_adapter(REPROMPTER)
    umm.save_adapter(REPROMPTER, root / "good")
    other = _other_janus()
    other.add_adapter(REPROMPTER)
    other.save_adapter(REPROMPTER, root / "foreign")
    save_model(umm.janus, str(root / "small.safetensors"))  # the wrong tensor shapes for a shapeworld-tiny run
    tiny = JanusUMM.from_shape("shapeworld-tiny", seed=0, words=corpus_words())  # what `seer pretrain` trains
    save_model(tiny.janus, str(root / "tiny.safetensors"))
    return root


def tree(root):
    """{relative path: bytes} of every file under root."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def vie_file(path, mutate=None):
    """A valid VIE file of 6 items; `mutate(lines)` edits its lines (JSON strings) before writing."""
    write_vie(ITEMS, path)
    if mutate is not None:
        lines = path.read_text(encoding="utf-8").splitlines()
        path.write_text("\n".join(mutate(lines)) + "\n", encoding="utf-8")
    return path


def drop_field(line, name):
    record = json.loads(line)
    del record[name]
    return json.dumps(record)


def rlvr(t, *extra, model=None):
    """A `seer rlvr` invocation on the small model that would train if its inputs were good."""
    recipe = write(t.dir / "rlvr.yaml", "heldout_items: 0\ncurriculum_threshold: null\n")
    return ["rlvr", "--config", str(recipe), "--model", str(model or t.art / "model"), "--output_dir",
            str(t.dir / "run"), "--pair_generator", "renderer", "--max_steps", "1", *extra]  # fmt: skip


def rlmt_evaluator(t, adapter):
    """An RLVR run directory on the small model whose evaluator/ is a copy of `adapter`."""
    run = t.dir / "rlvr"
    save_config(run, RLVRArgs(model=str(t.art / "model"), output_dir=str(run)))
    copy(adapter, run / EVALUATOR)
    return run


def rlmt(t, evaluator, *extra):
    return ["rlmt", "--evaluator", str(evaluator), "--output_dir", str(t.dir / "rlmt"), "--generator", "renderer",
            "--max_steps", "1", *extra]  # fmt: skip


def reprompt(t, adapter):
    return ["reprompt", "--adapter", str(adapter), "--model", str(t.art / "model"), "--prompt", "a", "--instruction",
            "b", "--out", str(t.dir / "out.png")]  # fmt: skip


def pretrain_run(t, corrupt, weights="tiny.safetensors"):
    """A `seer pretrain` output dir with one complete checkpoint (as a killed run leaves it), then `corrupt` it."""
    out = t.dir / "pretrain"
    args = PretrainArgs(output_dir=str(out), **yaml.safe_load(PRETRAIN_RECIPE.read_text()))
    save_config(out, args)
    folder = out / "checkpoints" / ckpt.checkpoint_name(1)
    folder.mkdir(parents=True)
    shutil.copy(t.art / weights, folder / "model.safetensors")
    for name in ("optimizer.pt", "scheduler.pt"):
        torch.save({"state": {}, "param_groups": []}, folder / name)
    (folder / ckpt.STATE_FILE).write_text(json.dumps({"step": 1, "stage": "vq", "stage_step": 1}))
    corrupt(folder)
    return ["pretrain", "--config", str(out / "config.yaml"), "--resume"]


class Evil:
    """Unpickling this runs code (it creates `marker`): torch.load(weights_only=True) must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def evil_optimizer(folder):
    # the marker goes beside the case's scratch directory: <tmp_path>/pickle-ran
    with (folder / "optimizer.pt").open("wb") as f:
        pickle.dump(Evil(folder.parents[3] / "pickle-ran"), f)


# case name -> builder(t) returning (argv, text the one-line error must contain). `t.dir` is the case's scratch
# directory (snapshotted before the command runs), `t.art` the shared artefacts.
CASES = {
    # recipes and command-line values
    "unknown command": lambda t: (["frobnicate"], "unknown command 'frobnicate'"),
    "recipe: unknown key": lambda t: (
        ["rlvr", "--config", str(write(t.dir / "r.yaml", "num_generatoins: 8\n"))],
        "r.yaml: unknown key 'num_generatoins'",
    ),
    "recipe: not YAML": lambda t: (
        ["rlvr", "--config", str(write(t.dir / "r.yaml", "lora_r: [1, 2\n"))], "r.yaml: not valid YAML"
    ),
    "recipe: wrong value type": lambda t: (
        ["rlmt", "--config", str(write(t.dir / "r.yaml", "num_generations: eight\n"))],
        "r.yaml: key 'num_generations': expected an integer",
    ),
    "recipe: file missing": lambda t: (["pretrain", "--config", str(t.dir / "nope.yaml")], "nope.yaml: recipe file"),
    "negative group size": lambda t: (
        ["rlvr", "--num_generations", "-4"], "num_generations: expected an integer >= 2"
    ),
    "unknown backend": lambda t: (["rlmt", "--backend", "gpt5"], "--backend"),
    "non-positive learning rate": lambda t: (["rlmt", "--learning_rate", "0"], "learning_rate: expected > 0"),
    "batch smaller than the task mix": lambda t: (
        ["pretrain", "--output_dir", str(t.dir / "p"), "--batch_size", "2"], "batch_size: expected at least"
    ),
    "unknown corpus version": lambda t: (
        ["pretrain", "--output_dir", str(t.dir / "p"), "--corpus", "run99"], "corpus: expected one of ['run19'"
    ),
    "unknown model shape": lambda t: (
        ["rlvr", "--model_shape", "huge", "--output_dir", str(t.dir / "run")], "model shape 'huge'"
    ),
    # output directories
    "output_dir not empty": lambda t: (
        [*rlvr(t), "--train_file", str(vie_file(t.dir / "run" / "train.jsonl"))], "run: output_dir is not empty"
    ),
    "output_dir is a file": lambda t: (
        ["pretrain", "--output_dir", str(write(t.dir / "p", "x"))], "p: output_dir exists and is not"
    ),
    "resume without a complete checkpoint": lambda t: (
        (write(t.dir / "run" / "checkpoint-3" / "trainer_state.json", "{}"), [*rlvr(t), "--resume"])[1],
        "no complete checkpoint",
    ),
    # datasets
    "empty dataset": lambda t: ([*rlvr(t), "--train_file", str(write(t.dir / "empty.jsonl", ""))], "empty.jsonl"),
    "dataset: line not JSON": lambda t: (
        [*rlvr(t), "--train_file", str(vie_file(t.dir / "d.jsonl", lambda ls: [ls[0], ls[1][:-5], *ls[2:]]))],
        "d.jsonl:2",
    ),
    "dataset: field missing": lambda t: (
        rlmt(t, rlmt_evaluator(t, t.art / "good"), "--train_file",
             str(vie_file(t.dir / "d.jsonl", lambda ls: [*ls[:3], drop_field(ls[3], "instruction"), *ls[4:]]))),
        "d.jsonl:4: field 'instruction'",
    ),  # fmt: skip
    "dataset: file missing": lambda t: ([*rlvr(t), "--train_file", str(t.dir / "nope.jsonl")], "nope.jsonl"),
    "dataset: not UTF-8": lambda t: (
        [*rlvr(t), "--train_file", str((t.dir / "d.jsonl", (t.dir / "d.jsonl").write_bytes(b"\xff\xfe{"))[0])],
        "d.jsonl:1",
    ),
    # model checkpoints
    "model: directory missing": lambda t: (rlvr(t, model=t.dir / "nope"), "nope"),
    "model: truncated safetensors": lambda t: (
        (m := copy(t.art / "model", t.dir / "m"), truncate(m / "model.safetensors"),
         rlvr(t, model=m))[2],
        "model.safetensors",
    ),  # fmt: skip
    "model: config.json not JSON": lambda t: (
        (m := copy(t.art / "model", t.dir / "m"), write(m / "config.json", "{"),
         rlvr(t, model=m))[2],
        "config.json",
    ),  # fmt: skip
    # training checkpoints (seer pretrain --resume)
    "checkpoint: tensor of the wrong shape": lambda t: (
        pretrain_run(t, lambda f: None, weights="small.safetensors"), "model.safetensors: tensor"
    ),
    "checkpoint: another run's optimizer": lambda t: (pretrain_run(t, lambda f: None), "optimizer.pt: does not fit"),
    "checkpoint: truncated safetensors": lambda t: (
        pretrain_run(t, lambda f: truncate(f / "model.safetensors")), "model.safetensors"
    ),
    "checkpoint: optimizer file not a torch file": lambda t: (
        pretrain_run(t, lambda f: (f / "optimizer.pt").write_bytes(b"garbage")), "optimizer.pt"
    ),
    "checkpoint: pickle with code": lambda t: (pretrain_run(t, evil_optimizer), "optimizer.pt"),
    # adapters
    "adapter: truncated safetensors": lambda t: (
        reprompt(t, (a := copy(t.art / "good", t.dir / "a"), truncate(a / "adapter_model.safetensors"), a)[2]),
        "adapter_model.safetensors",
    ),
    "adapter: for another base model": lambda t: (reprompt(t, copy(t.art / "foreign", t.dir / "a")), "has shape"),
    "adapter: config not JSON": lambda t: (
        reprompt(t, (a := copy(t.art / "good", t.dir / "a"), write(a / "adapter_config.json", "{"), a)[2]),
        "adapter_config.json",
    ),
    "evaluator adapter for another base model": lambda t: (
        rlmt(t, rlmt_evaluator(t, t.art / "foreign")), "has shape"
    ),
}


class Scratch:
    def __init__(self, directory, artefacts):
        self.dir, self.art = directory, artefacts


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_non_zero_and_damages_nothing(case, tmp_path, art, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything written to a relative default path lands here, and is checked
    (tmp_path / "case").mkdir()
    argv, needle = CASES[case](Scratch(tmp_path / "case", art))
    before = tree(tmp_path)
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    # Progress bars (transformers' "Loading weights" on stderr) are not error output; everything else is.
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and not PROGRESS.search(line)]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
    after = tree(tmp_path)
    assert {k: after.get(k) for k in before} == before  # every file that was there is untouched
    assert not (tmp_path / "pickle-ran").exists()  # no pickle was ever executed

