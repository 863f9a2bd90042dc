"""LM pre-training batches and losses: hand-computed cross-entropies, answer-only masking, the CFG drop, and
agreement of the worker-side builders with the model's own prompt formatting and image tokenizer."""

import math
import random

import pytest
import torch
from PIL import Image

from seer.models.janus import JanusUMM, unconditional_ids
from seer.train.lm_losses import (
    answer_token_loss,
    drop_prompts,
    encode_documents,
    image_tokens,
    t2i_loss,
    t2i_prompt_batch,
    text_batch,
    text_loss,
    user_turn,
    verdict_weights,
)
from seer.train.vq import scene_pixels
from seer.worlds.shapeworld.corpus import corpus_words
from seer.worlds.shapeworld.render import render
from seer.worlds.shapeworld.scene import random_scene

torch.set_num_threads(2)
PROMPTS = ["a large red circle at the top left and a small blue square at the center on a white background",
           "a small green bar at the bottom on a black background"]  # fmt: skip


@pytest.fixture(scope="module")
def umm():
    return JanusUMM.from_shape("shapeworld-tiny", seed=0, words=corpus_words())


def test_prompt_builders_match_the_models_own_formatting(umm):
    assert user_turn(umm.processor, "what is this ?", 1) == umm.format_prompt("what is this ?", 1)
    ids, mask = t2i_prompt_batch(umm.processor, PROMPTS)
    ref_ids, ref_mask = umm.image_prompt_batch(PROMPTS)
    assert torch.equal(ids, ref_ids) and torch.equal(mask, ref_mask)
    assert (ids[:, -1] == umm.tokenizer.boi_token_id).all() and mask[1, 0] == 0  # ends in BOI; left-padded


