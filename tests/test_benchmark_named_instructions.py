"""benchmarks/named_instructions.py: a copy of a run folder whose evaluation instructions name their concepts."""

import dataclasses
import json
import sys

import pytest
from benchmark_scripts import load_benchmark

from seer.data.pairs import LiteralRenderer, PairSettings, build_pairs, load_pairs
from seer.data.vie import item_from_dict, load_vie
from seer.worlds.shapeworld.items import generate_items


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("named_instructions")


@pytest.fixture
def run(tmp_path):
    """A run folder with what the copy reads: data/, evaluation pairs and an rlvr/ folder."""
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    items = [item_from_dict(r, "generated") for r in generate_items(0, 1, splits=("id",))][:4]
    lines = "".join(json.dumps(item.to_dict()) + "\n" for item in items)
    (run / "data" / "eval.jsonl").write_text(lines)
    (run / "data" / "train.jsonl").write_text(lines)
    build_pairs(LiteralRenderer(), items, run / "eval-evaluator" / "pairs" / "eval-k", PairSettings(model_id="r"))
    (run / "rlvr").mkdir()
    (run / "rlvr" / "config.yaml").write_text("seed: 0\n")
    return run


def test_named_appends_each_concept_name(bench):
    assert bench.named("add a second ring just like it", ["double"]) == "add a second ring just like it, double"
    assert bench.named("make it a fiery night", ["fiery night", "row"]) == "make it a fiery night, fiery night, row"


def test_the_copy_names_every_instruction_and_changes_nothing_else(bench, run, tmp_path):
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    bench.copy_named(run, tmp_path / "named")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # the source is only read

    source, copy = load_vie(run / "data" / "eval.jsonl"), load_vie(tmp_path / "named" / "data" / "eval.jsonl")
    assert [i.instruction for i in copy] == [f"{i.instruction}, {', '.join(i.concepts)}" for i in source]
    unnamed = [dataclasses.replace(i, instruction=s.instruction) for i, s in zip(copy, source, strict=True)]
    assert unnamed == source

    concepts = {i.id: i.concepts for i in source}
    pairs = "eval-evaluator/pairs/eval-k"
    old, new = load_pairs(run / pairs), load_pairs(tmp_path / "named" / pairs)  # also: every image is there
    assert len(new.pairs) == len(old.pairs) > 0
    for a, b in zip(old.pairs, new.pairs, strict=True):
        assert b.instruction == bench.named(a.instruction, concepts[a.item_id])
        assert dataclasses.replace(b, instruction=a.instruction) == a
    assert (tmp_path / "named" / "rlvr" / "config.yaml").read_text() == "seed: 0\n"


def test_an_existing_output_folder_is_refused(bench, run, tmp_path, monkeypatch):
    (tmp_path / "named").mkdir()
    monkeypatch.setattr(sys, "argv", ["named_instructions.py", str(run), str(tmp_path / "named")])
    with pytest.raises(SystemExit, match="already exists"):
        bench.main()
    assert not any((tmp_path / "named").iterdir())
