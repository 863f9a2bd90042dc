"""The literal prompt grammar: hand-written describe() outputs, round trips, and a table of rejected texts."""

import random

import pytest

from seer.errors import SeerError
from seer.worlds.shapeworld.grammar import GrammarError, describe, describe_object, parse, try_parse
from seer.worlds.shapeworld.scene import Obj, Scene, random_scene

TWO = Scene("white", (Obj("center", "square", "blue", "small"), Obj("top left", "circle", "red", "large")))
TWO_TEXT = "a large red circle at the top left and a small blue square at the center on a white background"


def test_describe_object_hand_written():
    assert describe_object(Obj("bottom right", "ring", "orange", "small")) == "a small orange ring at the bottom right"


@pytest.mark.parametrize(
    ("scene", "text"),
    [
        (
            Scene("black", (Obj("top", "bar", "yellow", "large"),)),
            "a large yellow bar at the top on a black background",
        ),
        (TWO, TWO_TEXT),  # objects were given out of cell order: describe() sorts them (top left before center)
        (
            Scene(
                "gray",
                (
                    Obj("bottom", "cross", "pink", "small"),
                    Obj("left", "triangle", "green", "large"),
                    Obj("top right", "ring", "cyan", "small"),
                ),
            ),
            "a small cyan ring at the top right, a large green triangle at the left and a small pink cross at the"
            " bottom on a gray background",
        ),
        (
            Scene(
                "brown",
                (
                    Obj("bottom left", "circle", "white", "small"),
                    Obj("right", "square", "purple", "large"),
                    Obj("center", "bar", "black", "small"),
                    Obj("top", "triangle", "red", "large"),
                ),
            ),
            "a large red triangle at the top, a small black bar at the center, a large purple square at the right"
            " and a small white circle at the bottom left on a brown background",
        ),
    ],
)
def test_describe_hand_written(scene, text):
    assert describe(scene) == text
    assert parse(text) == scene


def test_round_trip_many_random_scenes():
    rng = random.Random(0)
    for _ in range(2000):
        scene = random_scene(rng, max_objects=4)
        assert parse(describe(scene)) == scene


def test_objects_in_any_order_give_the_canonical_scene():
    swapped = "a small blue square at the center and a large red circle at the top left on a white background"
    assert parse(swapped) == TWO


def test_case_and_whitespace_are_forgiven():
    messy = "  A Large RED circle at the\ttop left\n and a small blue square at  the center on a white background "
    assert parse(messy) == TWO
    three = (
        "a small red bar at the top , a small blue bar at the left and a small green bar at the right"
        " on a white background"
    )
    assert [o.pos for o in parse(three).objects] == ["top", "left", "right"]


REJECTED = [
    ("", "at the end"),
    ("a large red circle at the top left", "expected ','"),  # no background
    (TWO_TEXT + ".", "'background.'"),  # trailing period
    (TWO_TEXT + " please", "end of the text"),  # trailing word
    ("a big red circle at the top left on a white background", "expected a size"),  # unknown size word
    ("a large magenta circle at the top left on a white background", "expected a colour"),  # unknown colour
    ("a large red hexagon at the top left on a white background", "expected a shape"),  # unknown shape
    ("a large red circle at the middle on a white background", "expected a position"),  # unknown position
    ("a large red circle top left on a white background", "'at the'"),  # missing "at the"
    ("an large red circle at the top on a white background", "expected an object"),  # wrong article
    ("large red circle at the top on a white background", "expected an object"),  # no article
    ("a large red circle at the top on white background", "'a' before"),  # missing article before background
    ("a large red circle at the top on a white", "'background'"),  # background word missing
    ("a large red circle at the top on a white backdrop", "'background'"),
    ("a large red circle at the top, a small blue ring at the left on a white background", "must be joined"),
    (
        "a large red circle at the top and a small blue ring at the left and a small red bar at the right"
        " on a white background",
        "must be joined",
    ),
    ("a large red circle at the top, on a white background", "expected an object"),  # dangling comma
    ("a large red circle at the top and a small blue ring at the top on a white background", "two objects at the top"),
    ("a large white circle at the top on a white background", "like the background"),
    (
        "a small red bar at the top left, a small red bar at the top, a small red bar at the top right,"
        " a small red bar at the left and a small red bar at the center on a white background",
        "more than 4 objects",
    ),
    ("a large red circle at the top left left on a white background", "expected ','"),  # stray word in position
    ("a large red circle at the top left on a white background on a black background", "end of the text"),
    ("a large red red circle at the top on a white background", "expected a shape"),
]


@pytest.mark.parametrize(("text", "reason"), REJECTED)
def test_parse_rejects(text, reason):
    with pytest.raises(GrammarError, match=reason) as info:
        parse(text)
    assert "\n" not in str(info.value)  # one-line messages, as every SeerError
    assert try_parse(text) is None


def test_grammar_error_is_a_seer_error_and_a_value_error():
    assert issubclass(GrammarError, SeerError) and issubclass(GrammarError, ValueError)


def test_try_parse_returns_the_scene_for_valid_text():
    assert try_parse(TWO_TEXT) == TWO
