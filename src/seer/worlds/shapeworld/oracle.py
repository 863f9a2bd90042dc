"""The oracle image parser: read a ShapeWorld image back into a `Scene` with no learned model.

It is the ground truth that SEER's numbers are measured with, so it is plain image arithmetic against the
renderer's own templates (`render.object_template`):

1. Background: the palette colour that most pixels are nearest to. Its observed value (the median of those
   pixels) is the reference everything else is measured from, so a global colour shift moves nothing.
2. Every cell is explained by a generative model, `pixel = background + T * (colour - background)`, for every
   palette colour and every template T of every (shape, size), blurred by each of a few amounts (`BLURS`). An
   edge pixel of a blurred image is exactly such a mix, so blur changes T, not the colour read. The squared
   RGB error of each explanation is compared with the error of "nothing here".
3. One blur is chosen for the whole image (it belongs to the image or tokenizer, not to one object): the one
   whose best explanations, empty cells included, fit best. A clean render fits the unblurred templates with
   error 0, so clean renders are read exactly.
4. A cell holds an object if its best explanation accounts for at least `MIN_SIGNAL` fully coloured pixels
   more than "nothing here" does; pixel noise and the blur spilling from a neighbour stay well below that.
   Shape and colour errors are judged after taking out what the image's pixel noise (measured on the
   background) adds to them on average, so the same thresholds hold for clean and noisy images.
5. The image the reading predicts (blurred templates over the background) is subtracted from the image; what
   is left in a cell read as empty must be noise, or the image holds something no object explains.

`parse_image` returns None when the image is not a valid scene: no object, more than four, an object that
matches no template (`MAX_SHAPE_ERROR`) or no single palette colour (`MAX_COLOR_RESIDUAL`), or pixels that no
object explains in an empty cell (`MAX_UNEXPLAINED`: an object off the grid, or half of one).
`parse_image_details` also returns every cell's reading and scores, for debugging and reports. `degrade` is
the simulated image-tokenizer round trip (blur + pixel noise) that the oracle's robustness is measured on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

import numpy as np
from PIL import Image

from seer.worlds.shapeworld.render import cell_slices, layout, object_template
from seer.worlds.shapeworld.scene import COLORS, MAX_OBJECTS, POSITIONS, SHAPES, SIZES, Obj, Scene

_NAMES: tuple[str, ...] = tuple(COLORS)
_PALETTE = np.array([COLORS[c] for c in _NAMES], dtype=np.float32)  # (C, 3)
_TEMPLATE_KEYS: tuple[tuple[str, str], ...] = tuple((shape, size) for shape in SHAPES for size in SIZES)
# Template blurs (Gaussian sigma in pixels of a 32 px image; scaled with the image). 0 reads clean renders.
BLURS: tuple[float, ...] = (0.0, 0.5, 0.8, 1.1, 1.5)

# Reading thresholds, in units that do not depend on the image size.
MIN_SIGNAL = 1.0  # fully coloured pixels (of a 32 px image) an object must explain; fewer means an empty cell
MAX_SHAPE_ERROR = 0.15  # squared error to the best template beyond the noise, as a fraction of its area
MAX_UNEXPLAINED = 3  # 2 x 2 windows (at 32 px) in an empty cell that no object read explains
MAX_COLOR_RESIDUAL = 60.0  # RMS RGB distance of the object's pixels from its colour's mixing line


@dataclass(frozen=True)
class CellReading:
    """What the oracle saw in one cell; `shape`, `size` and `color` are None for an empty cell."""

    pos: str
    signal: float  # how many fully coloured pixels (at 32 px) the best object explains: ~0 for an empty cell
    color: str | None = None
    color_residual: float = 0.0  # RMS distance of the object's pixels from the bg -> colour line, beyond the noise
    shape: str | None = None
    size: str | None = None
    error: float = 0.0  # squared error to the best template beyond the noise, / its area (0 = exact)
    runner_up: str | None = None  # the second-best "size shape", for debugging confusions
    margin: float = 0.0  # runner-up's error minus the best's: how clear the call was
    unexplained: int = 0  # empty cells: 2 x 2 windows that are neither background nor a neighbour's blur


@dataclass(frozen=True)
class ImageReading:
    """The parsed scene (None if unreadable, with `problem` saying why) and every cell's reading."""

    scene: Scene | None
    background: str
    blur: float  # the template blur that fit best, in pixels of a 32 px image
    noise: float  # pixel noise (std per channel) measured on the background
    cells: tuple[CellReading, ...]  # the 9 cells, row-major
    problem: str | None = None


