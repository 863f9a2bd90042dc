"""The reprompter's text: its question (prompt + instruction), its strict answer parser, and batched reprompting.

    outs = generate_reprompts(model, prompts, instructions, role=REPROMPTER, template=REPROMPT_TEMPLATE,
                              max_new_tokens=96, batch_size=32)                 # greedy; role None: the base model
    outs[0].descriptor        # the literal descriptor the frozen generator renders, or None (outs[0].reason says why)

The reprompter answers ``<think> reasoning </think> <answer> descriptor </answer>`` (`seer.formats`). What it is
rewarded for is the descriptor alone, so the parser is strict (a pilot saw RL exploit every slack in a parser
within a hundred steps, reference/pilot-rl-concepts.md): exactly one think block and one answer block and nothing
else; the descriptor non-empty and at most ``max_words`` words; and, on ShapeWorld (``grammar="shapeworld"``),
a sentence of the literal prompt grammar (`seer.worlds.shapeworld.grammar.parse`), since the frozen generator was
only ever trained on those. A real model's descriptor is free text (``grammar="none"``).

The default question is in the embedded model's vocabulary and has the form of its pre-training rewrite under a
literal constraint ("rewrite the prompt : {prompt} . use : {constraint}", `seer.worlds.shapeworld.corpus`), with
the instruction where the literal constraint stood: the base model answers it in the format with a literal prompt,
and some of its answers recall the concept and apply it (5.2% of sampled reprompts satisfy the held-out item,
against 1.8% under "... . instruction : {instruction}"; benchmarks/RESULTS.md), so RL starts from a policy that can
reach a reward.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

from seer.formats import parse_answer
from seer.models.base import UnifiedModel
from seer.worlds.shapeworld.grammar import try_parse

# Every word is in seer.worlds.shapeworld.corpus.corpus_words() (checked by the tests).
REPROMPT_TEMPLATE = "rewrite the prompt : {prompt} . use : {instruction}"
# The paper's wording for a real model (English; Janus-Pro and Harmon recipes).
REPROMPT_TEMPLATE_EN = (
    "Rewrite the prompt so that the image follows the instruction. Prompt: {prompt} Instruction: {instruction} "
    "First output the thinking process in <think> </think> tags and then output the rewritten prompt in "
    "<answer> </answer> tags."
)
Grammar = Literal["shapeworld", "none"]
GRAMMARS: tuple[str, ...] = ("shapeworld", "none")
# Why a reprompt has no descriptor (`Reprompt.reason`); counted in the training logs.
MALFORMED, EMPTY, TOO_LONG, OUTSIDE_GRAMMAR = "malformed", "empty", "too_long", "outside_grammar"
REASONS: tuple[str, ...] = (MALFORMED, EMPTY, TOO_LONG, OUTSIDE_GRAMMAR)


@dataclass(frozen=True)
class Reprompt:
    """One reprompter answer, parsed.

    Attributes:
        text: the raw answer.
        descriptor: what the generator renders, or None when the answer is rejected.
        reasoning: the think block's text (None when the format is broken).
        reason: why the answer was rejected (one of `REASONS`), or None.
    """

    text: str
    descriptor: str | None
    reasoning: str | None
    reason: str | None


def check_template(template: str, key: str = "reprompt_template") -> None:
    """ValueError unless `template` has exactly the placeholders {prompt} and {instruction}."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:
        raise ValueError(f"{key}: not a valid template ({error}); write literal braces as {{{{ }}}}") from None
    if names != {"prompt", "instruction"}:
        raise ValueError(f"{key}: expected the placeholders ['instruction', 'prompt'] (and no others), got "
                         f"{sorted(names)}")  # fmt: skip


def reprompt_question(template: str, prompt: str, instruction: str) -> str:
    """The reprompter's user message for one item."""
    return template.format(prompt=prompt, instruction=instruction)


def parse_descriptor(text: str, *, grammar: Grammar = "shapeworld", max_words: int = 64) -> Reprompt:
    """Parse a reprompter answer strictly; the descriptor is None (with the reason) unless everything holds."""
    if grammar not in GRAMMARS:
        raise ValueError(f"grammar: expected one of {list(GRAMMARS)}, got {grammar!r}")
    parsed = parse_answer(text)
    if parsed is None:
        return Reprompt(text, None, None, MALFORMED)
    reasoning, descriptor = parsed
    words = descriptor.split()
    if not words:
        return Reprompt(text, None, reasoning, EMPTY)
    if len(words) > max_words:
        return Reprompt(text, None, reasoning, TOO_LONG)
    if grammar == "shapeworld" and try_parse(descriptor) is None:
        return Reprompt(text, None, reasoning, OUTSIDE_GRAMMAR)
    return Reprompt(text, " ".join(words), reasoning, None)


def generate_reprompts(
    model: UnifiedModel,
    prompts: Sequence[str],
    instructions: Sequence[str],
    *,
    role: str | None,
    template: str = REPROMPT_TEMPLATE,
    max_new_tokens: int = 96,
    batch_size: int = 32,
    do_sample: bool = False,
    temperature: float = 1.0,
    seeds: Sequence[int] | None = None,
    grammar: Grammar = "shapeworld",
    max_words: int = 64,
) -> list[Reprompt]:
    """Reprompt every (prompt, instruction) with adapter `role` (None: the base model, the zero-shot baseline).

    Greedy by default; with ``do_sample`` each item ``i`` samples with ``seeds[i]`` (the model's seeding contract).
    The adapter state and train/eval mode are restored afterwards.
    """
    if len(prompts) != len(instructions):
        raise ValueError(f"instructions: expected one per prompt ({len(prompts)}), got {len(instructions)}")
    if seeds is not None and len(seeds) != len(prompts):
        raise ValueError(f"seeds: expected one per prompt ({len(prompts)}), got {len(seeds)}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    questions = [reprompt_question(template, p, a) for p, a in zip(prompts, instructions)]
    module = model.module
    was_training = module.training
    module.eval()
    context: AbstractContextManager[None] = model.no_adapter() if role is None else model.use_adapter(role)
    texts: list[str] = []
    try:
        with context:
            for start in range(0, len(questions), batch_size):
                part = slice(start, start + batch_size)
                out = model.generate_text(
                    questions[part], max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature,
                    seeds=None if seeds is None else list(seeds[part]),
                )  # fmt: skip
                texts += out.texts
    finally:
        module.train(was_training)
    return [parse_descriptor(t, grammar=grammar, max_words=max_words) for t in texts]
