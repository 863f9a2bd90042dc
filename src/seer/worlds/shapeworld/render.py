"""Render a ShapeWorld `Scene` to an RGB image: flat colours, no anti-aliasing, a pure function of the scene.

Layout. The image holds a 3x3 grid of square cells of `pitch` pixels (10 at 32 px, 20 at 64 px) with a
`margin` around the grid (1 px at 32, 2 px at 64). Every object is centred in its cell. Cell centres fall on
pixel boundaries and every extent is even, so shapes are exactly left-right symmetric.

Sizes. A large object spans 0.8 of its cell (8 px at 32), so objects in adjacent cells are always at least
2 px apart. A small object spans 0.6 (6 px at 32): about half the large one's area. It is not half its width
because at 4 px the six shapes cannot be told apart (a 4 px cross and a 4 px circle are the same pixels).

Shapes are defined in unit coordinates (u, v) in [-1, 1]^2 over the object's extent (v grows downwards) and
sampled at pixel centres, so 64 px renders are the same shapes drawn finer. The thresholds below are chosen
away from the pixel-centre samples at both sizes, so no pixel sits on an edge:

- circle: a disc; at 32 px the standard pixel-art discs (rows of 4-6-8-8-8-8-6-4 and 4-6-6-6-6-4 pixels);
- square: the whole extent;
- triangle: pointing up, base at the bottom, a staircase of 2-pixel steps at 32 px;
- cross: a plus sign with arms 0.3 of the extent wide each side of the centre (2 px at 32);
- ring: the disc with a hole of 0.6 of its radius (a 1 px outline when small, 2 px when large, at 32);
- bar: a horizontal band, 0.4 of the extent high each side of the centre (2 px small, 4 px large at 32 px).

The oracle (`oracle.py`) reads images back with these same templates (`object_template`, `cell_slices`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

from seer.worlds.shapeworld.scene import COLORS, SHAPES, SIZES, Scene, cell_of

IMAGE_SIZES: tuple[int, ...] = (32, 64)
# Object extent as a fraction of the cell pitch; both give even pixel counts at 32 and 64 px.
EXTENT: dict[str, float] = {"large": 0.8, "small": 0.6}

_CIRCLE_RADIUS = 1.0  # no pixel centre lies on r = 1 at any of the four extents (6, 8, 12, 16 px)
_RING_HOLE_RADIUS = 0.6
_CROSS_HALF_WIDTH = 0.3
_BAR_HALF_HEIGHT = 0.4
_TRIANGLE_SLACK = 0.15  # widens every row a little, so the apex row is drawn instead of left empty


@dataclass(frozen=True)
class Layout:
    """Grid geometry of one image size: cells of `pitch` pixels starting `margin` pixels from the edge."""

    size: int
    pitch: int
    margin: int


def layout(size: int) -> Layout:
    """Grid geometry for an image of `size` x `size` pixels (32 or 64)."""
    if size not in IMAGE_SIZES:
        raise ValueError(f"image size must be one of {IMAGE_SIZES}, got {size!r}")
    pitch = size * 10 // 32
    return Layout(size=size, pitch=pitch, margin=(size - 3 * pitch) // 2)


def cell_slices(pos: str, size: int) -> tuple[slice, slice]:
    """(rows, cols) slices of the cell named `pos` in an image of `size` pixels."""
    geo = layout(size)
    row, col = cell_of(pos)
    top = geo.margin + row * geo.pitch
    left = geo.margin + col * geo.pitch
    return slice(top, top + geo.pitch), slice(left, left + geo.pitch)


def _shape_mask(shape: str, extent: int) -> np.ndarray:
    """Boolean (extent, extent) mask of `shape` filling its extent; see the module docstring for each shape."""
    centres = (np.arange(extent) + 0.5 - extent / 2) / (extent / 2)  # pixel centres in unit coordinates
    v, u = np.meshgrid(centres, centres, indexing="ij")
    r = np.hypot(u, v)
    if shape == "circle":
        return r <= _CIRCLE_RADIUS
    if shape == "square":
        return np.ones((extent, extent), dtype=bool)
    if shape == "triangle":
        return np.abs(u) <= (v + 1) / 2 + _TRIANGLE_SLACK
    if shape == "cross":
        return (np.abs(u) <= _CROSS_HALF_WIDTH) | (np.abs(v) <= _CROSS_HALF_WIDTH)
    if shape == "ring":
        return (r <= _CIRCLE_RADIUS) & (r > _RING_HOLE_RADIUS)
    if shape == "bar":
        return np.abs(v) <= _BAR_HALF_HEIGHT
    raise ValueError(f"unknown shape {shape!r}; expected one of {list(SHAPES)}")


@cache
def _cached_template(shape: str, obj_size: str, size: int) -> np.ndarray:
    pitch = layout(size).pitch
    if obj_size not in EXTENT:
        raise ValueError(f"unknown size {obj_size!r}; expected one of {list(SIZES)}")
    extent = round(EXTENT[obj_size] * pitch)
    offset = (pitch - extent) // 2
    cell = np.zeros((pitch, pitch), dtype=bool)
    cell[offset : offset + extent, offset : offset + extent] = _shape_mask(shape, extent)
    cell.setflags(write=False)  # shared by every caller through the cache
    return cell


def object_template(shape: str, obj_size: str, size: int) -> np.ndarray:
    """Read-only boolean (pitch, pitch) mask of a `shape` of `obj_size` centred in one cell of a `size` px image."""
    return _cached_template(shape, obj_size, size)


def render_array(scene: Scene, size: int = 32) -> np.ndarray:
    """The scene as a uint8 array of shape (size, size, 3)."""
    geo = layout(size)
    image = np.empty((geo.size, geo.size, 3), dtype=np.uint8)
    image[:] = COLORS[scene.background]
    for obj in scene.objects:
        rows, cols = cell_slices(obj.pos, size)
        image[rows, cols][object_template(obj.shape, obj.size, size)] = COLORS[obj.color]
    return image


def render(scene: Scene, size: int = 32) -> Image.Image:
    """The scene as an RGB PIL image of `size` x `size` pixels (32 or 64)."""
    return Image.fromarray(render_array(scene, size))