def _as_array(image: Image.Image | np.ndarray) -> np.ndarray:
    arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"expected a square RGB image (H, W, 3), got shape {arr.shape}")
    layout(arr.shape[0])  # raises for sizes other than 32 and 64
    return arr


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(arr: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a (H, W) or (H, W, C) float array over its first two axes (edges reflected)."""
    if sigma <= 0:
        return arr.astype(np.float32)
    k = _gaussian_kernel(sigma)
    r = len(k) // 2
    out = arr.astype(np.float32)
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="reflect")
        n = out.shape[axis]
        out = sum(w * np.take(padded, range(i, i + n), axis=axis) for i, w in enumerate(k))
    return out


@cache
def _templates(size: int) -> np.ndarray:
    """(len(BLURS), len(_TEMPLATE_KEYS), pitch, pitch) float templates: every (shape, size) at every blur."""
    pitch = layout(size).pitch
    pad = pitch // 2  # blur the template in a larger canvas so the cell edge does not reflect it back
    out = np.zeros((len(BLURS), len(_TEMPLATE_KEYS), pitch, pitch), dtype=np.float32)
    for k, (shape, obj_size) in enumerate(_TEMPLATE_KEYS):
        canvas = np.pad(object_template(shape, obj_size, size).astype(np.float32), pad)
        for b, sigma in enumerate(BLURS):
            out[b, k] = gaussian_blur(canvas, sigma * size / 32)[pad:-pad, pad:-pad]
    out.setflags(write=False)
    return out


@cache
def _template_areas(size: int) -> np.ndarray:
    return np.array([object_template(s, z, size).sum() for s, z in _TEMPLATE_KEYS], dtype=np.float32)


def _background(arr: np.ndarray) -> tuple[int, np.ndarray, float]:
    """Palette index of the dominant colour, its observed value, and the pixel noise (std per channel).

    The value is the median of the pixels nearest to that colour; the noise their median absolute deviation
    from it (scaled to a Gaussian's std), which object edges among those pixels barely move.
    """
    pixels = arr.reshape(-1, 3)
    nearest = np.argmin(((pixels[:, None, :] - _PALETTE[None]) ** 2).sum(-1), axis=1)
    index = int(np.bincount(nearest, minlength=len(_NAMES)).argmax())
    background = pixels[nearest == index]
    value = np.median(background, axis=0)
    noise = 1.4826 * float(np.median(np.abs(background - value)))
    return index, value, noise


def _fit_cells(
    patches: np.ndarray, bg: np.ndarray, bg_index: int, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Squared RGB error of every explanation of every cell (K, C, B, T), with the `alpha` (K, P, P, C) and
    `(alpha - T)^2` sums (K, C, B, T) it is made of; K cells, C colours, B blurs, T templates.

    The model of an object is `bg + T * (color - bg)` for a blurred template T. Writing a pixel's offset from the
    background as its position `alpha` along the line bg -> color plus a perpendicular part, the error splits
    into the perpendicular energy (colour fit) and `|color - bg|^2 * (alpha - T)^2` (shape fit).
    """
    offsets = patches - bg  # (K, P, P, 3)
    directions = _PALETTE - bg  # (C, 3)
    lengths2 = np.maximum((directions**2).sum(-1), 1e-6)  # (C,); ~0 only for the background itself
    alpha = offsets @ directions.T / lengths2  # (K, P, P, C), unclipped so the split above is exact
    perpendicular = ((offsets**2).sum(-1)[..., None] - alpha**2 * lengths2).sum((1, 2))  # (K, C)
    templates = _templates(size)  # (B, T, P, P)
    shape_sq = (
        (alpha**2).sum((1, 2))[:, :, None, None]
        - 2 * np.einsum("kijc,btij->kcbt", alpha, templates)
        + (templates**2).sum((-1, -2))[None, None]
    )  # (K, C, B, T): sum over the cell of (alpha - T)^2
    errors = perpendicular[:, :, None, None] + lengths2[None, :, None, None] * shape_sq
    errors[:, bg_index] = np.inf  # an object never has the background's colour
    return errors, alpha, shape_sq


def parse_image_details(image: Image.Image | np.ndarray) -> ImageReading:
    """Read the image into a scene (or None) and report what was seen in every cell."""
    arr = _as_array(image)
    size = arr.shape[0]
    scale2 = (size / 32) ** 2  # areas are counted in pixels of a 32 px image
    bg_index, bg, noise = _background(arr)
    patches = np.stack([arr[cell_slices(pos, size)] for pos in POSITIONS])  # (9, P, P, 3)
    errors, alpha, shape_sq = _fit_cells(patches, bg, bg_index, size)  # (9, C, B, T), (9, P, P, C), (9, C, B, T)
    empty = ((patches - bg) ** 2).sum((1, 2, 3))  # (9,): the error of "nothing here"
    # One blur for the whole image (it belongs to the image or tokenizer, not to one object); each cell may be empty.
    blur_index = int(np.minimum(errors.min((1, 3)), empty[:, None]).sum(0).argmin())

    cells = []
    areas = _template_areas(size)
    for i, pos in enumerate(POSITIONS):
        err = errors[i, :, blur_index]  # (C, T)
        c, t = np.unravel_index(int(err.argmin()), err.shape)
        direction = _PALETTE[c] - bg
        # What the best object explains, in fully coloured pixels: noise and a neighbour's blur explain ~0-1.
        signal = float((empty[i] - err[c, t]) / (direction @ direction) / scale2)
        if signal < MIN_SIGNAL:
            cells.append(CellReading(pos, signal))
            continue
        ranked = np.argsort(err[c])
        # Pixel noise adds to both fits on average: noise^2 / |colour - bg|^2 to every pixel's (alpha - T)^2, and
        # 2 noise^2 to the squared distance off the colour line (2 of the 3 channel directions). Take it out, so
        # that the thresholds judge the shape and colour, not the noise.
        shape_noise = noise**2 / float(direction @ direction) * alpha[i, :, :, c].size
        pure = alpha[i, :, :, c] >= 0.5  # the object's own pixels: edge pixels are mixes
        perpendicular = patches[i][pure] - bg - alpha[i][pure][:, c, None] * direction
        off_line = max(0.0, float((perpendicular**2).sum(-1).mean()) - 2 * noise**2) if pure.any() else 0.0
        cells.append(
            CellReading(
                pos=pos,
                signal=signal,
                color=_NAMES[c],
                color_residual=float(np.sqrt(off_line)),
                shape=_TEMPLATE_KEYS[t][0],
                size=_TEMPLATE_KEYS[t][1],
                error=float((shape_sq[i, c, blur_index, t] - shape_noise) / areas[t]),
                runner_up=" ".join(_TEMPLATE_KEYS[ranked[1]][::-1]),
                margin=float((shape_sq[i, c, blur_index, ranked[1]] - shape_sq[i, c, blur_index, t]) / areas[t]),
            )
        )
    # Whatever the objects read do not explain must not hide in an "empty" cell: an object off the grid, or one
    # too faint to count, makes the image unreadable rather than silently dropped. The residual is averaged over
    # windows of 2 x 2 pixels (at 32 px), which halves the pixel noise and keeps any blob worth calling one.
    window = 2 * size // 32
    unexplained = np.linalg.norm(_box_mean(arr - _predict(cells, bg, size, BLURS[blur_index]), window), axis=-1)
    others = np.delete(_PALETTE, bg_index, axis=0)
    floor = max(0.5 * float(np.linalg.norm(others - _PALETTE[bg_index], axis=1).min()), 4 * noise)
    for i, cell in enumerate(cells):
        if cell.shape is None:
            rows, cols = cell_slices(cell.pos, size)
            inside = unexplained[rows.start : rows.stop - window + 1, cols.start : cols.stop - window + 1]
            count = int((inside > floor).sum())  # the windows that lie wholly inside the cell
            cells[i] = replace(cell, unexplained=count)
    background = _NAMES[bg_index]
    scene, problem = _scene(background, tuple(cells), scale2)
    return ImageReading(scene, background, BLURS[blur_index], noise, tuple(cells), problem)


def _box_mean(arr: np.ndarray, window: int) -> np.ndarray:
    """Mean of every `window` x `window` block of an (H, W, C) array, indexed by its top-left pixel (H, W, C).

    Windows that would cross the bottom or right edge are cut short by zero padding; they only matter in the
    image margin, which no cell reaches."""
    padded = np.pad(arr, ((0, window - 1), (0, window - 1), (0, 0)))
    return sum(padded[r : r + arr.shape[0], c : c + arr.shape[1]] for r in range(window) for c in range(window)) / (
        window * window
    )


def _predict(cells: list[CellReading], bg: np.ndarray, size: int, blur: float) -> np.ndarray:
    """The (size, size, 3) image the reading predicts: each object's template, blurred, over the background."""
    image = np.zeros((size, size, 3), dtype=np.float32) + bg
    for cell in cells:
        if cell.shape is None:
            continue
        mask = np.zeros((size, size), dtype=np.float32)
        mask[cell_slices(cell.pos, size)] = object_template(cell.shape, cell.size, size)
        # Blurred over the whole image, so the light it spills into a neighbouring cell is predicted too.
        image += gaussian_blur(mask, blur * size / 32)[..., None] * (_PALETTE[_NAMES.index(cell.color)] - bg)
    return image


def _scene(background: str, cells: tuple[CellReading, ...], scale2: float) -> tuple[Scene | None, str | None]:
    objects = [c for c in cells if c.shape is not None]
    if not objects:
        return None, "no object"
    if len(objects) > MAX_OBJECTS:
        return None, f"{len(objects)} objects (at most {MAX_OBJECTS})"
    for c in objects:
        if c.error > MAX_SHAPE_ERROR:
            return None, f"the object at the {c.pos} matches no shape (error {c.error:.2f})"
        if c.color_residual > MAX_COLOR_RESIDUAL:
            return None, f"the object at the {c.pos} has no single colour (residual {c.color_residual:.0f})"
    for c in cells:
        if c.unexplained >= MAX_UNEXPLAINED * scale2:
            return None, f"{c.unexplained} patches at the {c.pos} are neither background nor an object"
    return Scene(background, tuple(Obj(c.pos, c.shape, c.color, c.size) for c in objects)), None


def parse_image(image: Image.Image | np.ndarray) -> Scene | None:
    """The scene an image shows, or None when it cannot be read as a valid scene."""
    return parse_image_details(image).scene


def degrade(image: Image.Image | np.ndarray, seed: int, blur: float = 0.8, noise: float = 8.0) -> np.ndarray:
    """A simulated image-tokenizer round trip: Gaussian blur (`blur` px at 32 px, scaled with the image) and
    seeded per-pixel Gaussian colour noise of std `noise`, rounded back to uint8."""
    arr = _as_array(image)
    out = gaussian_blur(arr, blur * arr.shape[0] / 32)
    out = out + np.random.default_rng(seed).normal(0.0, noise, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
