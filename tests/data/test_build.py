"""`seer data`: the built sets have the paper's sizes, never overlap, are deterministic, and a failure leaves no
partial output; the validate mode reports a file's problems."""

import json
import os

import pytest

from seer.data import build
from seer.data.build import DataArgs, build_vie_sets, derive_eval_seed, main
from seer.data.vie import load_vie
from seer.errors import SeerError

CATEGORIES = ("palette", "atmosphere", "transformation", "quantity", "composition", "compound")


@pytest.fixture(scope="module")
def default_sets(tmp_path_factory):
    out = tmp_path_factory.mktemp("vie")
    counts = build_vie_sets(out)
    return counts, load_vie(out / "train.jsonl"), load_vie(out / "eval.jsonl"), out


def test_default_sizes_are_the_papers(default_sets):
    counts, train, eval_items, _ = default_sets
    # 6 categories x 2 difficulties x split "id" x 25 = 300, i.e. 50 per category
    assert counts["train"] == len(train) == 300
    for category in CATEGORIES:
        in_category = [it for it in train if it.category == category]
        assert len(in_category) == 50
        assert sum(it.difficulty == "simple" for it in in_category) == 25
    assert {it.split for it in train} == {"id"}
    # 6 categories x 2 difficulties x 2 splits x 25 = 600
    assert counts["eval"] == len(eval_items) == 600
    cells = {(it.category, it.difficulty, it.split) for it in eval_items}
    assert cells == {(c, d, s) for c in CATEGORIES for d in ("simple", "hard") for s in ("id", "ood")}


def test_no_train_eval_overlap(default_sets):
    _, train, eval_items, _ = default_sets
    train_pairs = {(it.prompt, it.instruction) for it in train}
    eval_pairs = [(it.prompt, it.instruction) for it in eval_items]
    assert not train_pairs & set(eval_pairs)
    assert len(set(eval_pairs)) == len(eval_pairs)
    assert not {it.id for it in train} & {it.id for it in eval_items}


def test_datasets_reads_the_built_files(default_sets, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    _, train, eval_items, out = default_sets
    for file_name, items in (("train.jsonl", train), ("eval.jsonl", eval_items)):
        files = str(out / file_name)
        ds = datasets.load_dataset("json", data_files=files, split="train", cache_dir=str(tmp_path / "cache"))
        assert ds["id"] == [it.id for it in items]
        # every spec comes back exactly: Arrow infers one schema for the whole file, and nothing is padded
        assert ds["spec"] == [it.spec for it in items]


def test_eval_seed_differs_from_train_seed():
    assert all(derive_eval_seed(s) != s for s in range(100))
    assert len({derive_eval_seed(s) for s in range(100)}) == 100


def _bytes(out):
    return (out / "train.jsonl").read_bytes(), (out / "eval.jsonl").read_bytes()


def test_same_seed_same_bytes_different_seed_different(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 7), (b, 7), (c, 8)):
        build_vie_sets(out, seed=seed, n_train_per_cell=3, n_eval_per_cell=2)
    assert _bytes(a) == _bytes(b)
    assert _bytes(a)[0] != _bytes(c)[0] and _bytes(a)[1] != _bytes(c)[1]


def test_small_counts_are_exact(tmp_path):
    counts = build_vie_sets(tmp_path, n_train_per_cell=2, n_eval_per_cell=1)
    assert counts == {"train": 6 * 2 * 2, "eval": 6 * 2 * 2 * 1}


def test_refuses_to_overwrite_unless_asked(tmp_path):
    (tmp_path / "eval.jsonl").write_text("precious\n")
    with pytest.raises(SeerError, match=rf"^{tmp_path / 'eval.jsonl'}: already exists"):
        build_vie_sets(tmp_path, n_train_per_cell=1, n_eval_per_cell=1)
    assert (tmp_path / "eval.jsonl").read_text() == "precious\n"
    assert sorted(os.listdir(tmp_path)) == ["eval.jsonl"]
    build_vie_sets(tmp_path, n_train_per_cell=1, n_eval_per_cell=1, overwrite=True)
    assert len(load_vie(tmp_path / "eval.jsonl")) == 24


@pytest.mark.parametrize("name, value", [("n_train_per_cell", 0), ("n_eval_per_cell", -1)])
def test_rejects_non_positive_counts(tmp_path, name, value):
    with pytest.raises(SeerError, match=rf"field '{name}': expected an integer >= 1, got {value}"):
        build_vie_sets(tmp_path / "out", **{name: value})
    assert not (tmp_path / "out").exists()


