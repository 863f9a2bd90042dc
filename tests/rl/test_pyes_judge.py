"""The RLMT judge: P(Yes) from hand-built logits, order averaging, the answer cut, and the read through
`token_logprobs` checked against the model's own next-token logits."""

import math
from contextlib import contextmanager

import pytest
import torch

from seer.data.pairs import Pair, QuestionTemplates
from seer.models.adapters import EVALUATOR
from seer.models.base import TextGeneration, TokenLogProbs
from seer.rl.judge import answer_prefix, judge_p_yes, judge_question, order_averaged_reward, p_yes_from_logits
from seer.train.rlvr import INSTRUCTION_QUESTION, PROMPT_QUESTION
from seer.worlds.shapeworld.render import render
from seer.worlds.shapeworld.scene import Obj, Scene


@pytest.mark.parametrize(
    "yes, no, expected",
    [
        (0.0, 0.0, 0.5),
        (math.log(3.0), 0.0, 0.75),  # e^yes / (e^yes + e^no) = 3 / 4
        (2.0, -1.0, 1.0 / (1.0 + math.exp(-3.0))),
        (-7.5, -7.5 + math.log(4.0), 0.2),  # log-probs: the shared normaliser cancels
        (1000.0, 0.0, 1.0),  # no overflow either way
        (-1000.0, 0.0, 0.0),
    ],
)
def test_p_yes_is_the_softmax_over_the_two_answer_tokens(yes, no, expected):
    assert p_yes_from_logits(yes, no) == pytest.approx(expected, abs=1e-12)


def test_p_yes_of_nan_is_an_error():
    with pytest.raises(ValueError, match="not finite"):
        p_yes_from_logits(float("nan"), 0.0)


def test_order_averaged_reward_cancels_a_constant_position_bias():
    assert order_averaged_reward(0.8, 0.3) == pytest.approx(0.75)
    assert order_averaged_reward(0.5, 0.5) == 0.5  # cannot tell the images apart
    assert order_averaged_reward(1.0, 0.0) == 1.0 and order_averaged_reward(0.0, 1.0) == 0.0
    # a judge that adds 0.15 to P(Yes) whatever the order: the true 0.6 comes back
    assert order_averaged_reward(0.6 + 0.15, (1 - 0.6) + 0.15) == pytest.approx(0.6)


def test_answer_prefix_cuts_right_after_the_answer_tag():
    assert answer_prefix("<think> a b </think> <answer> Yes </answer>") == "<think> a b </think> <answer>"
    assert answer_prefix("<think> a b </think> Yes") is None


def test_judge_question_is_what_rlvr_asked_about_an_instruction_pair():
    templates = QuestionTemplates(PROMPT_QUESTION, INSTRUCTION_QUESTION, "answer in the format", "hello")
    pair = Pair(id="x:2:naive", stage=2, item_id="x", category="palette", difficulty="simple", split="id",
                prompt="a large red circle at the center on a white background", instruction="make it look icy",
                good_text="g", bad_text="b", bad_kind="naive", seed=0, good_image="g.png", bad_image="b.png",
                good_first=True)  # fmt: skip
    assert judge_question(templates, pair.prompt, pair.instruction) == templates.text(pair)


class StubJudgeModel:
    """Answers with given texts and scores "<prefix> Yes"/"<prefix> No" with given log-probs; records adapters."""

    def __init__(self, texts, logprobs):
        self.texts, self.logprobs = texts, logprobs  # logprobs: {(question, "Yes"|"No"): float}
        self.module = torch.nn.Linear(1, 1)
        self.adapter = None
        self.scored = []

    @contextmanager
    def use_adapter(self, role):
        self.adapter = role
        yield
        self.adapter = None

    def generate_text(self, prompts, images=None, *, max_new_tokens=64, do_sample=True, response_prefix="", **kw):
        assert self.adapter == EVALUATOR and not do_sample and all(len(i) == 2 for i in images)
        self.response_prefix = response_prefix
        return TextGeneration([self.texts[p] for p in prompts], [], [])

    def token_logprobs(self, prompts, completions, images=None, **kwargs):
        self.scored += list(completions)
        # two tokens each: a shared prefix token (same log-prob either way) and the answer
        rows = [[-0.3, self.logprobs[(p, c.rsplit(" ", 1)[1])]] for p, c in zip(prompts, completions)]
        t = torch.tensor(rows)
        return TokenLogProbs(t, torch.ones_like(t, dtype=torch.bool))


