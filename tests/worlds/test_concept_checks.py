"""Concept marks: hand-checked examples per rule, and their AND is the concept's truth on every concept."""

import random

import pytest

from seer.worlds.shapeworld.concept_checks import concept_marks, marks_text
from seer.worlds.shapeworld.concepts import LEXICON, get_concept, scene_has_concept
from seer.worlds.shapeworld.items import elaborate, perturb_scene
from seer.worlds.shapeworld.scene import Obj, Scene, random_scene


def scene(background, *objects):
    """scene("red", ("top", "circle", "blue", "small"), ...)"""
    return Scene(background, tuple(sorted(Obj(*o) for o in objects)))


def test_palette_marks_the_background_then_every_colour():
    s = scene("red", ("top", "circle", "blue", "small"), ("left", "square", "white", "large"))
    assert concept_marks(s, get_concept("icy")) == [
        ("the background red", False), ("the blue circle", True), ("the white square", True)
    ]  # fmt: skip
    assert marks_text(concept_marks(s, get_concept("icy"))) == (
        "the background red No , the blue circle Yes , the white square Yes"
    )


def test_atmosphere_marks_only_the_background():
    s = scene("orange", ("top", "circle", "blue", "small"))
    assert concept_marks(s, get_concept("cheerful")) == [("the background orange", True)]


def test_contrast_counts_the_accent_shapes():
    one = scene("cyan", ("top", "circle", "red", "small"), ("left", "square", "white", "large"))
    two = scene("cyan", ("top", "circle", "red", "small"), ("left", "square", "yellow", "large"))
    concept = get_concept("icy but warm")
    assert concept_marks(one, concept)[-1] == ("one red, orange or yellow shape", True)
    assert concept_marks(two, concept)[-1] == ("one red, orange or yellow shape", False)
    assert all(ok for _, ok in concept_marks(two, concept)[:-1])  # every colour allowed; only the count fails


def test_layout_checks_the_count_then_the_fullest_line():
    tower = get_concept("tower")
    alone = scene("white", ("top", "circle", "blue", "small"))
    assert concept_marks(alone, tower)[0] == ("two or more shapes", False)
    # Two of three objects share the left column: that line is the one checked, and the third object fails it.
    column = (("top left", "circle", "blue", "small"), ("left", "bar", "red", "large"))
    s = scene("white", *column, ("top", "ring", "red", "small"))
    assert concept_marks(s, tower)[1:] == [
        ("the blue circle at the top left in the left column", True),
        ("the red ring at the top in the left column", False),
        ("the red bar at the left in the left column", True),
    ]  # objects in cell order


def test_symmetric_marks_each_object_against_its_mirror_cell():
    twins = (("left", "circle", "blue", "small"), ("right", "circle", "blue", "small"))
    s = scene("white", *twins, ("top", "bar", "red", "large"))
    marks = concept_marks(s, get_concept("symmetric"))
    assert ("the blue circle at the left : a small blue circle at the right", True) in marks
    assert ("the red bar at the top : a large red bar at the top", True) in marks  # the centre column mirrors itself
    lopsided = scene("white", ("left", "circle", "blue", "small"), ("right", "circle", "blue", "large"))
    assert ("the blue circle at the left : a large blue circle at the right", False) in concept_marks(
        lopsided, get_concept("symmetric")
    )


@pytest.mark.parametrize("name", ["tree", "traffic light", "pair", "crowd", "alone", "spotlight"])
def test_objects_counts_and_alone_are_checked_as_a_whole(name):
    assert concept_marks(scene("white", ("top", "circle", "blue", "small")), get_concept(name)) == []


def test_a_built_object_marks_each_part_where_the_stack_fits_best():
    snowman = get_concept("snowman")
    half = scene("red", ("top", "circle", "white", "small"), ("center", "square", "white", "large"))
    assert concept_marks(half, snowman, wholes=True) == [
        ("a small white circle at the top : a small white circle", True),
        ("a large white circle at the center : a large white square", False),
    ]
    empty = scene("red", ("bottom right", "bar", "blue", "small"))
    assert concept_marks(empty, snowman, wholes=True)[0] == ("a small white circle at the top left : nothing", False)


def test_a_count_marks_the_kind_that_comes_nearest_and_a_pair_its_neighbours():
    one = scene("red", ("left", "circle", "white", "small"), ("top", "bar", "blue", "small"),
                ("bottom", "bar", "blue", "large"))  # fmt: skip
    # Two blue bars (sizes may differ for "double"), one white circle: the bars show the concept.
    assert concept_marks(one, get_concept("double"), wholes=True) == [("two times a blue bar : two", True)]
    # A pair: the bars come nearest (two of two), but they are not side by side.
    assert concept_marks(one, get_concept("pair"), wholes=True) == [
        ("two times a blue bar : two", True), ("two blue bar side by side", False)
    ]  # fmt: skip
    twins = scene("red", ("left", "bar", "blue", "small"), ("center", "bar", "blue", "small"))
    assert concept_marks(twins, get_concept("pair"), wholes=True)[-1] == ("two blue bar side by side", True)
    assert concept_marks(one, get_concept("triple"), wholes=True) == [("three times a blue bar : two", False)]


def test_alone_marks_the_count_then_the_one_shapes_size_and_cell():
    lonely = scene("red", ("left", "circle", "white", "small"))
    assert concept_marks(lonely, get_concept("spotlight"), wholes=True) == [
        ("one shape", True), ("a large white circle", False), ("the white circle at the left in the center", False)
    ]  # fmt: skip
    assert concept_marks(lonely, get_concept("alone"), wholes=True) == [("one shape", True)]
    two = scene("red", ("left", "circle", "white", "large"), ("top left", "bar", "blue", "large"))
    assert concept_marks(two, get_concept("lonely giant"), wholes=True) == [("one shape", False)]


@pytest.mark.parametrize("wholes", [False, True])
def test_marks_agree_with_the_concept_on_every_concept(wholes):
    """Random scenes (mostly No), gold elaborations (Yes) and their one-attribute changes: all marks Yes exactly when
    the scene shows the concept; with `wholes`, every concept has marks."""
    rng = random.Random(0)
    marked = 0
    for concept in LEXICON:
        for i in range(200):
            s = random_scene(rng, max_objects=4)
            if i % 2:
                subject = rng.choice(s.objects) if concept.rule.subject_based else None
                s = elaborate(s, subject, [concept], rng) or s
                s = perturb_scene(s, rng) if i % 4 == 3 else s
            marks = concept_marks(s, concept, wholes)
            assert marks or not wholes
            if marks:
                marked += 1
                assert all(ok for _, ok in marks) == scene_has_concept(s, concept), (concept.name, s, marks)
    assert marked > (len(LEXICON) * 200 - 1 if wholes else 4000)