def test_invalid_generated_item_leaves_no_output(tmp_path, monkeypatch):
    from seer.worlds.shapeworld import items as items_module

    real = items_module.generate_items

    def broken(seed, n_per_cell, **kwargs):
        out = real(seed, n_per_cell, **kwargs)
        if "ood" in kwargs.get("splits", ()):  # the evaluation set: break one item
            out[3] = {**out[3], "difficulty": "medium"}
        return out

    monkeypatch.setattr(items_module, "generate_items", broken)
    with pytest.raises(SeerError, match=r"generated eval item 3 .*: field 'difficulty': expected one of"):
        build_vie_sets(tmp_path, n_train_per_cell=1, n_eval_per_cell=1)
    assert os.listdir(tmp_path) == []


def test_eval_cell_that_cannot_be_filled_is_an_error(tmp_path, monkeypatch):
    from seer.worlds.shapeworld import items as items_module

    real = items_module.generate_items

    train_pairs = []

    def repetitive(seed, n_per_cell, **kwargs):
        # every evaluation candidate repeats a training item's (prompt, instruction), so no cell can be filled
        out = real(seed, n_per_cell, **kwargs)
        if "ood" not in kwargs.get("splits", ()):
            train_pairs.append((out[0]["prompt"], out[0]["instruction"]))
            return out
        prompt, instruction = train_pairs[0]
        return [{**r, "prompt": prompt, "instruction": instruction} for r in out]

    monkeypatch.setattr(items_module, "generate_items", repetitive)
    expected = r"^field 'n_eval_per_cell': expected at most 0 for cell palette/simple/id .*, got 2$"
    with pytest.raises(SeerError, match=expected):
        build_vie_sets(tmp_path, n_train_per_cell=1, n_eval_per_cell=2)
    assert os.listdir(tmp_path) == []


def test_failure_after_writing_first_file_leaves_neither(tmp_path, monkeypatch):
    # existing outputs from an earlier build must survive a failed rebuild untouched
    build_vie_sets(tmp_path, n_train_per_cell=1, n_eval_per_cell=1)
    before = _bytes(tmp_path)
    real_load = build.load_vie
    calls = []

    def fail_on_second(path):
        calls.append(path)
        if len(calls) == 2:
            raise SeerError(f"{path}: simulated failure")
        return real_load(path)

    monkeypatch.setattr(build, "load_vie", fail_on_second)
    with pytest.raises(SeerError, match="simulated failure"):
        build_vie_sets(tmp_path, seed=1, n_train_per_cell=2, n_eval_per_cell=1, overwrite=True)
    assert _bytes(tmp_path) == before
    assert sorted(os.listdir(tmp_path)) == ["eval.jsonl", "train.jsonl"]


def test_main_needs_exactly_one_of_out_and_validate(tmp_path):
    with pytest.raises(SeerError, match="exactly one of --out DIR .* got neither"):
        main(DataArgs())
    with pytest.raises(SeerError, match="got both"):
        main(DataArgs(out=str(tmp_path), validate=str(tmp_path / "x.jsonl")))


def test_main_builds_and_prints_summaries(tmp_path, capsys):
    assert main(DataArgs(out=str(tmp_path), n_train_per_cell=1, n_eval_per_cell=1)) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'train.jsonl'}: 12 items" in out
    assert f"{tmp_path / 'eval.jsonl'}: 24 items" in out
    # the totals rows of the two summary tables: train has id items only; eval has one item per cell
    totals = [line.split()[1:] for line in out.splitlines() if line.startswith("total")]
    assert totals == [["6", "6", "0", "0", "12"], ["6", "6", "6", "6", "24"]]
    assert "built in" in out


def test_main_validate_reports_problems_one_per_line(tmp_path, capsys):
    build_vie_sets(tmp_path, n_train_per_cell=1, n_eval_per_cell=1)
    path = tmp_path / "train.jsonl"
    assert main(DataArgs(validate=str(path))) == 0
    assert f"{path}: 12 items, no problems" in capsys.readouterr().out

    lines = path.read_text().splitlines()
    record = json.loads(lines[4])
    record["split"] = "test"
    lines[4] = json.dumps(record)
    lines[7] = "{oops"
    path.write_text("\n".join(lines) + "\n")
    assert main(DataArgs(validate=str(path))) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"{path}:5: field 'split': expected one of ['id', 'ood']")
    assert printed[1].startswith(f"{path}:8: invalid JSON")
    assert len(printed) == 2
