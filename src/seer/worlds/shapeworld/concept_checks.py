"""The marks of a concept check: whether a scene shows a concept, one small lookup at a time.

The pre-training corpus answers "does the first image look icy ?" with a think block that describes the image,
recalls the definition, and then (for the concepts listed below) checks it part by part, each part marked Yes/No:

    the first image shows a small blue circle at the top on a red background . icy means white, cyan and blue .
    the background red No , the blue circle Yes

The verdict is the AND of the marks, and `concept_marks` is built so that it always equals `scene_has_concept`
(tested on every concept). Each mark is one lookup the tiny model can make in any question's frame. Without the
marks, the model answered concept questions right 98.7% of the time in the pre-training frame, but in the
evaluator's instruction frame its sampled verdict after recalling a concept the item asks for agreed with that
concept's truth on the first image only 76% of the time (palettes 83%, atmospheres 76%, compounds 47%, layouts 60%,
counts 72%, objects built from shapes 85%; `benchmarks/judge_recall.py`, run 11, the question without the prompt):
the single verdict did not carry over to a new frame, as yes/no verdicts did not before their checklists
(docs/embedded-model.md, runs 5-7). With the marks (run 14) palettes and layouts follow 91-98%.

Rules with marks: `Colours` (the background, then every object's colour), `Contrast` (the same, then the single
accent-coloured shape), `Layout` (the shape count if a line needs several, then every object against the line that
holds the most of them) and `Symmetric` (every object against what its mirror cell holds, then the line if any).
Objects built from shapes, counts and "alone" keep the plain recall: `concept_marks` returns no marks for them.
"""

from __future__ import annotations

from seer.worlds.shapeworld.concepts import Colours, Concept, Contrast, Layout, Symmetric, _or
from seer.worlds.shapeworld.grammar import describe_object
from seer.worlds.shapeworld.scene import Obj, Scene
from seer.worlds.shapeworld.spec import LINES, mirror_of

Mark = tuple[str, bool]
NUMBER_WORDS = ("zero", "one", "two", "three", "four")
# How a mark names a line of the grid ("main" and "anti" are not words of the tokenizer).
LINE_TEXT: dict[str, str] = {
    **{line: f"the {line}" for line in LINES if line.endswith(("row", "column"))},
    "main diagonal": "the diagonal from the top left",
    "anti diagonal": "the diagonal from the top right",
    "corners": "the corners",
}


def _colour_marks(scene: Scene, background: tuple[str, ...], objects: tuple[str, ...]) -> list[Mark]:
    marks = [(f"the background {scene.background}", scene.background in background)]
    if objects:
        marks += [(f"the {o.color} {o.shape}", o.color in objects) for o in scene.objects]
    return marks


def _line_marks(scene: Scene, lines: tuple[str, ...]) -> list[Mark]:
    """Every object against the line that holds the most of them: all marks are Yes exactly when one line holds
    every object."""
    line = max(lines, key=lambda name: sum(o.pos in LINES[name] for o in scene.objects))
    return [
        (f"the {o.color} {o.shape} at the {o.pos} in {LINE_TEXT[line]}", o.pos in LINES[line]) for o in scene.objects
    ]


def _mirror_mark(obj: Obj, scene: Scene) -> Mark:
    """ "the red circle at the left : a large red circle at the right": the object against what its mirror cell
    holds (an object in the centre column is its own mirror)."""
    twin = mirror_of(obj, scene)
    held = "nothing" if twin is None else describe_object(twin)
    same = twin is not None and (twin.shape, twin.color, twin.size) == (obj.shape, obj.color, obj.size)
    return f"the {obj.color} {obj.shape} at the {obj.pos} : {held}", same


def concept_marks(scene: Scene, concept: Concept) -> list[Mark]:
    """The checks of `concept` on `scene`, in order, each (text, holds); [] for a concept checked as a whole."""
    rule = concept.rule
    if isinstance(rule, Colours):
        return _colour_marks(scene, rule.background, rule.objects)
    if isinstance(rule, Contrast):
        accents = sum(o.color in rule.accent for o in scene.objects)
        marks = _colour_marks(scene, rule.base, rule.base + rule.accent)
        return [*marks, (f"one {_or(rule.accent)} shape", accents == 1)]
    if isinstance(rule, Layout):
        marks = []
        if rule.min_objects > 1:
            marks.append((f"{NUMBER_WORDS[rule.min_objects]} or more shapes", len(scene.objects) >= rule.min_objects))
        return marks + _line_marks(scene, rule.lines)
    if isinstance(rule, Symmetric):
        marks = [_mirror_mark(o, scene) for o in scene.objects]
        return marks + (_line_marks(scene, rule.lines) if rule.lines else [])
    return []


def marks_text(marks: list[Mark]) -> str:
    """ "the background red No , the blue circle Yes": each part, then whether the scene shows it."""
    return " , ".join(f"{part} {'Yes' if ok else 'No'}" for part, ok in marks)
