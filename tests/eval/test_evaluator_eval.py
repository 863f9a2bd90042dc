"""Evaluator figures on verified pairs: hand-derived values from scripted evaluators, and the real model's plumbing.

The scripted evaluator answers by its adapter state: with the evaluator adapter it is a perfect judge (it asks the
oracle whether the first image passes), without adapters it always says Yes (in the strict format for prompt
questions, without the think block for instruction questions). Every figure below follows from that by hand.
"""

from contextlib import contextmanager

import pytest
import torch

from seer.data.pairs import LiteralRenderer, Pair, PairSet, PairSettings, QuestionTemplates, build_pairs, passes
from seer.data.vie import item_from_dict
from seer.errors import SeerError
from seer.eval.evaluator import Judgement, evaluate_evaluator, summarize
from seer.worlds.shapeworld.items import generate_items

TEMPLATES = QuestionTemplates(
    "does the first image match the prompt better than the second image ? prompt : {prompt}",
    "does the first image match the instruction better than the second image ? instruction : {instruction} . "
    "prompt : {prompt}",
)
ITEMS = [
    item_from_dict(r, "generated") for r in generate_items(0, 1, splits=("id",), categories=("palette", "quantity"))
]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return build_pairs(LiteralRenderer(), ITEMS, tmp_path_factory.mktemp("pairs") / "eval", PairSettings(model_id="r"))


class ScriptedEvaluator:
    """Perfect judge with the evaluator adapter, "always Yes" without adapters (see the module docstring)."""

    adapter_names = ["evaluator"]

    def __init__(self, pair_set):
        items = {item.id: item for item in ITEMS}
        self.question = {TEMPLATES.text(p): (items[p.item_id], p.stage) for p in pair_set.pairs}
        self.mode = "evaluator"

    @contextmanager
    def _mode(self, mode):
        before, self.mode = self.mode, mode
        yield
        self.mode = before

    def no_adapter(self):
        return self._mode("base")

    def use_adapter(self, role):
        return self._mode(role)

    def generate_text(self, prompts, images=None, *, max_new_tokens=64, do_sample=True, **kwargs):
        assert not do_sample  # evaluation is greedy
        texts = []
        for prompt, (first, _) in zip(prompts, images):
            item, stage = self.question[prompt]
            if self.mode == "evaluator":
                verdict = "Yes" if passes(stage, first, item) else "No"
                texts.append(f"<think> judged </think> <answer> {verdict} </answer>")
            elif stage == 1:
                texts.append("<think> guess </think> <answer> Yes </answer>")
            else:
                texts.append("<answer> Yes </answer>")
        return type("Generation", (), {"texts": texts})()


def test_scripted_evaluators_give_hand_derived_figures(pairs):
    model = ScriptedEvaluator(pairs)
    results = evaluate_evaluator(model, pairs, TEMPLATES)
    assert model.mode == "evaluator"  # adapter state restored
    n = len(pairs.pairs)
    n1 = len(pairs.stage(1))
    assert results["n_pairs"] == n and 0 < n1 < n
    trained, zero = results["trained"], results["zero_shot"]
    # perfect judge: right in both orders, so every verdict flips the correct way
    assert (trained["accuracy"], trained["position_consistency"], trained["flip_rate"]) == (1.0, 1.0, 1.0)
    assert (trained["yes_rate"], trained["malformed_rate"], trained["strict_accuracy"]) == (0.5, 0.0, 1.0)
    # always Yes: right in exactly one of the two orders of every pair, never consistent, never flips
    assert (zero["accuracy"], zero["position_consistency"]) == (0.5, 0.0)
    assert (zero["flip_rate"], zero["yes_rate"]) == (0.0, 1.0)
    assert zero["malformed_rate"] == pytest.approx((n - n1) / n)  # instruction answers lack the think block
    assert zero["strict_accuracy"] == pytest.approx(n1 / (2 * n))  # right and well-formed: prompt pairs, one order
    assert zero["no_verdict_rate"] == 0.0
    assert zero["by"]["question_type"]["prompt"] == {"accuracy": 0.5, "position_consistency": 0.0, "n_pairs": n1}
    assert set(zero["by"]["category"]) == {"palette", "quantity"}
    assert trained["samples"][0]["correct"] and len(trained["samples"]) == 4


def _pair(answer, category, stage=1):
    return Pair(
        id=f"{category}-{answer}-{stage}", stage=stage, item_id="i", category=category, difficulty="simple",
        split="id", prompt="p", instruction="i", good_text="g", bad_text="b", bad_kind="perturbed", seed=0,
        good_image="g.png", bad_image="b.png", good_first=answer == "Yes",
    )  # fmt: skip


def test_summarize_by_hand():
    yes = "<think> a </think> <answer> Yes </answer>"
    no = "<think> a </think> <answer> No </answer>"
    a, b = _pair("Yes", "palette"), _pair("No", "quantity", stage=2)
    shown = [Judgement(a, False, yes), Judgement(b, False, yes)]  # a right, b wrong
    swapped = [Judgement(a, True, no), Judgement(b, True, "<answer> Yes </answer>")]  # a right, b right: malformed
    figures = summarize(shown, swapped)
    assert figures["accuracy"] == 3 / 4
    assert figures["strict_accuracy"] == 2 / 4
    assert figures["position_consistency"] == 1 / 2  # only a is right both ways
    assert figures["flip_rate"] == 1 / 2  # a: Yes -> No; b: Yes -> Yes
    assert figures["yes_rate"] == 3 / 4 and figures["malformed_rate"] == 1 / 4
    assert figures["by"]["category"]["quantity"] == {"accuracy": 0.5, "position_consistency": 0.0, "n_pairs": 1}
    assert figures["by"]["question_type"]["prompt"]["accuracy"] == 1.0
    with pytest.raises(ValueError):
        summarize(shown, swapped[:1])


def test_real_model_is_evaluated_zero_shot_and_trained_and_left_as_it_was(pairs, small_janus):
    umm = small_janus()
    some = PairSet(pairs.root, pairs.pairs[:3], pairs.summary)
    assert set(evaluate_evaluator(umm, some, TEMPLATES, max_new_tokens=4)) == {"n_pairs", "settings", "zero_shot"}
    umm.add_adapter("evaluator")
    umm.activate_adapter("evaluator", trainable=True)
    flags = {name: p.requires_grad for name, p in umm.module.named_parameters()}
    results = evaluate_evaluator(umm, some, TEMPLATES, max_new_tokens=4)
    assert {"zero_shot", "trained"} <= set(results) and results["trained"]["by"]["category"]
    assert umm.module.active_adapter == "evaluator"
    assert flags == {name: p.requires_grad for name, p in umm.module.named_parameters()}
    with torch.no_grad():  # lora_B starts at zero: trained == zero-shot answers until the adapter is trained
        assert results["trained"]["samples"] == results["zero_shot"]["samples"]


def test_no_pairs_is_an_error(pairs):
    with pytest.raises(SeerError, match="no pairs to evaluate"):
        evaluate_evaluator(ScriptedEvaluator(pairs), PairSet(pairs.root, []), TEMPLATES)
