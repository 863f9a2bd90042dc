"""Evaluator accuracy on verified image pairs: zero-shot (every adapter off) against trained (the evaluator adapter).

    pairs = build_or_load_pairs(model, eval_items, "runs/pairs", "eval", settings)   # evaluation items only
    results = evaluate_evaluator(model, pairs, templates)
    results["trained"]["accuracy"], results["zero_shot"]["position_consistency"]

For `seer eval --suite evaluator`. Every pair is asked in both orders (as built, and with the two images swapped),
greedily, so the figures do not depend on which order a pair happened to get. Per mode:

    accuracy              the verdict (`rl.rewards.extract_verdict`, the authors' reading, as the accuracy reward)
                          is right, over both orders of every pair
    strict_accuracy       right and in the strict ``<think> ... </think> <answer> ... </answer>`` format
    position_consistency  pairs answered right in both orders: the verdict flips when the images are swapped,
                          and flips the correct way
    flip_rate             pairs whose two verdicts differ at all (a position-blind evaluator scores 0)
    yes_rate              answers that say Yes (0.5 for an unbiased evaluator on these balanced questions)
    malformed_rate        answers not in the strict format
    no_verdict_rate       answers with no Yes/No verdict at all

and ``by``: accuracy and position consistency per category, difficulty, split, question type (prompt =
stage 1, instruction = stage 2) and failure kind of the bad image. ``samples`` holds the first raw answers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from seer.data.pairs import Pair, PairSet, QuestionTemplates
from seer.errors import SeerError
from seer.eval.base import generate_texts_batched
from seer.formats import parse_answer
from seer.models.adapters import EVALUATOR
from seer.models.base import UnifiedModel
from seer.rl.rewards import extract_verdict

GROUP_FIELDS: tuple[str, ...] = ("category", "difficulty", "split", "question_type", "bad_kind")
FLIPPED = {"Yes": "No", "No": "Yes"}


@dataclass(frozen=True)
class Judgement:
    """The evaluator's answer to one pair shown in one order."""

    pair: Pair
    swapped: bool  # the images were shown the other way round from the pair's own order
    completion: str

    @property
    def expected(self) -> str:
        """The right verdict for the order shown."""
        return FLIPPED[self.pair.answer] if self.swapped else self.pair.answer

    @property
    def verdict(self) -> str | None:
        """"Yes", "No" or None, read as the accuracy reward reads it."""
        return extract_verdict(self.completion)

    @property
    def correct(self) -> bool:
        """The verdict is the right one."""
        return self.verdict is not None and self.verdict.lower() == self.expected.lower()

    @property
    def well_formed(self) -> bool:
        """The answer is in the strict think/answer format."""
        return parse_answer(self.completion) is not None


def judge_pairs(
    model: UnifiedModel,
    pair_set: PairSet,
    pairs: Sequence[Pair],
    templates: QuestionTemplates,
    *,
    swapped: bool = False,
    batch_size: int = 32,
    max_new_tokens: int = 64,
    desc: str = "judging pairs",
) -> list[Judgement]:
    """The greedy answer to every pair (images in the pair's order, or swapped), with the model's current adapters."""
    prompts = [templates.text(p) for p in pairs]
    images = [pair_set.images(p, swapped=swapped) for p in pairs]
    texts = generate_texts_batched(
        model, prompts, images, max_new_tokens=max_new_tokens, batch_size=batch_size, desc=desc,
        response_prefix=templates.response_prefix,
    )  # fmt: skip
    return [Judgement(p, swapped, t) for p, t in zip(pairs, texts, strict=True)]


def accuracy(judgements: Sequence[Judgement]) -> float:
    """The fraction of right verdicts."""
    return sum(j.correct for j in judgements) / len(judgements)


