"""The reprompter's question and strict descriptor parser, and batched reprompting with the right adapter."""

from contextlib import contextmanager

import pytest
import torch

from seer.models.base import TextGeneration
from seer.rl.reprompt import (
    EMPTY,
    MALFORMED,
    OUTSIDE_GRAMMAR,
    REPROMPT_TEMPLATE,
    TOO_LONG,
    check_template,
    generate_reprompts,
    parse_descriptor,
)
from seer.worlds.shapeworld.corpus import REWRITE_QUESTION, corpus_words

GOOD = "a large red circle at the center on a white background"


def test_the_default_question_is_in_the_tiny_vocabulary_and_starts_like_the_rewrite_task():
    words = set(corpus_words())
    text = REPROMPT_TEMPLATE.replace("{prompt}", " ").replace("{instruction}", " ")
    assert set(text.split()) <= words
    assert REPROMPT_TEMPLATE.startswith(REWRITE_QUESTION.format(prompt="{prompt}"))


@pytest.mark.parametrize(
    "text, grammar, max_words, descriptor, reason",
    [
        (f"<think> icy means blue </think> <answer> {GOOD} </answer>", "shapeworld", 64, GOOD, None),
        (f"  <think> x </think>\n<answer>  {GOOD}  </answer> ", "shapeworld", 64, GOOD, None),  # whitespace only
        (f"<answer> {GOOD} </answer>", "shapeworld", 64, None, MALFORMED),  # no think block
        (f"<think> x </think> <answer> {GOOD} </answer> </answer>", "shapeworld", 64, None, MALFORMED),
        (f"<think> x </think> <answer> {GOOD} </answer> more", "shapeworld", 64, None, MALFORMED),
        (f"<think> x </think> <answer> {GOOD}", "shapeworld", 64, None, MALFORMED),  # cut by the token budget
        ("<think> x </think> <answer> a </answer> <answer> b </answer>", "none", 64, None, MALFORMED),
        ("", "shapeworld", 64, None, MALFORMED),
        ("<think> x </think> <answer>   </answer>", "shapeworld", 64, None, EMPTY),
        (f"<think> x </think> <answer> {GOOD} </answer>", "shapeworld", 10, None, TOO_LONG),  # 11 words
        (f"<think> x </think> <answer> {GOOD} </answer>", "shapeworld", 11, GOOD, None),
        (f"<think> x </think> <answer> icy {GOOD} </answer>", "shapeworld", 64, None, OUTSIDE_GRAMMAR),
        (f"<think> x </think> <answer> {GOOD} . </answer>", "shapeworld", 64, None, OUTSIDE_GRAMMAR),
        ("<think> x </think> <answer> A frosty blue skyline. </answer>", "none", 64, "A frosty blue skyline.", None),
    ],
)
def test_parse_descriptor(text, grammar, max_words, descriptor, reason):
    parsed = parse_descriptor(text, grammar=grammar, max_words=max_words)
    assert (parsed.descriptor, parsed.reason) == (descriptor, reason)
    assert parsed.text == text


def test_parse_keeps_the_reasoning():
    assert parse_descriptor(f"<think> icy means blue </think> <answer> {GOOD} </answer>").reasoning == "icy means blue"


def test_bad_templates_and_grammars_are_errors_naming_the_key():
    with pytest.raises(ValueError, match=r"reprompt_template: expected the placeholders \['instruction', 'prompt'\]"):
        check_template("rewrite the prompt : {prompt}")
    with pytest.raises(ValueError, match="grammar: expected one of"):
        parse_descriptor("x", grammar="english")


class StubModel:
    def __init__(self):
        self.module = torch.nn.Linear(1, 1)
        self.active = "base"
        self.calls = []

    @contextmanager
    def use_adapter(self, role):
        self.active = role
        yield
        self.active = "base"

    @contextmanager
    def no_adapter(self):
        self.active = "none"
        yield
        self.active = "base"

    def generate_text(self, prompts, images=None, *, max_new_tokens=64, do_sample=True, temperature=1.0, seeds=None,
                      response_prefix=""):
        self.calls.append((self.active, list(prompts), seeds, do_sample))
        return TextGeneration([f"<think> t </think> <answer> {GOOD} </answer>" if "good" in p else "junk"
                               for p in prompts], [], [])  # fmt: skip


def test_generate_reprompts_batches_with_the_role_and_parses_every_answer():
    model = StubModel()
    outs = generate_reprompts(model, [GOOD, GOOD, GOOD], ["good one", "bad", "good two"], role="reprompter",
                              batch_size=2, do_sample=True, seeds=[5, 6, 7])  # fmt: skip
    assert [o.descriptor for o in outs] == [GOOD, None, GOOD] and outs[1].reason == MALFORMED
    assert [(c[0], c[2], c[3]) for c in model.calls] == [("reprompter", [5, 6], True), ("reprompter", [7], True)]
    assert model.calls[0][1][0] == REPROMPT_TEMPLATE.format(prompt=GOOD, instruction="good one")
    assert model.active == "base"
    generate_reprompts(model, [GOOD], ["good"], role=None)  # the zero-shot baseline: every adapter off
    assert model.calls[-1][0] == "none" and model.calls[-1][3] is False
