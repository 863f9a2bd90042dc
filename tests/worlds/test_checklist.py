"""The oracle's checklist for an instruction question, the first step where an answer's checklist differs from it,
and the share of steps it gets right."""

import pytest
from checklist_example import ICY_SCENE, NO_RECALL, PROMPT, RIGHT, icy_item

from seer.worlds.shapeworld.checklist import (
    Checklist,
    checklist_score,
    first_error,
    recalled_names,
    spaced,
    writes_keep_check,
)
from seer.worlds.shapeworld.concepts import get_concept
from seer.worlds.shapeworld.grammar import parse


@pytest.fixture(scope="module")
def item():
    return icy_item()


def test_the_oracles_checklist_is_the_hand_written_one_and_passes_only_when_every_mark_holds(item):
    icy = Checklist.of(parse(ICY_SCENE), item, wholes=True)
    assert icy.caption == ICY_SCENE
    assert icy.definitions == ("icy means white , cyan and blue",)
    assert icy.concepts == "icy means white , cyan and blue . the background white Yes , the blue circle Yes"
    assert icy.keep == "a large circle at the center : a large circle Yes , one shape Yes"
    assert icy.passed and icy.verdict == "Yes" and icy.answer() == RIGHT
    red = Checklist.of(parse(PROMPT), item, wholes=True)
    assert not red.passed and red.verdict == "No"
    assert red.answer().endswith(
        "the red circle No . keep : a large circle at the center : a "
        "large circle Yes , one shape Yes </think> <answer> No </answer>"
    )
    moved = Checklist.of(parse("a large blue circle at the left on a white background"), item, wholes=True)
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
def test_first_error_names_the_first_step_that_differs(item, old, new, step):
    answer = RIGHT.replace(old, new) if old else RIGHT
    assert old == "" or answer != RIGHT
    assert first_error(answer, Checklist.of(parse(ICY_SCENE), item, wholes=True)) == step


def test_an_image_the_oracle_cannot_read_is_its_own_step():
    assert first_error(RIGHT, None) == "unreadable"


def test_an_answer_without_a_keep_check_is_a_keep_list_error_that_writes_none(item):
    no_keep = RIGHT.replace(" . keep : a large circle at the center : a large circle Yes , one shape Yes", "")
    assert no_keep != RIGHT and first_error(no_keep, Checklist.of(parse(ICY_SCENE), item, True)) == ("keep list")
    assert writes_keep_check(RIGHT) and not writes_keep_check(no_keep)


def test_checklist_score_is_the_share_of_steps_right_before_the_first_error(item):
    expected = Checklist.of(parse(ICY_SCENE), item, wholes=True)
    assert checklist_score(RIGHT, expected) == 1.0
    assert checklist_score(RIGHT.replace("one shape Yes", "one shape No"), expected) == 4 / 5  # keep marks
    assert checklist_score(NO_RECALL, expected) == 1 / 5  # the caption only
    assert checklist_score(RIGHT.replace(ICY_SCENE, PROMPT), expected) == 0.0  # the caption already differs
    assert checklist_score(RIGHT, None) == 0.0  # nothing to compare with


def test_recalled_names_are_the_concepts_whose_definitions_the_think_states_in_order():
    night = spaced(get_concept("night").definition)
    assert recalled_names(RIGHT) == ("icy",)
    # A definition stated twice counts once; check sentences and the caption name no concept.
    answer = RIGHT.replace("icy means", f"{night} . icy means").replace(" . keep", f" . {night} . keep")
    assert recalled_names(answer) == ("night", "icy")
    assert recalled_names(NO_RECALL) == ()
