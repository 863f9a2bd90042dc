"""benchmarks/pseudo_recall.py: its rewrite questions can be drawn, a recall is found as the tokenizer writes it, and
a rewrite draws the concept only when its descriptor shows it."""

import random

import pytest
from benchmark_scripts import load_benchmark

from seer.worlds.shapeworld.corpus import PSEUDO_CONCEPTS, PSEUDO_NAMES
from seer.worlds.shapeworld.grammar import describe, parse
from seer.worlds.shapeworld.items import elaborate


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("pseudo_recall")


def test_rewrite_questions_ask_for_the_name_on_prompts_the_gold_editor_can_edit(bench):
    rng = random.Random(0)
    for name in PSEUDO_NAMES[:40]:
        concept = PSEUDO_CONCEPTS[name]
        for question in bench.rewrite_questions(name, 2, rng):
            body, asked = question[len("rewrite the prompt : ") :].split(" . use : ")
            prompt = parse(body)
            if concept.rule.subject_based:  # " for the <shape>", a shape the prompt has once
                shape = asked.split(" for the ")[1]
                assert asked == f"{name} for the {shape}"
                assert [o.shape for o in prompt.objects].count(shape) == 1
                subject = next(o for o in prompt.objects if o.shape == shape)
            else:
                assert asked == name
                subject = None
            assert elaborate(prompt, subject, [concept], random.Random(1)) is not None


def test_words_writes_commas_as_the_tokenizer_does(bench):
    assert bench.words("white, cyan and  blue") == "white , cyan and blue"
    assert bench.words("white , cyan") == "white , cyan"


def test_draws_needs_a_strict_descriptor_that_shows_the_concept(bench):
    name = next(n for n in PSEUDO_NAMES if not PSEUDO_CONCEPTS[n].rule.subject_based)
    concept = PSEUDO_CONCEPTS[name]
    rng = random.Random(2)
    prompt = parse("a large red circle at the top on a blue background")
    gold = None
    while gold is None:
        gold = elaborate(prompt, None, [concept], rng)
    assert bench.draws(f"<think> x </think> <answer> {describe(gold)} </answer>", name)
    assert not bench.draws(f"<think> x </think> <answer> {describe(gold)} </answer> extra", name)  # not strict
    assert not bench.draws(
        "<think> x </think> <answer> a large red circle at the top on a blue background </answer>", name
    )  # the prompt unchanged does not show it
