"""The oracle judge of VIE: does an image satisfy an item's instruction and keep its prompt?

No learned part of any model is involved: the image is read back into a scene by `oracle.parse_image_details`
(plain image arithmetic) and that scene is checked against the item's spec (`spec.check`). This is the ground
truth every SEER figure on ShapeWorld is measured with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from seer.errors import SeerError
from seer.worlds.shapeworld.oracle import parse_image_details
from seer.worlds.shapeworld.scene import Scene
from seer.worlds.shapeworld.spec import check


@dataclass
class Verdict:
    """The oracle's verdict on one image (or scene) for one item."""

    satisfied: bool  # every instruction constraint holds
    kept: bool  # every part of the prompt that must be kept is kept
    scene: Scene | None  # what the oracle read; None when the image is not a readable scene
    failures: list[str] = field(default_factory=list)  # one line per broken constraint, or why it was unreadable
    passed: bool = field(init=False)

    def __post_init__(self) -> None:
        self.passed = self.satisfied and self.kept


def item_spec(item: Any) -> dict[str, Any]:
    """The spec of a dict item or of any object with a `.spec`; SeerError when the item has none."""
    spec = item.get("spec") if isinstance(item, dict) else getattr(item, "spec", None)
    if spec is None:
        where = item.get("id", "?") if isinstance(item, dict) else getattr(item, "id", "?")
        raise SeerError(f"item {where!r}: no 'spec'; the oracle judge needs one (without it only a model can judge)")
    return spec


def verify_scene(scene: Scene | None, item: Any) -> Verdict:
    """The verdict for a scene (None: an unreadable image, which fails)."""
    spec = item_spec(item)
    if scene is None:
        return Verdict(False, False, None, ["image: not a readable scene"])
    result = check(scene, spec)
    return Verdict(result.satisfied, result.kept, scene, result.failures)


def verify(image: Image.Image | np.ndarray, item: Any) -> Verdict:
    """Parse `image` with the oracle and check it against `item`'s spec. An unreadable image fails with the
    oracle's reason."""
    spec = item_spec(item)
    reading = parse_image_details(image)
    if reading.scene is None:
        return Verdict(False, False, None, [f"image: not a readable scene ({reading.problem})"])
    return verify_scene(reading.scene, {"spec": spec})