def test_t2i_loss_at_init_is_ln_codebook_and_equals_hand_cross_entropy(umm):
    ids, mask = umm.image_prompt_batch(PROMPTS)
    tokens = torch.randint(0, 512, (2, umm.num_image_tokens), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        loss = t2i_loss(umm, ids, mask, tokens).item()
        logits = umm.image_token_logits(ids, mask, tokens).double()  # (2, 64, 512)
    # -log softmax at the target, averaged over the 2 x 64 tokens, one term at a time
    terms = [
        torch.logsumexp(logits[b, i], dim=0).item() - logits[b, i, tokens[b, i]].item()
        for b in range(2)
        for i in range(umm.num_image_tokens)
    ]
    assert loss == pytest.approx(sum(terms) / len(terms), abs=1e-5)
    assert loss == pytest.approx(math.log(512), abs=0.05)  # a near-uniform head at initialisation


def test_cfg_drop_builds_the_samplers_unconditional_prompt(umm):
    tok = umm.tokenizer
    ids, _ = umm.image_prompt_batch(PROMPTS)
    dropped = drop_prompts(ids, torch.tensor([True, False]), umm.processor)
    assert torch.equal(dropped[1], ids[1])  # kept rows are untouched
    # By hand: BOS and BOI stay, everything else (text and left padding) is PAD.
    expected = torch.full_like(ids[0], tok.pad_token_id)
    expected[ids[0] == tok.bos_token_id] = tok.bos_token_id
    expected[-1] = tok.boi_token_id
    assert torch.equal(dropped[0], expected)
    assert torch.equal(dropped[0], unconditional_ids(ids, tok.bos_token_id, tok.boi_token_id, tok.pad_token_id)[0])


def test_cfg_drop_trains_the_branch_the_sampler_reads(umm):
    """At guidance 0 the sampler's logits are exactly its unconditional branch; greedy tokens from it must be the
    argmax of the teacher-forced logits on the dropped prompts (same ids, same mask)."""
    ids, mask = umm.image_prompt_batch(PROMPTS)
    sampled = umm.sample_image_tokens(ids, mask, guidance_scale=0.0, do_sample=False)
    dropped = drop_prompts(ids, torch.tensor([True, True]), umm.processor)
    with torch.no_grad():
        forced = umm.image_token_logits(dropped, mask, sampled).argmax(-1)
        conditional = umm.image_token_logits(ids, mask, sampled).argmax(-1)
    assert torch.equal(forced, sampled)
    assert not torch.equal(conditional, sampled)  # the conditional prompt would have given other tokens


def test_documents_mark_answers_and_eos_only(umm):
    tok = umm.tokenizer
    rewrite = "rewrite the prompt : a red bar on a white background"
    turns = [
        ("what does icy mean?", "<think> icy means white </think> <answer> white </answer>"),
        (rewrite, "<answer> a red bar on a white background </answer>"),
    ]
    (ids,), (marks,) = encode_documents(umm.processor, [turns], [0])
    answer_ids = [i for i, m in zip(ids, marks) if m]
    expected = tok(turns[0][1], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    expected += tok(turns[1][1], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert answer_ids == expected
    prompt_text = tok.decode([i for i, m in zip(ids, marks) if not m])
    assert prompt_text == tok.decode(
        tok(umm.format_prompt(turns[0][0]) + " " + umm.format_prompt(turns[1][0]))["input_ids"]
    )


def test_a_given_think_is_read_but_not_trained_on(umm):
    """The given start of the last answer keeps the ids of the whole answer (cut at a space) and loses its marks;
    earlier turns and the rest of the answer are trained as before. A given text that does not start the answer
    fails."""
    tok = umm.tokenizer
    turns = [
        ("what does icy mean?", "<think> icy means white </think> <answer> white </answer>"),
        ("rewrite the prompt : a red bar on a white background . use : version two",
         "<think> version two means blue </think> <answer> a blue bar on a white background </answer>"),
    ]  # fmt: skip
    given = "<think> version two means blue </think>"
    (plain_ids,), (plain_marks,) = encode_documents(umm.processor, [turns], [0])
    (ids,), (marks,) = encode_documents(umm.processor, [turns], [0], [given])
    assert ids == plain_ids
    unmarked = [i for i, (m, p) in enumerate(zip(marks, plain_marks)) if p and not m]
    assert tok.decode([ids[i] for i in unmarked]) == given
    assert unmarked == list(range(unmarked[0], unmarked[0] + len(tok(given, add_special_tokens=False)["input_ids"])))
    assert [m for m, p in zip(marks, plain_marks) if p and m] == [True] * (sum(plain_marks) - len(unmarked))
    with pytest.raises(ValueError, match="does not start the answer"):
        encode_documents(umm.processor, [turns], [0], ["<think> version one"])


def test_image_document_prompt_is_exactly_the_generation_prompt(umm):
    """An image question is trained on the very ids `generate_text` feeds (processor expansion of the image)."""
    question, answer = "describe the image .", "a large red circle at the center on a white background"
    (ids,), (marks,) = encode_documents(umm.processor, [[(question, answer)]], [1])
    image = Image.new("RGB", (32, 32), (250, 250, 250))
    reference = umm.processor(text=[umm.format_prompt(question, 1)], images=[image], return_tensors="pt")["input_ids"][
        0
    ]
    prompt = [i for i, m in zip(ids, marks) if not m]
    assert prompt == reference.tolist()
    assert prompt.count(umm.tokenizer.image_token_id) == umm.num_image_tokens


def test_answer_token_loss_reads_only_answer_tokens():
    torch.manual_seed(0)
    logits = torch.randn(1, 6, 5)
    ids = torch.tensor([[1, 2, 3, 4, 0, 2]])
    answer = torch.tensor([[False, False, False, True, True, False]])  # tokens 3 and 4 are the answer
    loss = answer_token_loss(logits, ids, answer)
    # by hand: -log p(ids[t] | logits[t-1]) for t = 3, 4
    hand = [torch.logsumexp(logits[0, t - 1], 0) - logits[0, t - 1, ids[0, t]] for t in (3, 4)]
    assert loss.item() == pytest.approx(float(sum(hand) / 2), abs=1e-6)
    changed_prompt = ids.clone()
    changed_prompt[0, 2] = 1  # a prompt token as a target: not read
    changed_prompt[0, 5] = 3  # a token after the answer: not read
    assert answer_token_loss(logits, changed_prompt, answer).item() == loss.item()
    changed_answer = ids.clone()
    changed_answer[0, 4] = 1
    assert answer_token_loss(logits, changed_answer, answer).item() != pytest.approx(loss.item())


def test_verdict_weights_weigh_the_verdict_tokens_in_the_answer_loss():
    torch.manual_seed(0)
    logits = torch.randn(1, 6, 5)
    ids = torch.tensor([[1, 2, 3, 4, 0, 2]])
    answer = torch.tensor([[False, False, False, True, True, False]])
    weights = verdict_weights(ids, verdict_ids=[4], weight=3.0)
    assert weights.tolist() == [[1.0, 1.0, 1.0, 3.0, 1.0, 1.0]]
    # by hand: token 3 (id 4) weighs 3, token 4 weighs 1: (3 l3 + l4) / 4
    hand = [torch.logsumexp(logits[0, t - 1], 0) - logits[0, t - 1, ids[0, t]] for t in (3, 4)]
    weighted = answer_token_loss(logits, ids, answer, weights)
    assert weighted.item() == pytest.approx(float((3 * hand[0] + hand[1]) / 4), abs=1e-6)
    assert answer_token_loss(logits, ids, answer, torch.ones(1, 6)).item() == pytest.approx(
        answer_token_loss(logits, ids, answer).item(), abs=1e-7
    )  # weights of 1 are the plain mean


def test_text_loss_of_a_padded_batch_is_the_token_mean_of_its_documents(umm):
    """Right padding leaks nothing: the batch loss is the token-weighted mean of each document alone."""
    rng = random.Random(0)
    scenes = [random_scene(rng)]
    docs = [
        [("describe the image .", "a large red circle at the center on a white background")],
        [("what does icy mean?", "<think> icy means white </think> <answer> white </answer>"), ("hi", "Yes")],
    ]
    pixels = scene_pixels(scenes, (0.5,) * 3, (0.5,) * 3)
    with torch.no_grad():
        batch = text_batch(umm.processor, docs, [1, 0])
        both = text_loss(umm.janus, batch["input_ids"], batch["attention_mask"], batch["answer_mask"], pixels).item()
        singles = []
        for doc, n, px in ((docs[0], 1, pixels), (docs[1], 0, None)):
            one = text_batch(umm.processor, [doc], [n])
            count = int(one["answer_mask"].sum())
            singles.append(
                (text_loss(umm.janus, one["input_ids"], one["attention_mask"], one["answer_mask"], px).item(), count)
            )
    assert batch["attention_mask"][1, -1] == 0  # the text document is the shorter: padded on the right
    expected = sum(loss * n for loss, n in singles) / sum(n for _, n in singles)
    assert both == pytest.approx(expected, abs=1e-5)


def test_worker_pixels_and_tokens_match_the_processor_and_encode_images(umm):
    rng = random.Random(1)
    scenes = [random_scene(rng) for _ in range(3)]
    images = [render(s) for s in scenes]
    image_processor = umm.processor.image_processor
    pixels = scene_pixels(scenes, image_processor.image_mean, image_processor.image_std)
    reference = image_processor(images, return_tensors="pt")["pixel_values"]
    assert torch.allclose(pixels, reference, atol=1e-6)
    assert torch.equal(image_tokens(umm.janus, pixels), umm.encode_images(images))