def test_judge_p_yes_reads_yes_against_no_after_the_answer_tag_and_zero_without_one():
    img = render(Scene("white", (Obj("center", "circle", "red", "large"),)))
    texts = {"q1": "<think> a </think> <answer> No </answer>", "q2": "<think> a </think> no answer",
             "q3": "<think> b </think> <answer> Yes </answer>"}  # fmt: skip
    logprobs = {("q1", "Yes"): math.log(0.2), ("q1", "No"): math.log(0.6),
                ("q3", "Yes"): -1.0, ("q3", "No"): -3.0}  # fmt: skip
    model = StubJudgeModel(texts, logprobs)
    result = judge_p_yes(model, [img] * 3, [img] * 3, ["q1", "q2", "q3"], batch_size=2, max_new_tokens=8)
    assert result.p_yes == pytest.approx([0.25, 0.0, 1 / (1 + math.exp(-2.0))])
    assert result.reached_answer == [True, False, True]
    assert model.scored == ["<think> a </think> <answer> Yes", "<think> a </think> <answer> No",
                            "<think> b </think> <answer> Yes", "<think> b </think> <answer> No"]  # fmt: skip
    assert model.adapter is None and model.module.training  # restored


def test_judge_p_yes_reads_the_answer_after_the_response_prefix_it_wrote():
    img = render(Scene("white", (Obj("center", "circle", "red", "large"),)))
    model = StubJudgeModel({"q": "a red circle </think> <answer> No </answer>"},
                           {("q", "Yes"): math.log(0.1), ("q", "No"): math.log(0.3)})  # fmt: skip
    result = judge_p_yes(model, [img], [img], ["q"], response_prefix="<think> the first image shows")
    assert model.response_prefix == "<think> the first image shows"
    assert result.texts == ["<think> the first image shows a red circle </think> <answer> No </answer>"]
    assert model.scored == ["<think> the first image shows a red circle </think> <answer> Yes",
                            "<think> the first image shows a red circle </think> <answer> No"]  # fmt: skip
    assert result.p_yes == pytest.approx([0.25])


def test_the_logprob_read_equals_the_models_next_token_softmax(small_janus):
    """Through a real Janus: P(Yes) from summed completion log-probs == softmax of the next-token logits."""
    umm = small_janus()
    umm.add_adapter(EVALUATOR)
    text = "<think> the first image </think> <answer> Yes </answer>"
    real_generate = umm.generate_text
    umm.generate_text = lambda prompts, images=None, **kw: TextGeneration([text] * len(prompts), [], [])
    img = render(Scene("white", (Obj("center", "circle", "red", "large"),)))
    question = "does the first image match the instruction better than the second image ?"
    result = judge_p_yes(umm, [img], [img], [question], max_new_tokens=8)
    umm.generate_text = real_generate
    prefix = "<think> the first image </think> <answer>"
    tok = umm.tokenizer
    prompt_ids = umm._text_batch([question], [[img, img]])
    ids = torch.cat([prompt_ids["input_ids"], torch.tensor([tok(prefix, add_special_tokens=False)["input_ids"]])], 1)
    with torch.no_grad():
        logits = umm.module(input_ids=ids, pixel_values=prompt_ids["pixel_values"]).logits[0, -1]
    yes, no = tok.convert_tokens_to_ids("Yes"), tok.convert_tokens_to_ids("No")
    expected = torch.softmax(torch.stack([logits[yes], logits[no]]).double(), 0)[0].item()
    assert result.reached_answer == [True]
    assert result.p_yes[0] == pytest.approx(expected, abs=1e-4)
    assert 0.0 < expected < 1.0
