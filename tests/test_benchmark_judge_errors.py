"""benchmarks/judge_errors.py: sampled answers past the recall step, the concepts a think recalls, and the table of
recall misses (the checklist itself: tests/worlds/test_checklist.py)."""

import collections
from types import SimpleNamespace

import pytest
from benchmark_scripts import load_benchmark
from checklist_example import ICY_SCENE, NO_RECALL, PROMPT, RIGHT, icy_item

from seer.data.pairs import Pair, QuestionTemplates
from seer.eval.evaluator import Judgement
from seer.worlds.shapeworld.checklist import Checklist
from seer.worlds.shapeworld.grammar import parse


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("judge_errors")


@pytest.fixture(scope="module")
def item():
    return icy_item()


def test_sampled_recalls_counts_samples_past_the_recall_and_groups_of_one_verdict(bench, item):
    """Two answers that missed a recall, with four samples each written by hand: the first's samples recall icy once
    (and give two verdicts), the second's never (all "No")."""
    missed_recall = NO_RECALL.replace("<answer> Yes", "<answer> No")
    samples = iter([[RIGHT, missed_recall, missed_recall, missed_recall], [missed_recall] * 4])
    model = SimpleNamespace(generate_text=lambda prompts, **kw: SimpleNamespace(texts=next(samples)))
    pair = Pair("t-0:2:naive", 2, "t-0", "palette", "simple", "id", PROMPT, "make it icy", "", "", "naive", 0,
                "good.png", "bad.png", True)  # fmt: skip
    pair_set = SimpleNamespace(images=lambda pair, swapped=False: ("first", "second"))
    templates = QuestionTemplates("{prompt} ?", "{instruction} {prompt} ?")
    expected = Checklist.of(parse(ICY_SCENE), item, wholes=True)
    missed = [(Judgement(pair, False, missed_recall), expected), (Judgement(pair, True, missed_recall), expected)]
    counts = bench.sampled_recalls(model, pair_set, missed, templates, 4, 1.0, 160)
    assert counts["samples_past_recall"] == 1 and counts["answers_with_a_sample_past_recall"] == 1
    assert counts["answers_whose_samples_all_give_one_verdict"] == 1 and counts["answers"] == 2


def test_miss_table_lists_each_instruction_and_recall_once_most_frequent_first(bench):
    rare, common = ("id", "make it icy", ("icy",), ()), ("ood", "fire on ice", ("frozen fire",), ("fire",))
    misses = collections.Counter({rare: 1, common: 3})
    rows = bench.miss_table(misses, collections.Counter({common: 2}))
    assert [(r["instruction"], r["answers"], r["wrong"]) for r in rows] == [
        ("fire on ice", 3, 2),
        ("make it icy", 1, 0),
    ]
    assert rows[0]["asked"] == ["frozen fire"] and rows[0]["recalled"] == ["fire"] and rows[1]["recalled"] == []
