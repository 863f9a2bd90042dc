"""benchmarks/reprompt_exploration.py: the literal constraint of `--literal`, the think of `--forced_recall`, pass@k."""

from types import SimpleNamespace

import pytest
from benchmark_scripts import load_benchmark

from seer.data.build import generate_sets
from seer.worlds.shapeworld.grammar import parse


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("reprompt_exploration")


def test_literal_instruction_states_each_concepts_meaning(bench):
    icy = SimpleNamespace(instruction="make it look icy", concepts=["icy"])
    assert bench.literal_instruction(icy) == "white, cyan and blue"
    # A concept about one object names the shape the instruction names (punctuation and plurals aside).
    light = SimpleNamespace(instruction="make the circle a traffic light", concepts=["traffic light"])
    assert bench.literal_instruction(light) == (
        "a red circle, a yellow circle and a green circle stacked from top to bottom for the circle"
    )
    # Two concepts: two constraints, as pre-training's two-constraint rewrites write them.
    hard = SimpleNamespace(instruction="make two of the circle, then give the scene a fire look", concepts=["double", "fire"])
    assert bench.literal_instruction(hard) == "two of the same shape and colour for the circle . use : red, orange and yellow"


def test_every_named_subject_is_a_shape_of_the_prompt(bench):
    _, items = generate_sets(0, 1, 10)
    checked = 0
    for item in items:
        for constraint in bench.literal_instruction(item).split(" . use : "):
            if " for the " in constraint:
                shape = constraint.rsplit(" for the ", 1)[1]
                assert shape in {o.shape for o in parse(item.prompt).objects}, (item.instruction, item.prompt)
                checked += 1
    assert checked > 100


def test_right_recall_is_the_named_constraints_think(bench):
    hard = SimpleNamespace(instruction="make two of the circle, then give the scene a fire look", concepts=["double", "fire"])
    assert bench.right_recall(hard) == (
        "double means two of the same shape and colour for the circle . fire means red, orange and yellow"
    )


def test_pass_at_k_by_hand(bench):
    # 4 samples per item. Item A: 1 success, P(one of 2 hits it) = 1 - C(3,2)/C(4,2) = 1/2; item B: 0; item C: 4.
    assert bench.pass_at_k([1, 0, 4], 4, 2) == pytest.approx((0.5 + 0 + 1) / 3)
    assert bench.pass_at_k([1, 0, 4], 4, 1) == pytest.approx((0.25 + 0 + 1) / 3)  # the mean success rate
    assert bench.pass_at_k([1, 0, 4], 4, 4) == pytest.approx(2 / 3)  # the items with any success


def test_forced_thinks_append_the_think_and_restore_the_prompt(bench):
    umm = SimpleNamespace(format_prompt=lambda prompt, n_images: f"user: {prompt} assistant:")
    with bench.forced_thinks(umm, {"q": "icy means white, cyan and blue"}):
        assert umm.format_prompt("q", 0) == "user: q assistant: <think> icy means white, cyan and blue </think>"
    assert umm.format_prompt("q", 0) == "user: q assistant:"
