"""Concept marks: hand-checked examples per rule, and their AND is the concept's truth on every concept."""

import random

import pytest

from seer.worlds.shapeworld.concept_checks import concept_marks, marks_text
from seer.worlds.shapeworld.concepts import LEXICON, get_concept, scene_has_concept
from seer.worlds.shapeworld.items import elaborate
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


def test_marks_agree_with_the_concept_on_every_concept():
    """Random scenes (mostly No) and gold elaborations (Yes): all marks Yes exactly when the scene shows it."""
    rng = random.Random(0)
    marked = 0
    for concept in LEXICON:
        for i in range(200):
            s = random_scene(rng, max_objects=4)
            if i % 2:
                subject = rng.choice(s.objects) if concept.rule.subject_based else None
                s = elaborate(s, subject, [concept], rng) or s
            marks = concept_marks(s, concept)
            if marks:
                marked += 1
                assert all(ok for _, ok in marks) == scene_has_concept(s, concept), (concept.name, s, marks)
    assert marked > 4000
