"""The ShapeWorld renderer: image size, determinism, hand-derived pixel positions, and layout invariants."""

import random

import numpy as np
import pytest
from PIL import Image

from seer.worlds.shapeworld.render import cell_slices, layout, object_template, render, render_array
from seer.worlds.shapeworld.scene import COLORS, SHAPES, SIZES, Obj, Scene, random_scene

RED, WHITE = COLORS["red"], COLORS["white"]


def _scenes(n: int, seed: int = 0) -> list[Scene]:
    rng = random.Random(seed)
    return [random_scene(rng, max_objects=4) for _ in range(n)]


@pytest.mark.parametrize("size", [32, 64])
def test_render_is_an_rgb_image_of_the_requested_size(size):
    image = render(Scene("white", (Obj("center", "circle", "red", "large"),)), size)
    assert isinstance(image, Image.Image)
    assert image.mode == "RGB" and image.size == (size, size)
    assert render_array(Scene("white", (Obj("center", "circle", "red", "large"),)), size).dtype == np.uint8


@pytest.mark.parametrize("size", [16, 48, 128])
def test_other_sizes_are_rejected(size):
    with pytest.raises(ValueError, match="32, 64"):
        render(Scene("white", (Obj("center", "circle", "red", "large"),)), size)


def test_default_size_is_32():
    assert render(Scene("white", (Obj("top", "bar", "red", "small"),))).size == (32, 32)


def test_deterministic_and_independent_of_object_order():
    a = Obj("top left", "ring", "blue", "small")
    b = Obj("bottom", "triangle", "green", "large")
    assert np.array_equal(render_array(Scene("black", (a, b))), render_array(Scene("black", (b, a))))
    for scene in _scenes(20):
        assert np.array_equal(render_array(scene), render_array(scene))
    # and different scenes give different images (the renderer does not ignore any attribute)
    images = {render_array(s).tobytes() for s in _scenes(200)}
    assert len(images) == len(set(_scenes(200)))


def test_layout_hand_derived():
    # 32 px: cells of 10 px from pixel 1 (1 + 3 * 10 + 1 = 32); 64 px: cells of 20 px from pixel 2.
    assert (layout(32).pitch, layout(32).margin) == (10, 1)
    assert (layout(64).pitch, layout(64).margin) == (20, 2)
    assert cell_slices("top left", 32) == (slice(1, 11), slice(1, 11))
    assert cell_slices("right", 32) == (slice(11, 21), slice(21, 31))
    assert cell_slices("bottom", 64) == (slice(42, 62), slice(22, 42))


def test_large_square_pixels_hand_derived():
    # A large object spans 8 of its cell's 10 px, centred: rows/cols 2..9 for the top-left cell at 32 px.
    image = render_array(Scene("white", (Obj("top left", "square", "red", "large"),)), 32)
    expected = np.zeros((32, 32), dtype=bool)
    expected[2:10, 2:10] = True
    assert np.array_equal(np.all(image == RED, axis=-1), expected)
    assert np.array_equal(np.all(image == WHITE, axis=-1), ~expected)


def test_small_bar_and_large_cross_hand_derived():
    # Centre cell 11..20; a small object spans 6 px (13..18); a small bar is 2 px high: rows 15, 16.
    bar = render_array(Scene("white", (Obj("center", "bar", "red", "small"),)), 32)
    expected = np.zeros((32, 32), dtype=bool)
    expected[15:17, 13:19] = True
    assert np.array_equal(np.all(bar == RED, axis=-1), expected)
    # A large cross at the centre: arms 8 px long (12..19) and 2 px wide (15, 16): 16 + 16 - 4 overlap = 28.
    cross = np.all(render_array(Scene("white", (Obj("center", "cross", "red", "large"),)), 32) == RED, axis=-1)
    expected = np.zeros((32, 32), dtype=bool)
    expected[15:17, 12:20] = True
    expected[12:20, 15:17] = True
    assert np.array_equal(cross, expected) and cross.sum() == 28


