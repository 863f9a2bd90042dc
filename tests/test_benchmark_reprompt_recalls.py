"""benchmarks/reprompt_recalls.py: which concepts a reprompt's think recalls, and the shares it reports for a run."""

import json

import pytest
from benchmark_scripts import load_benchmark

from seer.data.build import generate_sets
from seer.data.vie import write_vie
from seer.worlds.shapeworld.concepts import get_concept

ICY = "icy means white , cyan and blue"  # as the tokenizer decodes it: punctuation spaced
ROW = "a row means two or more shapes side by side in one row"
OCEAN = "ocean means blue , cyan and green"


def answer(*recalls, descriptor="a large red circle at the center on a white background"):
    return f"<think> {' . '.join(recalls)} </think> <answer> {descriptor} </answer>"


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("reprompt_recalls")


def test_recalled_reads_each_sentence_of_the_think_and_nothing_after_it(bench):
    assert bench.recalled(answer(ICY, ROW)) == {"icy", "row"}
    assert bench.recalled(answer("the prompt has one shape", descriptor=ICY)) == set()  # the answer is no recall
    # The longest definition a sentence states: "icy but warm means white, cyan and blue everywhere ..." is not icy.
    warm = get_concept("icy but warm").definition
    assert bench.recalled(answer(warm)) == {"icy but warm"}


def test_recall_profile_says_whether_every_asked_concept_and_any_other_is_recalled(bench):
    assert bench.recall_profile(answer(ICY, ROW), ["icy", "row"]) == (True, False)
    assert bench.recall_profile(answer(ROW), ["icy", "row"]) == (False, False)
    assert bench.recall_profile(answer(ICY, OCEAN), ["icy"]) == (True, True)
    assert bench.recall_profile(answer(), ["icy"]) == (False, False)


def test_a_runs_shares_are_counted_per_system_and_difficulty(bench, tmp_path):
    """Four items with hand-chosen recalls and verdicts; every reported share is counted here by hand."""
    items = generate_sets(0, 5, 1)[1]
    simple = [i for i in items if i.difficulty == "simple"][:2]
    hard = [i for i in items if i.difficulty == "hard"][:2]
    write_vie(simple + hard, tmp_path / "data" / "eval.jsonl")

    def recall_of(item):
        return get_concept(item.concepts[0]).definition.replace(",", " ,")

    stray = next(n for n in ("icy", "ocean", "fire") if all(n not in i.concepts for i in simple + hard))
    records = [
        # simple: one recalls its concept and passes; one recalls a concept it does not ask for and fails
        {"item": simple[0], "seer": (answer(recall_of(simple[0])), True)},
        {"item": simple[1], "seer": (answer(get_concept(stray).definition.replace(",", " ,")), False)},
        # hard: one recalls only the first of its two concepts and fails; one recalls both and passes
        {"item": hard[0], "seer": (answer(recall_of(hard[0])), False)},
        {"item": hard[1], "seer": (answer(*(get_concept(c).definition for c in hard[1].concepts)), True)},
    ]
    results = {"records": [
        {"id": r["item"].id, "difficulty": r["item"].difficulty,
         "seer": {"raw": r["seer"][0], "passed": r["seer"][1]},
         "zero_shot": {"raw": answer(), "passed": False}}  # never recalls, never passes
        for r in records
    ]}  # fmt: skip
    (tmp_path / "eval-reprompt").mkdir()
    (tmp_path / "eval-reprompt" / "results.json").write_text(json.dumps(results))

    figures = bench.profile_run(tmp_path)
    assert figures["seer"]["simple"] == {
        "n": 2, "recalls_every_asked": 0.5, "stray_recall": 0.5,
        "pass_if_every_asked": 1.0, "pass_otherwise": 0.0, "pass_if_stray": 0.0,
    }  # fmt: skip
    assert figures["seer"]["hard"] == {
        "n": 2, "recalls_every_asked": 0.5, "stray_recall": 0.0,
        "pass_if_every_asked": 1.0, "pass_otherwise": 0.0, "pass_if_stray": None,
    }  # fmt: skip
    assert figures["zero_shot"]["hard"]["recalls_every_asked"] == 0.0
    assert figures["zero_shot"]["hard"]["pass_if_every_asked"] is None
