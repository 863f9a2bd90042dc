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
Objects built from shapes, counts and "alone" keep the plain recall: `concept_marks` returns no marks for them, unless
asked for `wholes` (corpus run30): then `Composite` marks each part against the cell it would take (where the stack
matches best), `Multiply` the count of the kind of shape that comes nearest (and "side by side" for a pair), `Solo`
the shape count, then the one shape's size and cell. Run 27's judge's greedy errors include answers that recall
"a pair means two identical shapes side by side in one row" and check nothing (RESULTS, run 29).
"""

from __future__ import annotations

from seer.worlds.shapeworld.concepts import (
    Colours,
    Composite,
    Concept,
    Contrast,
    Layout,
    Multiply,
    Solo,
    Symmetric,
    _or,
)
from seer.worlds.shapeworld.grammar import describe_object
from seer.worlds.shapeworld.scene import Obj, Scene, cell_of, position_at
from seer.worlds.shapeworld.spec import LINES, is_part, mirror_of

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


def held_text(obj: Obj | None) -> str:
    """What a cell holds (`obj`, or None when empty), without its place: "a large red circle" or "nothing"."""
    return "nothing" if obj is None else f"a {obj.size} {obj.color} {obj.shape}"


def _stack_marks(scene: Scene, rule: Composite) -> list[Mark]:
    """Each part against the cell it takes where the stack matches the scene best (the first such place in cell order):
    "a small white circle at the top : a small white circle Yes"."""
    step = (1, 0) if rule.axis == "vertical" else (0, 1)
    span = len(rule.parts) - 1
    by_cell = {cell_of(o.pos): o for o in scene.objects}

    def marks_from(row: int, col: int) -> list[Mark]:
        marks = []
        for i, part in enumerate(rule.parts):
            cell = (row + i * step[0], col + i * step[1])
            asked = " ".join(["a", *(w for w in (part.size, part.color, part.shape) if w)])
            held = by_cell.get(cell)
            ok = held is not None and is_part(held, (part.shape, part.color, part.size))
            marks.append((f"{asked} at the {position_at(*cell)} : {held_text(held)}", ok))
        return marks

    starts = [(r, c) for r in range(3 - span * step[0]) for c in range(3 - span * step[1])]
    return max((marks_from(*start) for start in starts), key=lambda marks: sum(ok for _, ok in marks))


def _copies_marks(scene: Scene, rule: Multiply) -> list[Mark]:
    """The count of one kind of shape (shape and colour, of the rule's size if it has one): a kind that shows the
    concept if any, else the one whose count comes nearest; "two times a white circle : one No", then for a pair
    "two white circle side by side"."""
    kinds = list(dict.fromkeys((o.shape, o.color) for o in scene.objects))

    def copies(kind: tuple[str, str]) -> list[Obj]:
        return [o for o in scene.objects if (o.shape, o.color) == kind and rule.size in ("", o.size)]

    def side_by_side(kind: tuple[str, str]) -> bool:
        cells = {cell_of(o.pos): o.size for o in scene.objects if (o.shape, o.color) == kind}
        return any((r, c + 1) in cells and cells[r, c + 1] == size and rule.size in ("", size)
                   for (r, c), size in cells.items())  # fmt: skip

    def marks(kind: tuple[str, str]) -> list[Mark]:
        n, (shape, color) = len(copies(kind)), kind
        size = f"{rule.size} " if rule.size else ""
        out = [(f"{NUMBER_WORDS[rule.count]} times a {size}{color} {shape} : {NUMBER_WORDS[n]}", n == rule.count)]
        if rule.adjacent:
            out.append((f"two {color} {shape} side by side", side_by_side(kind)))
        return out

    def rank(kind: tuple[str, str]) -> tuple[bool, int]:  # a kind that shows the concept first, then the nearest count
        return not all(ok for _, ok in marks(kind)), abs(len(copies(kind)) - rule.count)

    return marks(min(kinds, key=rank))


def _alone_marks(scene: Scene, rule: Solo) -> list[Mark]:
    """ "one shape", then (when one is left) its size and its cell, as the rule asks: "a large white circle No",
    "the white circle at the left in the center No"."""
    n = len(scene.objects)
    marks = [("one shape", n == 1)]
    if n == 1:
        (obj,) = scene.objects
        if rule.size:
            marks.append((f"a {rule.size} {obj.color} {obj.shape}", obj.size == rule.size))
        if rule.positions:
            where = LINE_TEXT["corners"] if rule.positions == LINES["corners"] else f"the {_or(rule.positions)}"
            marks.append((f"the {obj.color} {obj.shape} at the {obj.pos} in {where}", obj.pos in rule.positions))
    return marks


def concept_marks(scene: Scene, concept: Concept, wholes: bool = False) -> list[Mark]:
    """The checks of `concept` on `scene`, in order, each (text, holds); [] for a concept checked as a whole (objects
    built from shapes, counts, "alone"), unless `wholes`."""
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
    if wholes and isinstance(rule, Composite):
        return _stack_marks(scene, rule)
    if wholes and isinstance(rule, Multiply):
        return _copies_marks(scene, rule)
    if wholes and isinstance(rule, Solo):
        return _alone_marks(scene, rule)
    return []


def marks_text(marks: list[Mark]) -> str:
    """ "the background red No , the blue circle Yes": each part, then whether the scene shows it."""
    return " , ".join(f"{part} {'Yes' if ok else 'No'}" for part, ok in marks)
