"""Keep marks: hand-checked examples per kind of keep, and their AND is the spec's keep on every concept."""

import random

from seer.worlds.shapeworld.concepts import LEXICON, get_concept
from seer.worlds.shapeworld.items import build_spec, elaborate, nameable_subjects, perturb_scene
from seer.worlds.shapeworld.keep_checks import keep_marks
from seer.worlds.shapeworld.scene import Obj, Scene, random_scene
from seer.worlds.shapeworld.spec import check


def scene(background, *objects):
    """scene("red", ("top", "circle", "blue", "small"), ...)"""
    return Scene(background, tuple(sorted(Obj(*o) for o in objects)))


CROSS = ("left", "cross", "pink", "small")
CIRCLE = ("top", "circle", "red", "large")


def test_an_atmosphere_keeps_every_object_whole_and_frees_the_background():
    prompt = scene("brown", CROSS)
    squared = scene("black", ("left", "square", "pink", "small"))
    assert keep_marks(squared, prompt, None, [get_concept("night")]) == [
        ("a small pink cross at the left : a small pink square", False), ("one shape", True)
    ]  # fmt: skip


def test_a_palette_compares_shape_and_size_in_each_cell():
    prompt = scene("brown", CROSS, CIRCLE)
    icy = scene("white", ("left", "cross", "cyan", "small"), ("top", "circle", "blue", "small"))
    marks = keep_marks(icy, prompt, None, [get_concept("icy")])
    assert marks == [
        ("a large circle at the top : a small circle", False),  # colour is free, the size is not
        ("a small cross at the left : a small cross", True),
        ("two shapes", True),
    ]
    # The objects come in the order the question's text lists them.
    listed = [Obj(*CROSS), Obj(*CIRCLE)]
    assert [t for t, _ in keep_marks(icy, prompt, None, [get_concept("icy")], listed)][:2] == [
        "a small cross at the left : a small cross", "a large circle at the top : a small circle"
    ]  # fmt: skip


def test_an_empty_cell_holds_nothing_and_a_new_shape_breaks_the_count():
    prompt = scene("brown", CROSS, CIRCLE)
    moved = scene("black", ("right", "cross", "pink", "small"), CIRCLE, ("bottom", "bar", "red", "small"))
    assert keep_marks(moved, prompt, None, [get_concept("night")]) == [
        ("a large red circle at the top : a large red circle", True),
        ("a small pink cross at the left : nothing", False),
        ("two shapes", False),
    ]


def test_a_layout_frees_the_cells_so_objects_are_looked_for_anywhere():
    prompt = scene("gray", CROSS, CIRCLE)
    row = scene("gray", ("bottom left", "cross", "pink", "small"), ("bottom", "circle", "red", "small"))
    assert keep_marks(row, prompt, None, [get_concept("row")]) == [
        ("a large red circle", False), ("a small pink cross", True), ("a gray background", True), ("two shapes", True)
    ]  # fmt: skip


def test_a_built_object_replaces_its_subject_and_keeps_the_others():
    prompt = scene("gray", CROSS, ("center", "bar", "blue", "large"))
    bar = Obj("center", "bar", "blue", "large")
    tree = scene("gray", CROSS, ("top", "triangle", "green", "small"), ("center", "bar", "brown", "small"))
    marks = keep_marks(tree, prompt, bar, [get_concept("tree")])
    assert marks == [("a small pink cross at the left : a small pink cross", True), ("a gray background", True)]


def test_a_symmetric_scene_may_only_hold_the_prompts_kinds_of_object():
    prompt = scene("gray", CROSS)
    mirrored = scene("gray", CROSS, ("right", "cross", "pink", "small"), ("center", "ring", "white", "small"))
    assert keep_marks(mirrored, prompt, None, [get_concept("symmetric")]) == [
        ("a small pink cross", True), ("a gray background", True), ("only a small pink cross", False)
    ]  # fmt: skip


def test_the_marks_hold_together_exactly_when_the_spec_keeps_on_every_concept():
    """On gold elaborations and on their one-attribute changes (the evaluator's hallucinations), for one and two
    concepts: one mark per keep record, all Yes exactly when `check` says the prompt is kept."""
    rng = random.Random(0)
    seen = {c.name: set() for c in LEXICON}
    for _ in range(4000):
        concept = rng.choice(LEXICON)
        prompt = random_scene(rng, max_objects=3)
        subject = rng.choice(nameable_subjects(prompt) or [None]) if concept.rule.subject_based else None
        if concept.rule.subject_based and subject is None:
            continue
        gold = elaborate(prompt, subject, [concept], rng)
        if gold is None:
            continue
        shown = perturb_scene(gold, rng) if rng.random() < 0.5 else gold
        spec = build_spec(prompt, subject, [concept])
        marks = keep_marks(shown, prompt, subject, [concept])
        assert len(marks) == len(spec["keep"])
        assert all(ok for _, ok in marks) == check(shown, spec).kept, (concept.name, prompt, shown, marks)
        seen[concept.name].add(all(ok for _, ok in marks))
    assert all(seen.values()), [name for name, both in seen.items() if not both]
