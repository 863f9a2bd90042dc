"""Reprompting judged by the oracle: does the image of a reprompt follow the instruction and keep the prompt?

    results = compare_systems(model, items, {"seer": seer_texts, "zero_shot": base_texts}, seeds)
    results["win_ratio"]["seer_vs_naive"]["value"]

For `seer eval --suite reprompt` and `seer run`. Every system is a list of texts, one per VIE item, that the frozen
generator (every adapter off) renders with the item's seed, so the images of one item share their noise and differ
only by text. A text of None (a reprompt that did not parse) draws no image and fails. The systems:

    seer        the trained reprompter's descriptors
    zero_shot   the base model's own reprompts (adapters off): what SEER starts from
    naive       instruction + " " + prompt (`formats.naive_concatenation`): the baseline SEER must beat
    gold        the item's gold elaboration: the upper bound of what the generator can draw
    shuffled    SEER's descriptors given to other items (rotated by one): a descriptor that ignores its item
    constant    the most frequent SEER descriptor for every item

An image *passes* when the oracle reads it, it satisfies every instruction constraint and keeps the prompt. The win
ratio of A over B is (items where only A passes + half the items where both or neither pass) / items; the paper's
human win ratios are 0.61-0.90. The failure taxonomy (`taxonomy.classify_reprompt`) is read from the texts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from seer.data.pairs import oracle_view
from seer.eval.base import generate_images_batched, rate, rates_by
from seer.formats import naive_concatenation
from seer.models.base import UnifiedModel
from seer.worlds.shapeworld.grammar import describe
from seer.worlds.shapeworld.judge import Verdict, verify
from seer.worlds.shapeworld.taxonomy import classify_reprompt, item_field

GROUP_FIELDS = ("category", "difficulty", "split")
# (system A, system B) pairs whose win ratio is reported; "seer_vs_naive" is the headline figure.
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("seer", "naive"), ("seer", "zero_shot"), ("zero_shot", "naive"), ("gold", "naive"), ("shuffled", "naive"),
    ("constant", "naive"),
)  # fmt: skip


def win_ratio(a_passes: Sequence[bool], b_passes: Sequence[bool]) -> float:
    """(wins of A + half the ties) / items, item by item: a tie is both passing or both failing."""
    if not a_passes or len(a_passes) != len(b_passes):
        raise ValueError(f"win_ratio: expected two equal, non-empty lists, got {len(a_passes)} and {len(b_passes)}")
    wins = sum(a and not b for a, b in zip(a_passes, b_passes))
    ties = sum(a == b for a, b in zip(a_passes, b_passes))
    return (wins + 0.5 * ties) / len(a_passes)


def rotated(texts: Sequence[str | None]) -> list[str | None]:
    """Each item gets the next item's text (the last gets the first's): a baseline blind to its own item."""
    return [*texts[1:], *texts[:1]]


def most_frequent(texts: Sequence[str | None]) -> str | None:
    """The most frequent parsed text (the first one seen on ties), or None when none parsed."""
    counts = Counter(t for t in texts if t is not None)
    return counts.most_common(1)[0][0] if counts else None


def baseline_systems(items: Sequence[Any], seer: Sequence[str | None]) -> dict[str, list[str | None]]:
    """The systems that need no model: naive, gold, shuffled and constant (from SEER's own descriptors)."""
    constant = most_frequent(seer)
    return {
        "naive": [naive_concatenation(item_field(it, "instruction"), item_field(it, "prompt")) for it in items],
        "gold": [item_field(it, "gold") for it in items],
        "shuffled": rotated(seer),
        "constant": [constant] * len(items),
    }


def render_and_judge(
    model: UnifiedModel,
    items: Sequence[Any],
    texts: Sequence[str | None],
    seeds: Sequence[int],
    *,
    guidance_scale: float,
    batch_size: int,
    desc: str,
) -> tuple[list[Verdict | None], list[Image.Image | None]]:
    """The frozen generator's image of each text (item i with seeds[i]) and the oracle's verdict; None for None."""
    drawn = [i for i, t in enumerate(texts) if t is not None]
    images: list[Image.Image | None] = [None] * len(texts)
    verdicts: list[Verdict | None] = [None] * len(texts)
    if drawn:
        with model.no_adapter():  # the generator SEER keeps frozen
            out = generate_images_batched(
                model, [texts[i] for i in drawn], [seeds[i] for i in drawn], guidance_scale=guidance_scale,
                temperature=1.0, batch_size=batch_size, desc=desc,
            )  # fmt: skip
        for i, image in zip(drawn, out):
            images[i], verdicts[i] = image, verify(oracle_view(image), items[i])
    return verdicts, images


def passes(verdicts: Sequence[Verdict | None]) -> list[bool]:
    """Whether each image passed (a missing image fails)."""
    return [v is not None and v.passed for v in verdicts]


def taxonomy(items: Sequence[Any], texts: Sequence[str | None]) -> dict[str, float]:
    """The fraction of each outcome of `classify_reprompt` (a text that did not parse counts as malformed)."""
    outcomes = [classify_reprompt(t, it) if t is not None else "malformed" for t, it in zip(texts, items)]
    return {name: count / len(outcomes) for name, count in sorted(Counter(outcomes).items())}


def compare_systems(
    model: UnifiedModel,
    items: Sequence[Any],
    systems: Mapping[str, Sequence[str | None]],
    seeds: Sequence[int],
    *,
    guidance_scale: float,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Render and judge every system (`systems` must hold "seer"; the baselines are added here) and compare them.

    Returns pass rates (overall and by category, difficulty and split), win ratios (`COMPARISONS`, overall and by
    group), the taxonomy of the model-written systems, and per item records; "images" holds each system's images.
    """
    all_systems = {**systems, **baseline_systems(items, systems["seer"])}
    verdicts, images = {}, {}
    for name, texts in all_systems.items():
        verdicts[name], images[name] = render_and_judge(
            model, items, texts, seeds, guidance_scale=guidance_scale, batch_size=batch_size, desc=name
        )
    passed = {name: passes(v) for name, v in verdicts.items()}
    groups = {key: [str(item_field(it, key)) for it in items] for key in GROUP_FIELDS}

    def by_group(a: str, b: str) -> dict[str, dict[str, dict[str, float | int]]]:
        out: dict[str, dict[str, dict[str, float | int]]] = {}
        for key, labels in groups.items():
            out[key] = {}
            for label in sorted(set(labels)):
                idx = [i for i, g in enumerate(labels) if g == label]
                out[key][label] = {"value": win_ratio([passed[a][i] for i in idx], [passed[b][i] for i in idx]),
                                   "n": len(idx)}  # fmt: skip
        return out

    win = {
        f"{a}_vs_{b}": {"value": win_ratio(passed[a], passed[b]), "by": by_group(a, b)}
        for a, b in COMPARISONS
        if a in passed and b in passed
    }
    pass_rates = {
        name: {"value": rate(flags), "by": {key: rates_by(flags, labels) for key, labels in groups.items()},
               "parsed": rate([t is not None for t in all_systems[name]])}
        for name, flags in passed.items()
    }  # fmt: skip
    records = [
        {"id": item_field(it, "id"), "prompt": item_field(it, "prompt"), "instruction": item_field(it, "instruction"),
         "category": item_field(it, "category"), "difficulty": item_field(it, "difficulty"),
         "split": item_field(it, "split"), "seed": seeds[i],
         **{name: {"text": all_systems[name][i], "passed": passed[name][i],
                   "read": None if verdicts[name][i] is None or verdicts[name][i].scene is None
                   else describe(verdicts[name][i].scene)}
            for name in all_systems}}
        for i, it in enumerate(items)
    ]  # fmt: skip
    return {
        "n_items": len(items),
        "pass_rate": pass_rates,
        "win_ratio": win,
        "taxonomy": {name: taxonomy(items, all_systems[name]) for name in ("seer", "zero_shot") if name in systems},
        "records": records,
        "images": images,
    }