def pairs_accuracy(
    model: UnifiedModel,
    pairs: PairSet,
    templates: QuestionTemplates,
    *,
    batch_size: int = 32,
    max_new_tokens: int = 64,
) -> tuple[float, list[Judgement]]:
    """Greedy accuracy of the model's active adapter on `pairs` in their own (balanced) order, and the answers.

    What RLVR's curriculum measures on its held-out pairs during training: the trainable module is put in eval mode
    for the generation and back in its previous mode afterwards.
    """
    module = model.module
    was_training = module.training
    module.eval()
    try:
        judgements = judge_pairs(
            model, pairs, pairs.pairs, templates, batch_size=batch_size, max_new_tokens=max_new_tokens, desc="held-out"
        )
    finally:
        module.train(was_training)
    return accuracy(judgements), judgements


def summarize(shown: Sequence[Judgement], swapped: Sequence[Judgement]) -> dict[str, Any]:
    """The figures of one mode from the answers to every pair in its own order and swapped (same pair order)."""
    if not shown or len(shown) != len(swapped) or any(a.pair != b.pair for a, b in zip(shown, swapped)):
        raise ValueError("summarize: expected the same non-empty list of pairs in both orders")
    both = [*shown, *swapped]

    def figures(indices: Sequence[int]) -> dict[str, float | int]:
        answers = [shown[i] for i in indices] + [swapped[i] for i in indices]
        return {
            "accuracy": accuracy(answers),
            "position_consistency": sum(shown[i].correct and swapped[i].correct for i in indices) / len(indices),
            "n_pairs": len(indices),
        }

    by: dict[str, dict[str, dict[str, float | int]]] = {}
    for name in GROUP_FIELDS:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, j in enumerate(shown):
            groups[str(getattr(j.pair, name))].append(i)
        by[name] = {group: figures(indices) for group, indices in sorted(groups.items())}
    return {
        **figures(range(len(shown))),
        "strict_accuracy": sum(j.correct and j.well_formed for j in both) / len(both),
        "flip_rate": sum(
            a.verdict is not None and b.verdict is not None and a.verdict != b.verdict for a, b in zip(shown, swapped)
        )
        / len(shown),
        "yes_rate": sum(j.verdict == "Yes" for j in both) / len(both),
        "malformed_rate": sum(not j.well_formed for j in both) / len(both),
        "no_verdict_rate": sum(j.verdict is None for j in both) / len(both),
        "by": by,
    }


def _sample_records(judgements: Sequence[Judgement], n: int) -> list[dict[str, Any]]:
    return [
        {"pair": j.pair.id, "swapped": j.swapped, "expected": j.expected, "completion": j.completion,
         "correct": j.correct, "well_formed": j.well_formed}
        for j in judgements[:n]
    ]  # fmt: skip


def evaluate_evaluator(
    model: UnifiedModel,
    pairs: PairSet,
    templates: QuestionTemplates,
    *,
    role: str = EVALUATOR,
    batch_size: int = 32,
    max_new_tokens: int = 64,
    n_samples: int = 4,
) -> dict[str, Any]:
    """Evaluator figures on `pairs` (built from evaluation items only), zero-shot and, when the model has adapter
    `role`, trained; see the module docstring. Greedy decoding; the model's adapter state is restored afterwards."""
    if not pairs.pairs:
        raise SeerError(f"{pairs.root}: no pairs to evaluate (every candidate was dropped, or no items were given)")
    modes: dict[str, AbstractContextManager[None]] = {"zero_shot": model.no_adapter()}
    if role in model.adapter_names:
        modes["trained"] = model.use_adapter(role)
    results: dict[str, Any] = {
        "n_pairs": len(pairs.pairs),
        "settings": {"decoding": "greedy", "max_new_tokens": max_new_tokens, "orders": "both", "role": role},
    }
    for mode, context in modes.items():
        settings = {"batch_size": batch_size, "max_new_tokens": max_new_tokens}
        with context:
            shown = judge_pairs(model, pairs, pairs.pairs, templates, desc=f"{mode}, shown order", **settings)
            swapped = judge_pairs(
                model, pairs, pairs.pairs, templates, swapped=True, desc=f"{mode}, swapped order", **settings
            )
        results[mode] = {**summarize(shown, swapped), "samples": _sample_records(shown, n_samples)}
    return results
