"""The oracle judge: rendered gold elaborations pass, rendered prompts fail, unreadable images fail with a reason."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from seer.errors import SeerError
from seer.worlds.shapeworld.grammar import parse
from seer.worlds.shapeworld.items import generate_items
from seer.worlds.shapeworld.judge import Verdict, verify, verify_scene
from seer.worlds.shapeworld.render import render
from seer.worlds.shapeworld.scene import POSITIONS, Scene


@pytest.fixture(scope="module")
def items():
    return generate_items(11, 2, splits=("id", "ood"))  # 48 items, every cell


def test_rendered_gold_passes_and_rendered_prompt_fails(items):
    for it in items:
        gold = verify(render(parse(it["gold"])), it)
        assert (gold.satisfied, gold.kept, gold.passed) == (True, True, True), (it["id"], gold.failures)
        assert gold.scene == parse(it["gold"]) and gold.failures == []
        naive = verify(render(parse(it["prompt"])), it)  # what the literal generator draws for naive concatenation
        assert not naive.satisfied and naive.kept and not naive.passed, it["id"]
        assert naive.failures and all(f.startswith("constraints[") for f in naive.failures)


def test_unreadable_image_fails_with_the_oracles_reason(items):
    blank = np.full((32, 32, 3), 250, dtype=np.uint8)  # a white background with no object
    verdict = verify(blank, items[0])
    assert (verdict.satisfied, verdict.kept, verdict.passed, verdict.scene) == (False, False, False, None)
    assert verdict.failures == ["image: not a readable scene (no object)"]
    assert verify_scene(None, items[0]).passed is False


def test_kept_and_satisfied_are_separate(items):
    it = next(i for i in items if (i["category"], i["difficulty"]) == ("palette", "simple"))
    gold = parse(it["gold"])
    moved, rest = gold.objects[0], gold.objects[1:]
    free = next(p for p in POSITIONS if p not in {o.pos for o in gold.objects})
    # Same colours (still the palette), one object in another cell: a palette keeps cells, so the keep fails.
    shifted = Scene(gold.background, (replace(moved, pos=free),) + rest)
    verdict = verify_scene(shifted, it)
    assert verdict.satisfied and not verdict.kept and not verdict.passed


def test_item_can_be_an_object_and_needs_a_spec(items):
    it = items[0]
    assert verify_scene(parse(it["gold"]), SimpleNamespace(spec=it["spec"])).passed
    with pytest.raises(SeerError, match="item 'x': no 'spec'"):
        verify_scene(parse(it["gold"]), {"id": "x", "spec": None})
    with pytest.raises(SeerError, match="no 'spec'"):
        verify(render(parse(it["gold"])), SimpleNamespace(id="y"))


def test_verdict_passed_is_derived():
    assert Verdict(True, True, None).passed and not Verdict(True, False, None).passed
