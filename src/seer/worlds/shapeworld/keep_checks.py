"""The marks of a keep check: whether a scene keeps what a concept leaves of its prompt, one lookup at a time.

A concept frees some facets of a prompt and leaves the rest (`Rule.kept_facets`; the item spec's keep list,
`items.build_spec`): "icy" frees every colour, so each prompt object must keep its shape, size and cell, and the
shape count stays. The pre-training corpus checks that part by part after a concept check, the way its prompt
checklist does, each object anchored on its cell and compared on the facets the concept leaves:

    keep : a small cross at the left : a small square No , three shapes Yes

One mark per keep-list record, so the marks are all Yes exactly when the spec's keep holds (tested). The evaluator
needs this on the pairs whose failing image shows the concept but loses part of the prompt: about half of its
hallucination pairs, which a concept check alone judges at chance (benchmarks/RESULTS.md, run 28). Corpus run29b's
keep questions lifted those pairs from 0.59-0.63 to 0.70-0.73, not the judge as a whole (run 29, not shipped).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seer.worlds.shapeworld.concept_checks import NUMBER_WORDS, Mark
from seer.worlds.shapeworld.concepts import Concept
from seer.worlds.shapeworld.items import build_spec
from seer.worlds.shapeworld.scene import Obj, Scene
from seer.worlds.shapeworld.spec import matches, violation


def _phrase(size: str, color: str, shape: str) -> str:
    """ "a small cross": an object on the facets a check compares ("" = not compared)."""
    return " ".join(["a", *(w for w in (size, color) if w), shape or "shape"])


def _held(scene: Scene, record: dict[str, Any]) -> str:
    """What the record's cell holds, on the facets the record compares: "a small square" or "nothing"."""
    obj = next((o for o in scene.objects if o.pos == record["positions"][0]), None)
    if obj is None:
        return "nothing"
    return _phrase(obj.size if record["sizes"] else "", obj.color if record["colors"] else "",
                   obj.shape if record["shapes"] else "")  # fmt: skip


def _filters(record: dict[str, Any]) -> bool:
    """Whether a count record counts objects of one kind (a prompt object), not all of them (the shape count)."""
    return any(record[key] for key in ("shapes", "colors", "sizes", "positions"))


def _first(values: list[str]) -> str:
    return values[0] if values else ""


def _record_text(record: dict[str, Any], scene: Scene) -> str:
    """A keep record as a checklist part (the scene is needed for what an anchoring cell holds)."""
    kind = record["kind"]
    if kind == "background":
        return f"a {record['colors'][0]} background"
    if kind == "only":
        parts = zip(record["sizes"], record["colors"], record["shapes"])
        return "only " + " or ".join(_phrase(size, color, shape) for size, color, shape in parts)
    if kind != "count":
        raise ValueError(f"keep record of kind {kind!r}: expected background, count or only")
    if not _filters(record):  # the number of shapes
        n = record["min"]
        return f"{NUMBER_WORDS[n]} shape{'s' if n > 1 else ''}"
    obj = _phrase(_first(record["sizes"]), _first(record["colors"]), _first(record["shapes"]))
    if record["positions"]:  # one prompt object in its cell
        return f"{obj} at the {record['positions'][0]} : {_held(scene, record)}"
    return obj if record["min"] == 1 else f"{NUMBER_WORDS[record['min']]} times {obj}"


def record_mark(record: dict[str, Any], scene: Scene) -> Mark:
    """One keep record of a spec checked on `scene`: (the checklist part, whether the scene keeps it)."""
    return _record_text(record, scene), violation(scene, record) is None


def _listed_rank(record: dict[str, Any], listed: Sequence[Obj]) -> int:
    """Where a record's object comes in the prompt's text (objects first, in that order; then the background, the
    kinds allowed, the count)."""
    if record["kind"] != "count" or not _filters(record):
        return len(listed) + {"background": 0, "only": 1, "count": 2}[record["kind"]]
    return next(i for i, o in enumerate(listed) if matches(o, record))


def keep_marks(scene: Scene, prompt: Scene, subject: Obj | None, concepts: Sequence[Concept],
               listed: Sequence[Obj] | None = None) -> list[Mark]:  # fmt: skip
    """The keep check of `scene` against `prompt` edited for `concepts` (`subject`: the object a subject concept is
    about): one (text, holds) per keep record of the spec, prompt objects in `listed` order (the order a question's
    text lists them; default the prompt's), then the background, the kinds of object allowed, the shape count."""
    records = build_spec(prompt, subject, concepts)["keep"]
    order = list(prompt.objects) if listed is None else list(listed)
    records = sorted(records, key=lambda r: _listed_rank(r, order))  # stable: identical objects stay together
    return [record_mark(r, scene) for r in records]
