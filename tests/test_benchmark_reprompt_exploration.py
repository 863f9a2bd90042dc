"""benchmarks/reprompt_exploration.py: the literal constraint that `--literal` puts in an instruction's place."""

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
