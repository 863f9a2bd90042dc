"""Concept marks: hand-checked examples per rule, and their AND is the concept's truth on every concept. Keep
marks: hand-checked examples, and their AND is the spec's keep on every concept."""

import random

import pytest

from seer.worlds.shapeworld.concept_checks import concept_marks, keep_marks, marks_text
from seer.worlds.shapeworld.concepts import LEXICON, get_concept, scene_has_concept
from seer.worlds.shapeworld.grammar import parse
from seer.worlds.shapeworld.items import build_spec, elaborate, perturb_scene
from seer.worlds.shapeworld.scene import Obj, Scene, random_scene
from seer.worlds.shapeworld.spec import check


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


PROMPT = "a small red circle at the top and a large green square at the left on a blue background"


def test_keep_marks_of_a_palette_check_shape_size_and_place_anchored_on_the_cell():
    # Icy changes the colours and the background, so what is kept of each object is its size, shape and cell,
    # and the number of objects; the square turned into a triangle.
    image = parse("a small blue circle at the top and a large cyan triangle at the left on a white background")
    marks = keep_marks(image, build_spec(parse(PROMPT), None, [get_concept("icy")])["keep"])
    assert marks == [
        ("a small circle at the top : a small blue circle", True),
        ("a large square at the left : a large cyan triangle", False),
        ("two shapes", True),
    ]


def test_keep_marks_of_a_layout_check_the_background_and_whole_objects_anywhere():
    # A row moves objects, so their cells are free: the objects are looked for anywhere, unanchored.
    moved = parse("a small red circle at the left and a large green square at the center on a blue background")
    keep = build_spec(parse(PROMPT), None, [get_concept("row")])["keep"]
    assert keep_marks(moved, keep) == [
        ("a blue background", True), ("a small red circle", True), ("a large green square", True), ("two shapes", True)
    ]  # fmt: skip
    recoloured = parse("a small red circle at the left and a large green square at the center on a pink background")
    assert keep_marks(recoloured, keep)[0] == ("a blue background", False)


def test_keep_marks_agree_with_the_spec_on_every_concept():
    """Gold elaborations (kept), the same with one attribute changed (often not) and the prompt itself: all keep
    marks Yes exactly when the spec's keep holds, on every concept, subject concepts included."""
    rng = random.Random(0)
    outcomes = set()
    for concept in LEXICON:
        for i in range(150):
            prompt = random_scene(rng, max_objects=3)
            subject = rng.choice(prompt.objects) if concept.rule.subject_based else None
            spec = build_spec(prompt, subject, [concept])
            image = elaborate(prompt, subject, [concept], rng) or prompt
            if i % 3 == 1:
                image = perturb_scene(image, rng)
            elif i % 3 == 2:
                image = random_scene(rng, max_objects=4)
            marks = keep_marks(image, spec["keep"])
            kept = check(image, spec).kept
            assert all(ok for _, ok in marks) == kept, (concept.name, prompt, image, marks)
            outcomes.add((concept.rule.subject_based, kept))
    assert outcomes == {(False, False), (False, True), (True, False), (True, True)}