def test_pixel_art_circle_hand_derived():
    # The standard 8 px pixel-art disc: rows of 4, 6, 8, 8, 8, 8, 6, 4 pixels; the 6 px one: 4, 6, 6, 6, 6, 4.
    assert object_template("circle", "large", 32).sum(axis=1)[1:9].tolist() == [4, 6, 8, 8, 8, 8, 6, 4]
    assert object_template("circle", "small", 32).sum(axis=1)[2:8].tolist() == [4, 6, 6, 6, 6, 4]


@pytest.mark.parametrize("size", [32, 64])
def test_templates_are_distinct_symmetric_and_leave_a_gap(size):
    pitch = layout(size).pitch
    masks = {(s, z): object_template(s, z, size) for s in SHAPES for z in SIZES}
    assert len({m.tobytes() for m in masks.values()}) == len(masks)  # twelve different pictures
    gap = {32: 1, 64: 2}[size]  # (pitch - large extent) / 2: objects in adjacent cells are >= 2 gaps apart
    for (shape, obj_size), m in masks.items():
        assert m.shape == (pitch, pitch)
        assert not m[:gap].any() and not m[-gap:].any() and not m[:, :gap].any() and not m[:, -gap:].any()
        assert np.array_equal(m, m[:, ::-1]), f"{obj_size} {shape} is not left-right symmetric"
        if shape != "triangle":
            assert np.array_equal(m, m[::-1]), f"{obj_size} {shape} is not up-down symmetric"
    for shape in SHAPES:  # small is smaller: about half the area of large
        ratio = masks[(shape, "small")].sum() / masks[(shape, "large")].sum()
        assert 0.3 < ratio < 0.75, (shape, ratio)


@pytest.mark.parametrize("size", [32, 64])
def test_background_outside_objects_and_object_colour_at_solid_centres(size):
    for scene in _scenes(100, seed=size):
        image = render_array(scene, size)
        covered = np.zeros((size, size), dtype=bool)
        for obj in scene.objects:
            rows, cols = cell_slices(obj.pos, size)
            mask = np.zeros((size, size), dtype=bool)
            mask[rows, cols] = object_template(obj.shape, obj.size, size)
            assert np.all(image[mask] == COLORS[obj.color])
            covered |= mask
            # The four pixels around the cell centre: the object's colour, except in a ring's hole.
            mid_r, mid_c = (rows.start + rows.stop) // 2, (cols.start + cols.stop) // 2
            centre = image[mid_r - 1 : mid_r + 1, mid_c - 1 : mid_c + 1].reshape(-1, 3)
            expected = scene.background if obj.shape == "ring" else obj.color
            assert np.all(centre == COLORS[expected]), (obj, expected)
        assert np.all(image[~covered] == COLORS[scene.background])


@pytest.mark.parametrize("size", [32, 64])
def test_objects_in_adjacent_cells_never_touch(size):
    # Large squares fill the most of their cells: no pixel of one may be 8-connected to a pixel of its neighbour
    # (beside, below, or diagonal).
    for a, b in [("top left", "top"), ("top left", "left"), ("top left", "center"), ("top", "left")]:
        scene = Scene("white", (Obj(a, "square", "red", "large"), Obj(b, "square", "blue", "large")))
        image = render_array(scene, size)
        red = np.all(image == COLORS["red"], axis=-1)
        blue = np.all(image == COLORS["blue"], axis=-1)
        grown = np.zeros_like(red)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                grown |= np.roll(np.roll(red, dr, axis=0), dc, axis=1)
        assert red.any() and blue.any() and not (grown & blue).any(), (a, b)


def test_gap_between_adjacent_large_squares_is_two_pixels_hand_derived():
    # Cells 1..10 and 11..20, objects 2..9 and 12..19: columns 10 and 11 stay background.
    scene = Scene("white", (Obj("top left", "square", "red", "large"), Obj("top", "square", "blue", "large")))
    image = render_array(scene, 32)
    assert np.all(image[:, 10:12] == WHITE)
    assert np.all(image[2:10, 9] == RED) and np.all(image[2:10, 12] == COLORS["blue"])


def test_templates_are_read_only():
    with pytest.raises(ValueError):
        object_template("circle", "large", 32)[0, 0] = True
