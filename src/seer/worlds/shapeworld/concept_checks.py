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

A concept question that quotes the prompt the image was drawn for ("does the first image look icy ? prompt : P")
also asks whether the image is still that prompt: `keep_marks` checks what the concept leaves of P (the item
spec's keep list, `items.build_spec`) one part at a time, after "kept :", and the verdict is the AND of both
kinds of marks:

    ... icy means white, cyan and blue . the background white Yes , the blue circle Yes .
    kept : a small circle at the top : a small blue circle Yes , one shape Yes
"""

from __future__ import annotations

from typing import Any

from seer.worlds.shapeworld.concepts import Colours, Concept, Contrast, Layout, Symmetric, _or
from seer.worlds.shapeworld.grammar import describe_object
from seer.worlds.shapeworld.scene import Obj, Scene
from seer.worlds.shapeworld.spec import LINES, mirror_of, violation

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


def in_cell(scene: Scene, pos: str) -> str:
    """What the scene has in cell `pos`: "a large red circle" (the object without its place) or "nothing"."""
    obj = next((o for o in scene.objects if o.pos == pos), None)
    return "nothing" if obj is None else f"a {obj.size} {obj.color} {obj.shape}"


def shape_count(n: int) -> str:
    """ "one shape", "three shapes"."""
    return f"{NUMBER_WORDS[n]} shape{'s' if n > 1 else ''}"


def _kept_object(c: dict[str, Any]) -> str:
    """A keep filter as an object: "a small circle at the top" (facets the concept frees are left out)."""
    words = [*c["sizes"], *c["colors"], *(c["shapes"] or ["shape"])]
    return " ".join(["a", *words]) + (f" at the {c['positions'][0]}" if c["positions"] else "")


def _keep_text(c: dict[str, Any], scene: Scene) -> str:
    kind = c["kind"]
    if kind == "background":
        return f"a {c['colors'][0]} background"
    if kind == "only":
        parts = [" ".join(["a", *(w for w in p if w)]) for p in zip(c["sizes"], c["colors"], c["shapes"])]
        return "only " + " or ".join(parts)
    if kind == "count" and not any(c[key] for key in ("shapes", "colors", "sizes", "positions")):
        return shape_count(c["min"])  # the number of objects, which the concept does not change
    if kind == "count":
        text = _kept_object(c)
        if c["min"] > 1:
            text = f"{NUMBER_WORDS[c['min']]} of {text}"
        # Anchored on its cell when the place is kept, as the checklists of prompt questions are.
        return f"{text} : {in_cell(scene, c['positions'][0])}" if c["positions"] else text
    raise ValueError(f"no keep mark for constraint kind {kind!r}")


def keep_marks(scene: Scene, keep: list[dict[str, Any]]) -> list[Mark]:
    """The checks of what `scene` must keep of its prompt (a spec's keep list), in order, each (text, holds): all
    are Yes exactly when the spec's keep holds."""
    return [(_keep_text(c, scene), violation(scene, c) is None) for c in keep]


def marks_text(marks: list[Mark]) -> str:
    """ "the background red No , the blue circle Yes": each part, then whether the scene shows it."""
    return " , ".join(f"{part} {'Yes' if ok else 'No'}" for part, ok in marks)
