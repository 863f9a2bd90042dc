"""benchmarks/judge_errors.py: the oracle's checklist for an instruction question, and the first step where an
answer's checklist differs from it."""

import collections
from types import SimpleNamespace

import pytest
from benchmark_scripts import load_benchmark

from seer.data.pairs import Pair, QuestionTemplates
from seer.data.vie import VIEItem
from seer.eval.evaluator import Judgement
from seer.worlds.shapeworld.concepts import get_concept
from seer.worlds.shapeworld.grammar import parse
from seer.worlds.shapeworld.items import build_spec

PROMPT = "a large red circle at the center on a white background"
ICY_SCENE = "a large blue circle at the center on a white background"
# Written by hand in the corpus's checklist form (decoded spacing): icy frees every colour, so the keep check
# compares the circle's size and shape in its cell, and the shape count.
RIGHT = (
    f"<think> the first image shows {ICY_SCENE} . icy means white , cyan and blue . the background white Yes , "
    "the blue circle Yes . keep : a large circle at the center : a large circle Yes , one shape Yes </think> "
    "<answer> Yes </answer>"
)


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("judge_errors")


@pytest.fixture(scope="module")
def item():
    spec = build_spec(parse(PROMPT), None, [get_concept("icy")])
    return VIEItem("t-0", "palette", "simple", "id", PROMPT, "make it icy", spec=spec, concepts=["icy"])


def test_the_oracles_checklist_is_the_hand_written_one_and_passes_only_when_every_mark_holds(bench, item):
    icy = bench.Checklist.of(parse(ICY_SCENE), item, wholes=True)
    assert icy.caption == ICY_SCENE
    assert icy.definitions == ("icy means white , cyan and blue",)
    assert icy.concepts == "icy means white , cyan and blue . the background white Yes , the blue circle Yes"
    assert icy.keep == "a large circle at the center : a large circle Yes , one shape Yes"
    assert icy.passed
    assert not bench.Checklist.of(parse(PROMPT), item, wholes=True).passed  # a red circle is not icy
    moved = bench.Checklist.of(parse("a large blue circle at the left on a white background"), item, wholes=True)
    assert moved.keep == "a large circle at the center : nothing No , one shape Yes" and not moved.passed


@pytest.mark.parametrize(
    ("old", "new", "step"),
    [
        ("", "", "right"),
        ("a large circle at the center : a large circle Yes , one shape Yes",
         "one shape Yes , a large circle at the center : a large circle Yes", "right"),  # order does not count
        (f"shows {ICY_SCENE}", "shows a large cyan circle at the center on a white background", "caption"),
        ("icy means white , cyan and blue . ", "", "recall"),
        ("icy means white , cyan and blue", "ocean means blue , cyan and green", "recall"),
        ("the blue circle Yes", "the blue circle No", "concept"),
        ("the background white Yes , ", "", "concept"),
        (" , one shape Yes", "", "keep list"),
        ("one shape Yes", "a white background Yes , one shape Yes", "keep list"),
        ("one shape Yes", "one shape No", "keep marks"),
    ],
)  # fmt: skip
def test_first_error_names_the_first_step_that_differs(bench, item, old, new, step):
    answer = RIGHT.replace(old, new) if old else RIGHT
    assert old == "" or answer != RIGHT
    assert bench.first_error(answer, bench.Checklist.of(parse(ICY_SCENE), item, wholes=True)) == step


def test_an_image_the_oracle_cannot_read_is_its_own_step(bench):
    assert bench.first_error(RIGHT, None) == "unreadable"


def test_sampled_recalls_counts_samples_past_the_recall_and_groups_of_one_verdict(bench, item):
    """Two answers that missed a recall, with four samples each written by hand: the first's samples recall icy once
    (and give two verdicts), the second's never (all "No")."""
    missed_recall = RIGHT.replace("icy means white , cyan and blue . ", "").replace("<answer> Yes", "<answer> No")
    samples = iter([[RIGHT, missed_recall, missed_recall, missed_recall], [missed_recall] * 4])
    model = SimpleNamespace(generate_text=lambda prompts, **kw: SimpleNamespace(texts=next(samples)))
    pair = Pair("t-0:2:naive", 2, "t-0", "palette", "simple", "id", PROMPT, "make it icy", "", "", "naive", 0,
                "good.png", "bad.png", True)  # fmt: skip
    pair_set = SimpleNamespace(images=lambda pair, swapped=False: ("first", "second"))
    templates = QuestionTemplates("{prompt} ?", "{instruction} {prompt} ?")
    expected = bench.Checklist.of(parse(ICY_SCENE), item, wholes=True)
    missed = [(Judgement(pair, False, missed_recall), expected), (Judgement(pair, True, missed_recall), expected)]
    counts = bench.sampled_recalls(model, pair_set, missed, templates, 4, 1.0, 160)
    assert counts["samples_past_recall"] == 1 and counts["answers_with_a_sample_past_recall"] == 1
    assert counts["answers_whose_samples_all_give_one_verdict"] == 1 and counts["answers"] == 2


def test_recalled_names_are_the_concepts_whose_definitions_the_think_states_in_order(bench):
    night = bench.spaced(get_concept("night").definition)
    assert bench.recalled_names(RIGHT) == ("icy",)
    # A definition stated twice counts once; check sentences and the caption name no concept.
    answer = RIGHT.replace("icy means", f"{night} . icy means").replace(" . keep", f" . {night} . keep")
    assert bench.recalled_names(answer) == ("night", "icy")
    assert bench.recalled_names(RIGHT.replace("icy means white , cyan and blue . ", "")) == ()


def test_miss_table_lists_each_instruction_and_recall_once_most_frequent_first(bench):
    rare, common = ("id", "make it icy", ("icy",), ()), ("ood", "fire on ice", ("frozen fire",), ("fire",))
    misses = collections.Counter({rare: 1, common: 3})
    rows = bench.miss_table(misses, collections.Counter({common: 2}))
    assert [(r["instruction"], r["answers"], r["wrong"]) for r in rows] == [
        ("fire on ice", 3, 2),
        ("make it icy", 1, 0),
    ]
    assert rows[0]["asked"] == ["frozen fire"] and rows[0]["recalled"] == ["fire"] and rows[1]["recalled"] == []


def test_an_answer_without_a_keep_check_is_a_keep_list_error_that_writes_none(bench, item):
    no_keep = RIGHT.replace(" . keep : a large circle at the center : a large circle Yes , one shape Yes", "")
    assert no_keep != RIGHT and bench.first_error(no_keep, bench.Checklist.of(parse(ICY_SCENE), item, True)) == (
        "keep list"
    )
    assert bench.writes_keep_check(RIGHT) and not bench.writes_keep_check(no_keep)
