"""The static-cache rollout engines (`seer.models.janus_rollout`: images, and text answers) on the CPU.

It runs the same decode step as on a GPU, without the graph capture. References are independent paths:
transformers' own ``generate``, teacher-forced passes without any cache, and the reference sampling loop of
`JanusUMM.sample_image_tokens`. A small bucket (16 positions, 64 tokens per image) makes every call cross several
attention lengths.
"""

import pytest
import torch

from seer.data.pairs import LiteralRenderer
from seer.errors import SeerError
from seer.models.adapters import LoraSettings
from seer.models.janus import sample_tokens, seeded_uniforms, unconditional_ids
from seer.models.janus_rollout import StaticImageRollout, StaticTextRollout, bucket_lengths

# Different lengths, so batches are left-padded.
PROMPTS = ["a large red circle at the top left and a small blue square", "a red circle", "a blue bar at the center"]


@pytest.fixture(scope="module")
def umm(small_janus):
    model = small_janus()
    model._rollout = StaticImageRollout(model.janus, bucket=16)
    return model


def _uncond(umm, input_ids):
    tok = umm.tokenizer
    return unconditional_ids(input_ids, tok.bos_token_id, tok.boi_token_id, tok.pad_token_id)


def _teacher_forced_guided(umm, input_ids, mask, tokens, scale):
    """(B, N, K) guided logits of ``tokens`` from two plain passes without cache (conditional, unconditional)."""
    with torch.no_grad():
        cond = umm.image_token_logits(input_ids, mask, tokens).float()
        uncond = umm.image_token_logits(_uncond(umm, input_ids), mask, tokens).float()
    return uncond + (cond - uncond) * scale


def test_bucket_lengths_hand_values():
    # prompt of 5, 8 tokens: steps 1..7 need 6..12 positions; buckets of 4 round up, the cache holds 12
    assert bucket_lengths(5, 8, 4) == [8, 8, 8, 12, 12, 12, 12]
    assert bucket_lengths(5, 8, 1) == [6, 7, 8, 9, 10, 11, 12]
    assert bucket_lengths(5, 8, 64) == [12] * 7


def test_greedy_tokens_equal_transformers_generate(umm):
    input_ids, mask = umm.image_prompt_batch(PROMPTS)
    assert (mask == 0).any()  # left padding is exercised
    for scale in (2.0, 5.0):
        ours = umm.image_rollout.sample(input_ids, mask, _uncond(umm, input_ids), uniforms=None, guidance_scale=scale)
        theirs = umm.janus.generate(
            input_ids=input_ids, attention_mask=mask, generation_mode="image", do_sample=False, guidance_scale=scale
        )
        assert torch.equal(ours.tokens, theirs)
        assert len(set(ours.tokens.flatten().tolist())) > 3  # not a constant image


def test_sampled_tokens_and_logprobs_follow_the_guided_distribution(umm):
    input_ids, mask = umm.image_prompt_batch(PROMPTS)
    seeds, scale, temperature = [3, 4, 5], 3.0, 1.3
    uniforms = seeded_uniforms(seeds, 64)
    out = umm.image_rollout.sample(
        input_ids, mask, _uncond(umm, input_ids), uniforms=uniforms, guidance_scale=scale, temperature=temperature
    )
    guided = _teacher_forced_guided(umm, input_ids, mask, out.tokens, scale)  # (B, N, K)
    # each step's log-prob is the teacher-forced guided distribution's, at the temperature of the draw
    expected = torch.log_softmax(guided / temperature, dim=-1).gather(-1, out.tokens[..., None]).squeeze(-1)
    torch.testing.assert_close(out.logprobs, expected, rtol=0, atol=1e-5)
    # each token is that distribution's inverse-CDF draw at the seed's uniform ...
    drawn = torch.stack([sample_tokens(guided[:, t], uniforms[:, t], temperature) for t in range(64)], dim=1)
    assert torch.equal(out.tokens, drawn)
    # ... which is what the reference loop draws from the same seeds
    reference = umm.sample_image_tokens(
        input_ids, mask, seeds=seeds, guidance_scale=scale, temperature=temperature, engine="reference"
    )
    assert torch.equal(out.tokens, reference)
    assert len(set(out.tokens.flatten().tolist())) > 32  # sampling, not a constant


