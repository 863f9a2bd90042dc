"""RLVR's verifiable rewards: does the evaluator's answer have the format, and is its Yes/No right?

Both are plain functions in the open-r1 signature that TRL's ``GRPOTrainer`` calls: ``completions`` (one per
sample; a string, or a one-message conversation ``[{"role": "assistant", "content": ...}]``) and the dataset's
other columns as keyword lists, returning one float per completion. The trainer sums them with
``reward_weights`` (the authors' code sums them with weight 1 each, so a sample scores 0, 1 or 2):

- `format_reward`: 1.0 when the completion is exactly ``<think> ... </think> <answer> ... </answer>`` and nothing
  else (`seer.formats.parse_answer`). Stricter than the authors' ``re.fullmatch(r"<think>.*?</think>\\s*
  <answer>.*?</answer>", ...)``, which accepts a second answer block or a tag inside the reasoning: a pilot saw RL
  exploit every such slack within a hundred steps.
- `accuracy_reward`: exactly the authors' ``iqa_reward`` (seer-anonymous ``open_r1/grpo_rec.py``): the first
  ``<answer>(.*?)</answer>`` on one line, then the first ``Yes`` or ``No`` inside it, lower-cased and compared with
  the lower-cased solution. Their search for ``(Yes|No)`` is case-sensitive, so ``<answer> yes </answer>`` scores
  0; only the comparison itself ignores case. Text around the answer does not matter here (the format reward
  judges that).

    >>> format_reward(["<think> a </think> <answer> Yes </answer>", "<answer> Yes </answer>"])
    [1.0, 0.0]
    >>> accuracy_reward(["<think> a </think> <answer> Yes </answer>", "<answer> No </answer>"], ["Yes", "Yes"])
    [1.0, 0.0]
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

from seer.formats import join_response, parse_answer
from seer.worlds.shapeworld.checklist import checklist_score

# A completion as TRL passes it: the text, or the assistant message of a conversational prompt.
Completion = str | list[dict[str, Any]]
RewardFunc = Callable[..., list[float]]

# The authors' patterns, verbatim: no DOTALL (an answer must close on its own line) and a case-sensitive verdict.
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>")
_VERDICT = re.compile(r"(Yes|No)")


def completion_text(completion: Completion) -> str:
    """The text of one completion: the string itself, or the content of its (single) assistant message."""
    if isinstance(completion, str):
        return completion
    return completion[0]["content"]


def extract_verdict(text: str) -> str | None:
    """The authors' reading of an answer: the first "Yes"/"No" inside the first answer block, or None."""
    answer = _ANSWER_TAG.search(text)
    if answer is None:
        return None
    verdict = _VERDICT.search(answer.group(1).strip())
    return None if verdict is None else verdict.group(1)


def format_reward(completions: Sequence[Completion], **kwargs: Any) -> list[float]:
    """1.0 for each completion that is exactly one think block then one answer block (strict), else 0.0."""
    return [1.0 if parse_answer(completion_text(c)) is not None else 0.0 for c in completions]


def accuracy_reward(completions: Sequence[Completion], solution: Sequence[str], **kwargs: Any) -> list[float]:
    """1.0 for each completion whose verdict (`extract_verdict`) equals its solution ("Yes"/"No"), ignoring case."""
    rewards = []
    for completion, expected in zip(completions, solution, strict=True):
        verdict = extract_verdict(completion_text(completion))
        rewards.append(1.0 if verdict is not None and verdict.lower() == expected.lower() else 0.0)
    return rewards


def checklist_reward(completions: Sequence[Completion], checklist: Sequence[Any], **kwargs: Any) -> list[float]:
    """The share of the checklist steps each completion gets right before its first error, against the oracle's
    checklist for the first image (`seer.worlds.shapeworld.checklist`; None, as for prompt pairs, scores 0.0)."""
    return [checklist_score(completion_text(c), expected) for c, expected in zip(completions, checklist, strict=True)]


def after_response_prefix(response_prefix: str, funcs: Sequence[RewardFunc]) -> list[RewardFunc]:
    """The reward functions, each scoring ``join_response(response_prefix, completion)``: when the prompt wrote the
    start of the answer (`QuestionTemplates.response_prefix`), TRL's completions are only what came after it, and
    the format is the whole answer's. Names are kept (TRL's metrics use them)."""
    if not response_prefix:
        return list(funcs)

    def reading(func: RewardFunc) -> RewardFunc:
        @functools.wraps(func)
        def whole(completions: Sequence[Completion], **kwargs: Any) -> list[float]:
            return func([join_response(response_prefix, completion_text(c)) for c in completions], **kwargs)

        return whole

    return [reading(func) for func in funcs]


# name -> reward function, in the order of RLVR's `reward_weights` (a plain dict: two rewards need no registry).
RLVR_REWARDS: dict[str, RewardFunc] = {"format": format_reward, "accuracy": accuracy_reward}
