"""The machine-checkable `spec` of a VIE item: what a satisfying scene must show and what it must keep.

A spec is a JSON object ``{"constraints": [...], "keep": [...]}``. Both lists hold *constraint records*, flat
dicts with always the same keys and types (Arrow, through `datasets.load_dataset("json")`, infers one schema
for a whole file, so a key may never change type between items):

    concept    str        the concept that asks for this constraint ("" in `keep`)
    kind       str        one of KINDS, below
    shapes     list[str]  shape names
    colors     list[str]  colour names
    sizes      list[str]  size names
    positions  list[str]  cell names ("top left", ...)
    lines      list[str]  names of LINES (rows, columns, diagonals, corners)
    axis       str        "vertical" | "horizontal" (stack only)
    min, max   int        bounds (count, aligned)

Unused fields are empty ("" / [] / 0). The kinds:

- ``background``: the background colour is one of `colors`.
- ``all``: every object matches the *filter* (each non-empty list of shapes/colors/sizes/positions must
  contain the object's value).
- ``count``: between `min` and `max` objects (inclusive) match the filter; an empty filter counts all objects.
- ``only``: every object equals one of the *parts* (part i = shapes[i], colors[i], sizes[i]; "" = any).
- ``stack``: the parts occupy consecutive cells along `axis`: top to bottom (vertical) or left to right
  (horizontal), starting anywhere they fit.
- ``symmetric``: the scene mirrors left to right (each object has a twin of the same shape, colour and size in
  the mirrored cell; objects of the centre column are their own twins).
- ``aligned``: at least `min` objects, and all of them lie within one of `lines`.

`check` says whether a scene satisfies the constraints and keeps the keep-list; `validate_spec` rejects a
malformed spec with a message naming the offending sub-field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from seer.worlds.shapeworld.scene import COLORS, MAX_OBJECTS, POSITIONS, SHAPES, SIZES, Obj, Scene, cell_of

KINDS: tuple[str, ...] = ("background", "all", "count", "only", "stack", "symmetric", "aligned")
AXES: tuple[str, ...] = ("vertical", "horizontal")
LINES: dict[str, tuple[str, ...]] = {
    "top row": ("top left", "top", "top right"),
    "middle row": ("left", "center", "right"),
    "bottom row": ("bottom left", "bottom", "bottom right"),
    "left column": ("top left", "left", "bottom left"),
    "center column": ("top", "center", "bottom"),
    "right column": ("top right", "right", "bottom right"),
    "main diagonal": ("top left", "center", "bottom right"),
    "anti diagonal": ("top right", "center", "bottom left"),
    "corners": ("top left", "top right", "bottom left", "bottom right"),
}
LIST_FIELDS: tuple[str, ...] = ("shapes", "colors", "sizes", "positions", "lines")
# The one record layout of every constraint, with the value an unused field holds.
FIELDS: dict[str, Any] = {
    "concept": "",
    "kind": "",
    "shapes": [],
    "colors": [],
    "sizes": [],
    "positions": [],
    "lines": [],
    "axis": "",
    "min": 0,
    "max": 0,
}
# Which fields each kind reads; validate_spec requires every other field to be left empty.
_USES: dict[str, frozenset[str]] = {
    "background": frozenset({"colors"}),
    "all": frozenset({"shapes", "colors", "sizes", "positions"}),
    "count": frozenset({"shapes", "colors", "sizes", "positions", "min", "max"}),
    "only": frozenset({"shapes", "colors", "sizes"}),
    "stack": frozenset({"shapes", "colors", "sizes", "axis"}),
    "symmetric": frozenset(),
    "aligned": frozenset({"lines", "min"}),
}
_NAMES: dict[str, tuple[str, ...]] = {
    "shapes": SHAPES,
    "colors": tuple(COLORS),
    "sizes": SIZES,
    "positions": POSITIONS,
    "lines": tuple(LINES),
}
_NOUNS = {"shapes": "shape", "colors": "colour", "sizes": "size", "positions": "position", "lines": "line"}


def constraint(kind: str, concept: str = "", **fields: Any) -> dict[str, Any]:
    """A full constraint record: `fields` set, every other key at its empty value. Sequences become lists."""
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown constraint fields {sorted(unknown)}; expected some of {list(FIELDS)}")
    record = {key: (list(default) if isinstance(default, list) else default) for key, default in FIELDS.items()}
    record.update(kind=kind, concept=concept)
    for key, value in fields.items():
        record[key] = list(value) if key in LIST_FIELDS else value
    return record


def make_spec(constraints: list[dict[str, Any]], keep: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The spec object of an item."""
    return {"constraints": constraints, "keep": keep}