def test_eager_attention_decodes_the_same_tokens(umm):
    input_ids, mask = umm.image_prompt_batch(PROMPTS)
    engine = StaticImageRollout(umm.janus, bucket=16, attention="eager")
    greedy = engine.sample(input_ids, mask, _uncond(umm, input_ids), uniforms=None, guidance_scale=5.0)
    theirs = umm.janus.generate(
        input_ids=input_ids, attention_mask=mask, generation_mode="image", do_sample=False, guidance_scale=5.0
    )
    assert torch.equal(greedy.tokens, theirs)
    assert umm.janus.config.text_config._attn_implementation == "sdpa"  # restored after the decode steps
    uniforms = seeded_uniforms([3, 4, 5], 64)
    out = engine.sample(input_ids, mask, _uncond(umm, input_ids), uniforms=uniforms, guidance_scale=3.0)
    guided = _teacher_forced_guided(umm, input_ids, mask, out.tokens, 3.0)
    expected = torch.log_softmax(guided, dim=-1).gather(-1, out.tokens[..., None]).squeeze(-1)
    torch.testing.assert_close(out.logprobs, expected, rtol=0, atol=1e-5)
    reference = umm.sample_image_tokens(input_ids, mask, seeds=[3, 4, 5], guidance_scale=3.0, engine="reference")
    assert torch.equal(out.tokens, reference)


def test_without_guidance_only_conditional_rows_run(umm):
    input_ids, mask = umm.image_prompt_batch(PROMPTS)
    out = umm.image_rollout.sample(input_ids, mask, None, uniforms=seeded_uniforms([1, 2, 3], 64))
    assert umm.image_rollout._decoder.cache.keys[0].shape[0] == 3  # one row per sample
    reference = umm.sample_image_tokens(input_ids, mask, seeds=[1, 2, 3], guidance_scale=1.0, engine="reference")
    assert torch.equal(out.tokens, reference)
    with torch.no_grad():
        cond = umm.image_token_logits(input_ids, mask, out.tokens).float()
    expected = torch.log_softmax(cond, dim=-1).gather(-1, out.tokens[..., None]).squeeze(-1)
    torch.testing.assert_close(out.logprobs, expected, rtol=0, atol=1e-5)


def test_a_sample_does_not_depend_on_its_batch(umm):
    batch = umm.generate_images(PROMPTS, seeds=[11, 12, 13], guidance_scale=3.0, engine="static").token_ids
    alone = umm.generate_images(PROMPTS[1:2], seeds=[12], guidance_scale=3.0, engine="static").token_ids
    assert torch.equal(alone[0], batch[1])  # no padding alone, left-padded in the batch
    reordered = umm.generate_images(PROMPTS[::-1], seeds=[13, 12, 11], guidance_scale=3.0, engine="static").token_ids
    assert torch.equal(reordered, batch.flip(0))
    other_seeds = umm.generate_images(PROMPTS, seeds=[11, 99, 13], guidance_scale=3.0, engine="static").token_ids
    assert torch.equal(other_seeds[[0, 2]], batch[[0, 2]]) and not torch.equal(other_seeds[1], batch[1])


def test_generate_images_engines_give_the_same_images(umm):
    static = umm.generate_images(PROMPTS, seeds=[5, 6, 7], guidance_scale=2.0, engine="static")
    reference = umm.generate_images(PROMPTS, seeds=[5, 6, 7], guidance_scale=2.0, engine="reference")
    assert torch.equal(static.token_ids, reference.token_ids)
    assert [im.tobytes() for im in static.images] == [im.tobytes() for im in reference.images]
    # on a CPU "auto" is the reference loop; the result is the same either way
    assert torch.equal(umm.generate_images(PROMPTS, seeds=[5, 6, 7], guidance_scale=2.0).token_ids, static.token_ids)


def test_decoder_is_reused_and_rebuilt_when_the_adapter_state_changes(small_janus):
    umm = small_janus()
    input_ids, mask = umm.image_prompt_batch(PROMPTS)
    kwargs = dict(seeds=[1, 2, 3], guidance_scale=3.0)
    base = umm.sample_image_tokens(input_ids, mask, engine="static", **kwargs)
    decoder = umm.image_rollout._decoder
    assert torch.equal(umm.sample_image_tokens(input_ids, mask, engine="static", **kwargs), base)
    assert umm.image_rollout._decoder is decoder  # same key: buffers (and, on a GPU, graphs) reused
    umm.add_adapter("reprompter", LoraSettings(r=4))
    with torch.no_grad():  # a LoRA that changes the outputs (lora_B starts at zero)
        for name, p in umm.module.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    with_adapter = umm.sample_image_tokens(input_ids, mask, engine="static", **kwargs)
    assert umm.image_rollout._decoder is not decoder
    assert not torch.equal(with_adapter, base)
    assert torch.equal(with_adapter, umm.sample_image_tokens(input_ids, mask, engine="reference", **kwargs))
    with umm.no_adapter():  # the generator: the base model again
        assert torch.equal(umm.sample_image_tokens(input_ids, mask, engine="static", **kwargs), base)


