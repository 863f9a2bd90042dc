"""Reprompt evaluation (`seer.eval.reprompt`) and the HTML report: hand-derived win ratios, the baselines, and a
literal stub generator whose images the oracle reads exactly (so every pass/fail below is derived by hand)."""

import pytest
import torch
from PIL import Image

from seer.eval.report import image_uri, render_report, table
from seer.eval.reprompt import baseline_systems, compare_systems, most_frequent, rotated, taxonomy, win_ratio
from seer.formats import naive_concatenation
from seer.models.base import ImageGeneration
from seer.worlds.shapeworld.grammar import try_parse
from seer.worlds.shapeworld.items import generate_items
from seer.worlds.shapeworld.render import render

BLANK = Image.new("RGB", (32, 32), (128, 128, 128))


class LiteralGenerator:
    """Draws exactly the literal prompt it is given (a blank image otherwise); records seeds and adapter state."""

    def __init__(self):
        self.calls, self.inside = [], False

    def no_adapter(self):
        gen = self

        class _Ctx:
            def __enter__(self):
                gen.inside = True

            def __exit__(self, *exc):
                gen.inside = False

        return _Ctx()

    def generate_images(self, prompts, *, seeds=None, guidance_scale=None, do_sample=True, temperature=1.0):
        assert self.inside  # the frozen generator: adapters off
        self.calls += list(zip(prompts, seeds))
        scenes = [try_parse(p) for p in prompts]
        images = [BLANK.copy() if s is None else render(s, 32) for s in scenes]
        return ImageGeneration(images=images, token_ids=torch.zeros(len(images), 1, dtype=torch.long))


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([True, True, False, False], [False, True, True, False], (1 + 0.5 * 2) / 4),  # 1 win, 2 ties, 1 loss
        ([True] * 3, [False] * 3, 1.0),
        ([False] * 3, [False] * 3, 0.5),  # all ties: no better, no worse
        ([False, False], [True, True], 0.0),
    ],
)
def test_win_ratio_counts_wins_and_half_the_ties(a, b, expected):
    assert win_ratio(a, b) == pytest.approx(expected)


def test_win_ratio_rejects_unequal_or_empty_lists():
    with pytest.raises(ValueError):
        win_ratio([True], [True, False])
    with pytest.raises(ValueError):
        win_ratio([], [])


def test_shuffled_and_constant_baselines_ignore_their_item():
    assert rotated(["a", "b", "c"]) == ["b", "c", "a"]
    assert most_frequent(["x", None, "y", "y", None]) == "y" and most_frequent([None, None]) is None
    items = generate_items(3, 1, splits=("id",), id_prefix="t")[:3]
    systems = baseline_systems(items, ["s0", None, "s2"])
    assert systems["shuffled"] == [None, "s2", "s0"] and systems["constant"] == ["s0"] * 3  # first seen on a tie
    assert systems["naive"][0] == naive_concatenation(items[0]["instruction"], items[0]["prompt"])
    assert systems["gold"] == [it["gold"] for it in items]


def test_compare_systems_with_a_literal_generator_passes_gold_and_fails_naive():
    items = generate_items(5, 1, splits=("id", "ood"), id_prefix="t")[:8]
    seeds = list(range(100, 108))
    gen = LiteralGenerator()
    seer = [it["gold"] for it in items[:4]] + [it["prompt"] for it in items[4:]]  # half gold, half the plain prompt
    zero_shot = [None] * 8  # never parsed: no image, every item fails
    out = compare_systems(gen, items, {"seer": seer, "zero_shot": zero_shot}, seeds, guidance_scale=1.0)
    # Literal images are read exactly: gold passes every item; the prompt and the naive text never do (the world
    # builds every item so that its prompt alone fails and the naive text does not parse).
    assert out["pass_rate"]["gold"]["value"] == 1.0 and out["pass_rate"]["naive"]["value"] == 0.0
    assert out["pass_rate"]["seer"]["value"] == 0.5
    assert out["pass_rate"]["zero_shot"]["value"] == 0.0 and out["pass_rate"]["zero_shot"]["parsed"] == 0.0
    assert out["win_ratio"]["seer_vs_naive"]["value"] == pytest.approx((4 + 0.5 * 4) / 8)
    assert out["win_ratio"]["gold_vs_naive"]["value"] == 1.0
    assert out["win_ratio"]["seer_vs_zero_shot"]["value"] == pytest.approx((4 + 0.5 * 4) / 8)
    # Every system draws item i with seeds[i]: the images of one item differ only by their text.
    by_text = {}
    for text, seed in gen.calls:
        by_text.setdefault(seed, set()).add(text)
    assert set(by_text) == set(seeds)
    assert all(len(texts) >= 2 for texts in by_text.values())
    assert out["taxonomy"]["zero_shot"] == {"malformed": 1.0}
    assert out["taxonomy"]["seer"]["success"] == 0.5 and out["taxonomy"]["seer"]["omission"] == 0.5
    assert out["records"][0]["seer"]["passed"] and out["records"][0]["seer"]["read"] == items[0]["gold"]


def test_taxonomy_counts_unparsed_texts_as_malformed():
    items = generate_items(5, 1, splits=("id",), id_prefix="t")[:2]
    assert taxonomy(items, [items[0]["prompt"], None]) == {"malformed": 0.5, "omission": 0.5}


def test_report_is_one_html_file_with_the_figures_and_inline_images():
    red = Image.new("RGB", (4, 4), (255, 0, 0))
    assert image_uri(red).startswith("data:image/png;base64,") and image_uri(None) == ""
    records = [{"id": "i<0>", "prompt": "p", "instruction": "make it <b>", "category": "c", "difficulty": "simple",
                "split": "id", "seer": {"text": "t", "passed": True, "read": "t"},
                "naive": {"text": None, "passed": False, "read": None}}]  # fmt: skip
    page = render_report(
        "run", {"win": {"value": 0.875, "before": 0.5, "target": ">= 0.90", "passed": False}}, [("More", "<p>x</p>")],
        records, {"seer": [red], "naive": [None]}, [0],
    )  # fmt: skip
    assert page.startswith("<!doctype html>") and "0.875" in page and "FAIL" in page and "<h2>More</h2>" in page
    assert "make it &lt;b&gt;" in page and "i&lt;0&gt;" in page  # text is escaped
    assert page.count("data:image/png;base64,") == 1 and "did not parse" in page
    assert "<td>-</td>" in table(["a"], [[None]])