@dataclass
class SpecResult:
    """Whether a scene satisfies an item's instruction constraints and keeps what the prompt must keep."""

    satisfied: bool
    kept: bool
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.satisfied and self.kept


# ---------------------------------------------------------------------------------------------------------------
# Checking


def matches(obj: Obj, c: dict[str, Any]) -> bool:
    """Whether `obj` passes the filter of `c` (an empty list does not restrict)."""
    return (
        (not c["shapes"] or obj.shape in c["shapes"])
        and (not c["colors"] or obj.color in c["colors"])
        and (not c["sizes"] or obj.size in c["sizes"])
        and (not c["positions"] or obj.pos in c["positions"])
    )


def _parts(c: dict[str, Any]) -> list[tuple[str, str, str]]:
    return list(zip(c["shapes"], c["colors"], c["sizes"]))


def is_part(obj: Obj, part: tuple[str, str, str]) -> bool:
    shape, color, size = part
    return obj.shape == shape and color in ("", obj.color) and size in ("", obj.size)


def _stack_holds(scene: Scene, parts: list[tuple[str, str, str]], axis: str) -> bool:
    by_cell = {cell_of(o.pos): o for o in scene.objects}
    step = (1, 0) if axis == "vertical" else (0, 1)
    for row in range(3):
        for col in range(3):
            cells = [(row + i * step[0], col + i * step[1]) for i in range(len(parts))]
            if all(cell in by_cell and is_part(by_cell[cell], part) for cell, part in zip(cells, parts)):
                return True
    return False


def mirror_of(obj: Obj, scene: Scene) -> Obj | None:
    """The object in `obj`'s left-right mirror cell (`obj` itself in the centre column), or None."""
    row, col = cell_of(obj.pos)
    return next((o for o in scene.objects if cell_of(o.pos) == (row, 2 - col)), None)


def _filter_text(c: dict[str, Any]) -> str:
    words = [
        " or ".join(c[key]) if key != "positions" else "at the " + " or ".join(c[key])
        for key in ("sizes", "colors", "shapes", "positions")
        if c[key]
    ]
    return " ".join(words) if words else "any"


def _bounds_text(lo: int, hi: int) -> str:
    if lo == hi:
        return f"exactly {lo}"
    return f"at least {lo}" if hi >= MAX_OBJECTS else f"{lo} to {hi}"


def violation(scene: Scene, c: dict[str, Any]) -> str | None:
    """Why `scene` breaks constraint `c`, or None when it holds."""
    kind = c["kind"]
    if kind == "background":
        if scene.background in c["colors"]:
            return None
        return f"background is {scene.background}, expected {' or '.join(c['colors'])}"
    if kind == "all":
        bad = [o for o in scene.objects if not matches(o, c)]
        if not bad:
            return None
        return f"the {bad[0].color} {bad[0].shape} at the {bad[0].pos} is not {_filter_text(c)}"
    if kind == "count":
        n = sum(matches(o, c) for o in scene.objects)
        if c["min"] <= n <= c["max"]:
            return None
        return f"{n} objects are {_filter_text(c)}, expected {_bounds_text(c['min'], c['max'])}"
    if kind == "only":
        parts = _parts(c)
        bad = [o for o in scene.objects if not any(is_part(o, p) for p in parts)]
        if not bad:
            return None
        return f"the {bad[0].size} {bad[0].color} {bad[0].shape} at the {bad[0].pos} is not one of the allowed objects"
    if kind == "stack":
        if _stack_holds(scene, _parts(c), c["axis"]):
            return None
        parts = ", ".join(" ".join(w for w in (size, color, shape) if w) for shape, color, size in _parts(c))
        return f"no {c['axis']} stack of {parts}"
    if kind == "symmetric":
        for o in scene.objects:
            twin = mirror_of(o, scene)
            if twin is None or (twin.shape, twin.color, twin.size) != (o.shape, o.color, o.size):
                return f"the {o.color} {o.shape} at the {o.pos} has no mirror twin"
        return None
    if kind == "aligned":
        if len(scene.objects) < c["min"]:
            return f"{len(scene.objects)} objects, expected at least {c['min']} in a line"
        cells = {o.pos for o in scene.objects}
        if any(cells <= set(LINES[line]) for line in c["lines"]):
            return None
        return f"the objects are not all within one of: {', '.join(c['lines'])}"
    raise ValueError(f"unknown constraint kind {kind!r}; expected one of {list(KINDS)}")


