"""The texts every SEER role reads and writes: ``<think> reasoning </think> <answer> answer </answer>``, and the
naive-concatenation baseline.

It is the format of the paper's evaluator (DeepSeek-R1 style tags), and we use it for the reprompter too:
the reasoning is free text, the answer is what gets checked (Yes/No for the evaluator, a literal
descriptor for the reprompter). Parsing is strict on purpose: a pilot found that every slack in a parser
(text after the answer, repeated closing tags) was exploited by RL within a hundred steps.
"""

from __future__ import annotations

import re

THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE = "<think>", "</think>", "<answer>", "</answer>"
VERDICTS: tuple[str, ...] = ("Yes", "No")
FORMAT_WORDS: tuple[str, ...] = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE, *VERDICTS)

# Exactly one think block then exactly one answer block, nothing before or after (whitespace aside).
_STRICT = re.compile(r"\s*<think>(?P<think>(?:(?!<think>|</think>|<answer>|</answer>).)*)</think>\s*"
                     r"<answer>(?P<answer>(?:(?!<think>|</think>|<answer>|</answer>).)*)</answer>\s*", re.DOTALL)


def format_answer(think: str, answer: str) -> str:
    """``<think> think </think> <answer> answer </answer>`` with single spaces (what a word tokenizer decodes to)."""
    return f"{THINK_OPEN} {think} {THINK_CLOSE} {ANSWER_OPEN} {answer} {ANSWER_CLOSE}"


def naive_concatenation(instruction: str, prompt: str) -> str:
    """The baseline SEER improves on: the instruction pasted before the prompt, as the generator's input."""
    return f"{instruction} {prompt}"


def join_response(response_prefix: str, text: str) -> str:
    """The whole answer when the prompt wrote ``response_prefix`` for the model and it wrote `text` after it.

    >>> join_response("<think> the first image shows", "a red circle </think> <answer> Yes </answer>")
    '<think> the first image shows a red circle </think> <answer> Yes </answer>'
    >>> join_response("", "<think> a </think> <answer> No </answer>")
    '<think> a </think> <answer> No </answer>'
    """
    return f"{response_prefix} {text}" if response_prefix else text


def parse_answer(text: str) -> tuple[str, str] | None:
    """(think, answer), stripped, if `text` is exactly one think block and one answer block; else None."""
    m = _STRICT.fullmatch(text)
    if m is None:
        return None
    return m.group("think").strip(), m.group("answer").strip()
