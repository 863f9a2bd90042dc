"""benchmarks/judge_sft.py: the answers the probe trains on are the oracle's checklists, verdicts equal to the labels."""

import dataclasses

import pytest
from benchmark_scripts import load_benchmark

from seer.data.pairs import LiteralRenderer, PairSettings, build_pairs, oracle_view
from seer.data.vie import item_from_dict
from seer.worlds.shapeworld.checklist import Checklist, first_error
from seer.worlds.shapeworld.items import generate_items
from seer.worlds.shapeworld.oracle import parse_image


@pytest.fixture(scope="module")
def bench():
    load_benchmark("judge_errors")  # judge_sft imports it by name, as a script beside it does
    return load_benchmark("judge_sft")


@pytest.fixture(scope="module")
def pairs_and_items(tmp_path_factory):
    items = [item_from_dict(r, "generated") for r in generate_items(0, 1, splits=("id",))][:6]
    folder = tmp_path_factory.mktemp("pairs") / "train-k"
    return build_pairs(LiteralRenderer(), items, folder, PairSettings(model_id="r")), {i.id: i for i in items}


def test_every_stage2_pair_gives_two_answers_whose_verdict_is_the_label(bench, pairs_and_items):
    pair_set, items = pairs_and_items
    stage2 = pair_set.stage(2)
    assert stage2
    kept, counts = bench.examples(pair_set, items)
    # Drawn literally, every first image is readable and every verified label is the oracle's verdict.
    assert counts == {"answers": 2 * len(stage2), "unreadable": 0, "verdict_not_label": 0}
    assert [(p.id, swapped) for p, swapped, _ in kept] == [(p.id, s) for p in stage2 for s in (False, True)]
    for pair, swapped, answer in kept:
        first_is_good = pair.good_first != swapped
        assert answer.endswith(f"<answer> {'Yes' if first_is_good else 'No'} </answer>")
        scene = parse_image(oracle_view(pair_set.images(pair, swapped)[0]))
        assert first_error(answer, Checklist.of(scene, items[pair.item_id], wholes=True)) == "right"


def test_a_pair_whose_label_the_oracle_contradicts_is_left_out_in_both_orders(bench, pairs_and_items):
    pair_set, items = pairs_and_items
    wrong = pair_set.stage(2)[0]
    flipped = dataclasses.replace(wrong, good_first=not wrong.good_first, good_image=wrong.bad_image,
                                  bad_image=wrong.good_image)  # fmt: skip
    tampered = dataclasses.replace(pair_set, pairs=[flipped if p is wrong else p for p in pair_set.pairs])
    kept, counts = bench.examples(tampered, items)
    assert counts["verdict_not_label"] == 2 and wrong.id not in {p.id for p, _, _ in kept}
    assert len(kept) == 2 * len(pair_set.stage(2)) - 2