def check(scene: Scene, spec: dict[str, Any]) -> SpecResult:
    """Check `scene` against a (valid) spec: `satisfied` = every constraint holds, `kept` = every keep holds."""
    failures: list[str] = []
    satisfied = kept = True
    for i, c in enumerate(spec["constraints"]):
        if (why := violation(scene, c)) is not None:
            satisfied = False
            failures.append(f"constraints[{i}] ({c['concept'] or c['kind']}): {why}")
    for i, c in enumerate(spec["keep"]):
        if (why := violation(scene, c)) is not None:
            kept = False
            failures.append(f"keep[{i}]: {why}")
    return SpecResult(satisfied=satisfied, kept=kept, failures=failures)


# ---------------------------------------------------------------------------------------------------------------
# Validation


def _validate_constraint(c: Any, where: str) -> None:
    if not isinstance(c, dict):
        raise ValueError(f"{where}: expected an object with keys {list(FIELDS)}")
    missing = [key for key in FIELDS if key not in c]
    if missing:
        raise ValueError(f"{where}: missing key {missing[0]!r} (every constraint has keys {list(FIELDS)})")
    extra = [key for key in c if key not in FIELDS]
    if extra:
        raise ValueError(f"{where}.{extra[0]}: unknown key; expected only {list(FIELDS)}")
    for key in ("concept", "kind", "axis"):
        if not isinstance(c[key], str):
            raise ValueError(f"{where}.{key}: expected a string")
    for key in ("min", "max"):
        if not isinstance(c[key], int) or isinstance(c[key], bool):
            raise ValueError(f"{where}.{key}: expected an integer")
    kind = c["kind"]
    if kind not in KINDS:
        raise ValueError(f"{where}.kind: expected one of {list(KINDS)}, got {kind!r}")
    uses = _USES[kind]
    parts_kind = kind in ("only", "stack")
    for key in LIST_FIELDS:
        value = c[key]
        # In parts kinds, colours and sizes may be "" ("any"), aligned with the shapes.
        allowed = _NAMES[key] + (("",) if parts_kind and key in ("colors", "sizes") else ())
        if not isinstance(value, list) or not all(isinstance(v, str) and v in allowed for v in value):
            raise ValueError(f"{where}.{key}: expected a list of {_NOUNS[key]} names")
        if value and key not in uses:
            raise ValueError(f"{where}.{key}: must be empty for kind {kind!r}")
    for key, empty in (("axis", ""), ("min", 0), ("max", 0)):
        if c[key] != empty and key not in uses:
            raise ValueError(f"{where}.{key}: must be {empty!r} for kind {kind!r}")
    if kind == "background" and not c["colors"]:
        raise ValueError(f"{where}.colors: expected at least one colour name")
    if kind == "count" and not 0 <= c["min"] <= c["max"] <= MAX_OBJECTS:
        raise ValueError(f"{where}.min: expected 0 <= min <= max <= {MAX_OBJECTS}, got {c['min']}..{c['max']}")
    if kind == "aligned":
        if not c["lines"]:
            raise ValueError(f"{where}.lines: expected at least one line name")
        if not 0 <= c["min"] <= MAX_OBJECTS:
            raise ValueError(f"{where}.min: expected 0..{MAX_OBJECTS}, got {c['min']}")
    if parts_kind:
        n = len(c["shapes"])
        if n == 0:
            raise ValueError(f"{where}.shapes: expected at least one part")
        for key in ("colors", "sizes"):
            if len(c[key]) != n:
                raise ValueError(f"{where}.{key}: expected {n} entries, one per shape ('' = any)")
    if kind == "stack":
        if c["axis"] not in AXES:
            raise ValueError(f"{where}.axis: expected one of {list(AXES)}, got {c['axis']!r}")
        if len(c["shapes"]) > 3:
            raise ValueError(f"{where}.shapes: a stack has at most 3 parts (the grid is 3x3)")


def validate_spec(spec: Any) -> None:
    """Raise ValueError naming the first malformed sub-field of `spec` (e.g. "spec.constraints[1].colors: ...")."""
    if not isinstance(spec, dict):
        raise ValueError("spec: expected an object with keys 'constraints' and 'keep'")
    for key in ("constraints", "keep"):
        if key not in spec:
            raise ValueError(f"spec: missing key {key!r}")
        if not isinstance(spec[key], list):
            raise ValueError(f"spec.{key}: expected a list of constraint objects")
    extra = [key for key in spec if key not in ("constraints", "keep")]
    if extra:
        raise ValueError(f"spec.{extra[0]}: unknown key; expected only 'constraints' and 'keep'")
    if not spec["constraints"]:
        raise ValueError("spec.constraints: expected at least one constraint (an item must ask for something)")
    for key in ("constraints", "keep"):
        for i, c in enumerate(spec[key]):
            _validate_constraint(c, f"spec.{key}[{i}]")