def test_bad_arguments_raise(umm):
    input_ids, mask = umm.image_prompt_batch(PROMPTS)
    with pytest.raises(SeerError, match="engine"):
        umm.sample_image_tokens(input_ids, mask, seeds=[1, 2, 3], engine="fast")
    with pytest.raises(SeerError, match="uniforms"):
        umm.image_rollout.sample(input_ids, mask, None, uniforms=torch.rand(3, 10))
    with pytest.raises(SeerError, match="bucket"):
        StaticImageRollout(umm.janus, bucket=0)
    with pytest.raises(SeerError, match="attention"):
        StaticImageRollout(umm.janus, attention="flash_attention_2")
    with pytest.raises(SeerError, match="CUDA"):
        StaticImageRollout(umm.janus, cuda_graphs=True)


@pytest.mark.slow
def test_compiled_decode_step_draws_the_same_tokens(umm):
    """torch.compile of the layer stack (~15-45 s of compilation on 2 CPU cores)."""
    input_ids, mask = umm.image_prompt_batch(PROMPTS)
    engine = StaticImageRollout(umm.janus, bucket=16, compile_step=True, attention="eager")
    out = engine.sample(input_ids, mask, _uncond(umm, input_ids), uniforms=seeded_uniforms([3, 4, 5], 64))
    reference = umm.sample_image_tokens(input_ids, mask, seeds=[3, 4, 5], guidance_scale=5.0, engine="reference")
    assert torch.equal(out.tokens, reference)


# ---- text answers (StaticTextRollout) ----

QUESTIONS = ["does the first image match the prompt better than the second image ? prompt : a red circle",
             "does the first image show a large blue square at the top left on a white background ?",
             "describe the second image"]  # fmt: skip
SCENES = ["a red circle", "a large blue square at the top left on a white background", "a small green ring"]


def _two_images(n):
    images = LiteralRenderer(32).generate_images(SCENES).images
    return [[images[i % 3], images[(i + 1) % 3]] for i in range(n)]


@pytest.fixture(scope="module")
def embedded():
    from seer.embedded import load_embedded_model

    return load_embedded_model()


@pytest.mark.parametrize("seeds", [None, [4, 5, 6]])
def test_text_engine_writes_the_reference_loops_answers(embedded, seeds):
    """The trained model ends its answers: the engine stops early, and answers equal the loop's, greedy or sampled."""
    kwargs = dict(images=_two_images(3), max_new_tokens=160, do_sample=seeds is not None, seeds=seeds)
    static = embedded.generate_text(QUESTIONS, engine="static", **kwargs)
    reference = embedded.generate_text(QUESTIONS, engine="reference", **kwargs)
    assert static.token_ids == reference.token_ids and static.texts == reference.texts
    eos = embedded.tokenizer.eos_token_id
    assert all(ids[-1] == eos and len(ids) < 160 for ids in static.token_ids)  # every answer ended
    assert all("<answer>" in t for t in static.texts[:2])
    # the loop stopped within check_every steps of the longest answer, not at the budget
    engine = embedded.text_rollout
    longest = max(len(ids) for ids in static.token_ids)
    assert longest <= engine._decoder.step.item() < longest + engine.check_every


def test_text_engine_runs_to_the_budget_while_a_row_has_not_ended(small_janus):
    umm = small_janus()
    umm.text_rollout = StaticTextRollout(umm.janus, eos=umm.tokenizer.eos_token_id, pad=umm.tokenizer.pad_token_id,
                                         bucket=16, check_every=1)  # fmt: skip
    for images in (None, _two_images(3)):  # text only, and two images per prompt
        kwargs = dict(images=images, max_new_tokens=24, seeds=[1, 2, 3])
        static = umm.generate_text(QUESTIONS, engine="static", **kwargs)
        assert static.token_ids == umm.generate_text(QUESTIONS, engine="reference", **kwargs).token_ids
        # a random model rarely samples its end token: some row runs to the budget, and so does the loop
        assert max(len(ids) for ids in static.token_ids) == 24 and umm.text_rollout._decoder.step.item() == 24


def test_text_questions_of_different_lengths_share_a_decoder(embedded):
    engine = embedded.text_rollout
    embedded.generate_text(QUESTIONS[:2], images=_two_images(2), max_new_tokens=32, do_sample=False, engine="static")
    decoder = engine._decoder
    assert decoder.prompt_len % engine.bucket == 0  # left-padded to the bucket
    shorter = [q.replace(" on a white background", "") for q in QUESTIONS[:2]]
    embedded.generate_text(shorter, images=_two_images(2), max_new_tokens=32, do_sample=False, engine="static")
    assert engine._decoder is decoder
    with pytest.raises(SeerError, match="engine"):
        embedded.generate_text(QUESTIONS, engine="fast")
    with pytest.raises(SeerError, match="check_every"):
        StaticTextRollout(embedded.janus, eos=1, pad=0, check_every=0)
