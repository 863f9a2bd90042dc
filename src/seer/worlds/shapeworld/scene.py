"""ShapeWorld scenes: the vocabulary of the world and the `Scene` value type.

A scene is a background colour and 1-4 objects. Each object has a shape, a colour, a size and one
of the nine cells of a 3x3 grid; two objects never share a cell and no object has the background's
colour (it would be invisible). Scenes are immutable and canonical: objects are kept sorted by cell,
so two scenes that look the same compare equal.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# Colours are chosen far apart in RGB so that an image tokenizer's blur cannot turn one into another.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (245, 225, 30),
    "green": (30, 170, 40),
    "cyan": (40, 220, 230),
    "blue": (30, 60, 220),
    "purple": (130, 40, 180),
    "pink": (255, 150, 200),
    "brown": (120, 70, 20),
    "white": (250, 250, 250),
    "gray": (128, 128, 128),
    "black": (10, 10, 10),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring", "bar")
SIZES: tuple[str, ...] = ("small", "large")
# Row-major cells of the 3x3 grid, named as the literal grammar says them ("at the top left").
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)  # fmt: skip
MAX_OBJECTS = 4


def cell_of(position: str) -> tuple[int, int]:
    """(row, col) of a position name in the 3x3 grid."""
    i = POSITIONS.index(position)
    return divmod(i, 3)


def position_at(row: int, col: int) -> str:
    """Position name of grid cell (row, col)."""
    return POSITIONS[3 * row + col]


@dataclass(frozen=True, order=True)
class Obj:
    """One object of a scene. Field order makes sorting go by cell first."""

    pos: str
    shape: str
    color: str
    size: str

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("shape", self.shape, SHAPES),
            ("color", self.color, COLORS),
            ("size", self.size, SIZES),
            ("pos", self.pos, POSITIONS),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(allowed)}")


@dataclass(frozen=True)
class Scene:
    """A background colour and 1-4 objects in distinct cells, sorted by cell (canonical form)."""

    background: str
    objects: tuple[Obj, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.background not in COLORS:
            raise ValueError(f"unknown background colour {self.background!r}")
        objs = tuple(sorted(self.objects, key=lambda o: POSITIONS.index(o.pos)))
        object.__setattr__(self, "objects", objs)
        if not 1 <= len(objs) <= MAX_OBJECTS:
            raise ValueError(f"a scene has 1-{MAX_OBJECTS} objects, got {len(objs)}")
        cells = [o.pos for o in objs]
        if len(set(cells)) != len(cells):
            raise ValueError(f"two objects share a cell: {cells}")
        for o in objs:
            if o.color == self.background:
                raise ValueError(f"the {o.shape} at the {o.pos} has the background's colour {o.color!r}")


def random_scene(rng: random.Random, n_objects: int | None = None, max_objects: int = 3) -> Scene:
    """A uniformly random valid scene with `n_objects` (default: 1..max_objects) objects."""
    n = n_objects if n_objects is not None else rng.randint(1, max_objects)
    background = rng.choice(list(COLORS))
    cells = rng.sample(POSITIONS, n)
    object_colors = [c for c in COLORS if c != background]
    objs = tuple(Obj(pos, rng.choice(SHAPES), rng.choice(object_colors), rng.choice(SIZES)) for pos in cells)
    return Scene(background, objs)
