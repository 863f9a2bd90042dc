"""RLMT's endogenous reward: the frozen evaluator's P(Yes) that the first of two images follows the instruction better.

    p = judge_p_yes(model, first_images, second_images, questions, batch_size=32, max_new_tokens=160)
    reward = order_averaged_reward(p_ours_first, p_ours_second)      # both orders (our default), or p_ours_first

How P(Yes) is read (the paper leaves it open, reference/paper.md §4): the evaluator was trained by RLVR to answer
``<think> ... </think> <answer> Yes|No </answer>``, so it first reasons, greedily, exactly as it answers at test
time; its answer is cut right after the ``<answer>`` tag and the next-token distribution there is read for "Yes"
and "No". P(Yes) is the softmax over just those two (`p_yes_from_logits`): probability mass on other tokens
(a space, "yes") is not a vote either way. An answer that never reaches ``<answer>`` (malformed, or cut by
``max_new_tokens``) scores P(Yes) = 0 and is counted (`JudgeResult.reached_answer`): the evaluator could not
say that ours is better.

The read goes through `UnifiedModel.token_logprobs` on the two completions ``<prefix> Yes`` and ``<prefix> No``:
their summed log-probs differ only in the answer tokens when the prefix tokenizes the same in both, so the
difference is log p(Yes) - log p(No) for any tokenizer (a real BPE one that spells "Yes" in two pieces included),
and the two-token softmax of log-probs equals that of logits (the normaliser cancels).

Position bias: an evaluator that prefers whatever comes first would reward every reprompt. Judging both orders and
averaging ``P(Yes | ours first)`` with ``1 - P(Yes | ours second)`` cancels a constant bias exactly
(`order_averaged_reward`); the paper shows a single order, which stays an option.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from PIL import Image

from seer.data.curriculum import INSTRUCTION_STAGE
from seer.data.pairs import QuestionTemplates
from seer.formats import ANSWER_OPEN, join_response
from seer.models.adapters import EVALUATOR
from seer.models.base import UnifiedModel

YES, NO = "Yes", "No"


def p_yes_from_logits(yes_logit: float, no_logit: float) -> float:
    """P(Yes) of the softmax over the two answer tokens only: ``sigmoid(yes - no)``; log-probs work as well.

    >>> p_yes_from_logits(0.0, 0.0), round(p_yes_from_logits(math.log(3), 0.0), 6)
    (0.5, 0.75)
    """
    diff = float(yes_logit) - float(no_logit)
    if math.isnan(diff):
        raise ValueError(f"p_yes_from_logits: not finite (yes {yes_logit}, no {no_logit})")
    # The two branches keep exp() from overflowing for large |diff|.
    if diff >= 0:
        return 1.0 / (1.0 + math.exp(-diff))
    e = math.exp(diff)
    return e / (1.0 + e)


def order_averaged_reward(p_first: float, p_swapped: float) -> float:
    """The reward of both orders: ``(P(Yes | ours first) + 1 - P(Yes | ours second)) / 2``.

    A judge that adds a constant b to P(Yes) whatever it sees gives ``(p + b + 1 - (1 - p) - b) / 2 = p``: the bias
    cancels. A judge that cannot tell the images apart scores 0.5.
    """
    return (p_first + 1.0 - p_swapped) / 2.0


def answer_prefix(text: str) -> str | None:
    """`text` cut right after its first ``<answer>`` tag (where the verdict comes next), or None if it has none."""
    at = text.find(ANSWER_OPEN)
    return None if at < 0 else text[: at + len(ANSWER_OPEN)]


def judge_question(templates: QuestionTemplates, prompt: str, instruction: str) -> str:
    """The evaluator's whole user message about an instruction pair, as RLVR built it (`QuestionTemplates.text`)."""
    parts = (templates.system_prompt, templates.question(INSTRUCTION_STAGE, prompt, instruction),
             templates.answer_suffix)  # fmt: skip
    return " ".join(part for part in parts if part)


@dataclass
class JudgeResult:
    """The evaluator's judgement of each pair.

    Attributes:
        p_yes: P(Yes) per pair (0.0 where the answer never reached ``<answer>``).
        texts: the evaluator's greedy answers.
        reached_answer: whether each answer reached ``<answer>`` (False: P(Yes) was set to 0).
    """

    p_yes: list[float]
    texts: list[str]
    reached_answer: list[bool]


def judge_p_yes(
    model: UnifiedModel,
    first_images: Sequence[Image.Image],
    second_images: Sequence[Image.Image],
    questions: Sequence[str],
    *,
    batch_size: int = 32,
    max_new_tokens: int = 160,
    role: str | None = EVALUATOR,
    response_prefix: str = "",
) -> JudgeResult:
    """P(Yes) of adapter `role` (None: the base model, a zero-shot judge) for each (first, second, question), the
    answers starting with ``response_prefix`` (`QuestionTemplates.response_prefix`) as RLVR trained them.

    The model's adapter state and train/eval mode are restored afterwards; nothing is differentiated.
    """
    if not len(first_images) == len(second_images) == len(questions):
        raise ValueError(
            f"judge_p_yes: expected as many second images and questions as first images ({len(first_images)}), "
            f"got {len(second_images)} and {len(questions)}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    module = model.module
    was_training = module.training
    module.eval()  # no dropout in a judge
    context: AbstractContextManager[None] = model.no_adapter() if role is None else model.use_adapter(role)
    result = JudgeResult([], [], [])
    try:
        with context, torch.no_grad():
            for start in range(0, len(questions), batch_size):
                part = slice(start, start + batch_size)
                _judge_batch(model, list(first_images[part]), list(second_images[part]), list(questions[part]),
                             max_new_tokens, response_prefix, result)  # fmt: skip
    finally:
        module.train(was_training)
    return result


def _judge_batch(
    model: UnifiedModel, firsts: list[Image.Image], seconds: list[Image.Image], questions: list[str],
    max_new_tokens: int, response_prefix: str, result: JudgeResult,
) -> None:  # fmt: skip
    images = [[a, b] for a, b in zip(firsts, seconds)]
    written = model.generate_text(questions, images, max_new_tokens=max_new_tokens, do_sample=False,
                                  response_prefix=response_prefix).texts  # fmt: skip
    # Scored as one completion from the question on: the prefix's tokens weigh the same in the Yes and No rows.
    texts = [join_response(response_prefix, t) for t in written]
    prefixes = [answer_prefix(t) for t in texts]
    scored = [i for i, p in enumerate(prefixes) if p is not None]
    p_yes = [0.0] * len(texts)
    if scored:
        # One forward over 2k rows: rows [0, k) end in " Yes", rows [k, 2k) in " No".
        rows = [*scored, *scored]
        completions = [f"{prefixes[i]} {YES}" for i in scored] + [f"{prefixes[i]} {NO}" for i in scored]
        out = model.token_logprobs([questions[i] for i in rows], completions, [images[i] for i in rows])
        totals = out.logprobs.sum(dim=1).tolist()  # masked positions are 0
        k = len(scored)
        for j, i in enumerate(scored):
            p_yes[i] = p_yes_from_logits(totals[j], totals[k + j])
    result.p_yes += p_yes
    result.texts += texts
    result.reached_answer += [p is not None for p in prefixes]
