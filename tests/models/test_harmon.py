"""The ``harmon`` backend on the CPU: names and shapes of the official checkpoints, the MAR sampler's invariants, the
CFG formula, seeding, LoRA roles, loading errors, the raw-checkpoint conversion and one TRL GRPO step.

Numerical parity with the reference implementation is checked by benchmarks/harmon_parity.py (it needs the reference
code, which is not in CI); these tests check hand-derived invariants instead.
"""

import dataclasses

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from trl.trainer.utils import pad

from seer.errors import SeerError
from seer.models import backend_class, load_backend
from seer.models.adapters import EVALUATOR, LoraSettings, adapter_parameters
from seer.models.harmon import (
    SHAPES,
    HarmonForConditionalGeneration,
    HarmonUMM,
    buffers_first,
    buffers_last,
    build_config,
    expand_to_square,
    official_state_dict,
    patchify,
    to_pixels,
    unpatchify,
)
from seer.models.harmon_diffusion import build_schedule, guided_output, spaced_timesteps
from seer.models.harmon_mar import masked_count, next_mask
from seer.models.tokenizer import build_word_tokenizer


@pytest.fixture(scope="module")
def umm():
    return HarmonUMM.from_shape("harmon-tiny", seed=0)


def _images(n):
    return [Image.new("RGB", (32 + 8 * i, 32), (40 * i, 200, 30)) for i in range(n)]


# ---- names and shapes ----


def test_backend_is_registered():
    assert backend_class("harmon") is HarmonUMM
    assert isinstance(load_backend("harmon", shape="harmon-tiny"), HarmonUMM)


def test_parameter_names_are_the_official_checkpoints():
    # families of wusize/Harmon's state dict (Harmon = vae + llm + mar + proj_in/proj_out; MAR's timm blocks)
    names = set(HarmonUMM.from_shape("harmon-tiny").harmon.state_dict())
    for name in [
        "llm.model.embed_tokens.weight", "llm.lm_head.weight", "llm.model.layers.0.self_attn.q_proj.weight",
        "mar.class_emb.weight", "mar.fake_latent", "mar.z_proj.weight", "mar.z_proj_ln.weight",
        "mar.encoder_pos_embed_learned", "mar.encoder_blocks.0.attn.qkv.weight", "mar.encoder_blocks.0.mlp.fc2.bias",
        "mar.decoder_embed.weight", "mar.mask_token", "mar.decoder_pos_embed_learned", "mar.decoder_norm.weight",
        "mar.diffusion_pos_embed_learned", "mar.diffloss.net.time_embed.mlp.0.weight",
        "mar.diffloss.net.res_blocks.0.adaLN_modulation.1.weight", "mar.diffloss.net.final_layer.linear.weight",
        "proj_in.0.weight", "proj_in.2.weight", "proj_out.2.bias",
        "vae.encoder.down.0.block.0.conv1.weight", "vae.encoder.down.0.downsample.conv.weight",
        "vae.encoder.mid.attn_1.q.weight", "vae.decoder.up.1.upsample.conv.weight", "vae.quant_conv.weight",
        "vae.post_quant_conv.weight",
    ]:  # fmt: skip
        assert name in names, name


def test_harmon_1_5b_shapes():
    tokenizer = build_word_tokenizer(["<|im_start|>", "<|im_end|>", "<image>"], vocab_size=151936)
    config = build_config(SHAPES["harmon-1.5b"], tokenizer)
    with torch.device("meta"):
        model = HarmonForConditionalGeneration(config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert shapes["llm.model.embed_tokens.weight"] == (151936, 1536)
    assert shapes["mar.encoder_pos_embed_learned"] == (1, 16 * 16 + 64, 1280)  # MAR at img_size 256, 64 buffers
    assert shapes["mar.diffusion_pos_embed_learned"] == (1, 256, 1280)
    assert shapes["mar.class_emb.weight"] == (1000, 1280)
    assert shapes["proj_in.0.weight"] == (1536, 1280) and shapes["proj_out.2.weight"] == (1280, 1536)
    assert shapes["mar.diffloss.net.final_layer.linear.weight"] == (32, 1536)  # epsilon + variance of 16 channels
    assert shapes["vae.encoder.conv_out.weight"] == (32, 512, 3, 3)
    assert sum(n.startswith("mar.encoder_blocks.") and n.endswith("norm1.weight") for n in shapes) == 20
    assert sum(n.startswith("mar.diffloss.net.res_blocks.") and n.endswith("in_ln.weight") for n in shapes) == 12
    assert sum(n.endswith("self_attn.q_proj.weight") for n in shapes) == 28
    assert config.num_image_tokens == 1088  # (512 / 16)^2 + 64


# ---- understanding ----


def test_processor_expands_each_image_into_its_tokens(umm):
    batch = umm.processor(text=[umm.format_prompt("describe the image", 2)], images=[_images(2)], return_tensors="pt")
    assert umm.num_image_tokens == 8 * 8 + 4
    assert int((batch["input_ids"] == umm.harmon.config.image_token_id).sum()) == 2 * umm.num_image_tokens
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    with pytest.raises(SeerError, match="placeholder"):
        umm.processor(text=[umm.format_prompt("describe", 1)], images=_images(2))


def test_preprocessing_pads_with_grey_then_scales_to_minus_one_one():
    square = expand_to_square(Image.new("RGB", (40, 20), (255, 0, 0)))
    assert square.size == (40, 40) and square.getpixel((0, 0)) == (127, 127, 127)
    assert square.getpixel((20, 20)) == (255, 0, 0)
    pixels = to_pixels(Image.new("RGB", (32, 32), (255, 0, 127)), 32)
    assert torch.allclose(pixels[:, 0, 0], torch.tensor([1.0, -1.0, 2 * 127 / 255 - 1]))


def test_buffers_go_last_for_the_llm_and_back():
    z = torch.arange(10.0).reshape(1, 10, 1)
    assert buffers_last(z, 3)[0, :, 0].tolist() == [3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    assert torch.equal(buffers_first(buffers_last(z, 3), 3), z)


def test_patchify_round_trip_and_layout():
    z = torch.randn(2, 4, 6, 6)
    assert torch.equal(unpatchify(patchify(z, 2), (3, 3), 2), z)
    assert torch.equal(patchify(z, 1)[:, 7], z[:, :, 1, 1])  # token 7 of a 6x6 grid is row 1, column 1


def test_image_tokens_change_the_answer_and_must_match(umm):
    img = _images(2)
    a = umm.token_logprobs(["what is this ?"], ["a red circle"], [[img[0]]]).logprobs
    b = umm.token_logprobs(["what is this ?"], ["a red circle"], [[img[1]]]).logprobs
    assert not torch.allclose(a, b)
    batch = umm.processor(text=[umm.format_prompt("what", 1)], images=img[:1], return_tensors="pt")
    with pytest.raises(SeerError, match="image tokens"):
        umm.harmon(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])


def test_left_padding_does_not_change_a_prompt(umm):
    img = _images(1)
    alone = umm.token_logprobs(["what ?"], ["a red circle"], [img]).logprobs
    padded = umm.token_logprobs(["what ?", "what is the color of the first image ?"], ["a red circle"] * 2, [img, img])
    torch.testing.assert_close(padded.logprobs[:1], alone, atol=1e-5, rtol=1e-5)


def trl_grpo_backward(umm, prompts, completion_length=8):
    """The backward of a GRPO step as TRL 1.16's GRPOTrainer runs it, on random completions; returns (the prompt ids
    TRL read, the completion log-probs). TRL tokenizes the prompts through the processor's chat template with
    ``return_tensors=None`` (as seer.train.grpo configures it), expects one unpadded list per prompt, left-pads them
    itself (the attention mask is 0 only on its own padding) and calls the model with ``input_ids`` and
    ``attention_mask`` alone."""
    conversations = [[{"role": "user", "content": p}] for p in prompts]
    ids = umm.processor.apply_chat_template(conversation=conversations, add_generation_prompt=True, tokenize=True,
                                            return_dict=True, return_tensors=None)["input_ids"]  # fmt: skip
    prompt_ids = pad([torch.tensor(i) for i in ids], padding_value=umm.tokenizer.pad_token_id, padding_side="left")
    prompt_mask = pad([torch.ones(len(i), dtype=torch.long) for i in ids], padding_value=0, padding_side="left")
    gen = torch.Generator().manual_seed(0)
    completion = torch.randint(10, umm.harmon.config.text_config.vocab_size, (len(prompts), completion_length),
                               generator=gen)  # fmt: skip
    input_ids = torch.cat([prompt_ids, completion], dim=1)
    mask = torch.cat([prompt_mask, torch.ones_like(completion)], dim=1)
    logits = umm.module(input_ids=input_ids, attention_mask=mask, logits_to_keep=completion_length + 1).logits
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, completion[..., None]).squeeze(-1)
    logps.sum().backward()
    return ids, logps


def test_trl_reads_unpadded_prompts_and_left_padding_keeps_gradients_finite():
    # bf16 at 28 layers (Harmon-1.5B's depth; 256 wide): when the processor padded TRL's prompt lists itself, TRL
    # took the pad tokens for prompt tokens. A pad token's embedding is zero (random weights), so its hidden state
    # stays zero through every layer; the gradient reaching it grows ~1000x per RMSNorm at zero, overflows, and
    # 0 x inf made the LoRA gradients NaN (the GPU RLMT step's grad_norm nan); harmon-tiny's 2 layers stay finite.
    tiny = SHAPES["harmon-tiny"]
    text = {**tiny.text, "num_hidden_layers": 28, "hidden_size": 256, "intermediate_size": 512}
    umm = HarmonUMM.from_shape(dataclasses.replace(tiny, text=text), seed=0, dtype=torch.bfloat16)
    umm.add_adapter(EVALUATOR, LoraSettings(r=16, alpha=32))
    with torch.no_grad():  # a non-zero lora_B, as the reprompter copied from a trained evaluator has
        gen = torch.Generator().manual_seed(0)
        for p in adapter_parameters(umm.module, EVALUATOR).values():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.01)
    umm.activate_adapter(EVALUATOR, trainable=True)
    umm.module.train()
    prompts = ["a red circle", "a small blue square at the center of the image and a large green triangle"]
    ids, logps = trl_grpo_backward(umm, prompts)
    assert ids == [umm.tokenizer(umm.format_prompt(p))["input_ids"] for p in prompts]  # unpadded, as TRL expects
    assert len(ids[0]) < len(ids[1]) and bool(torch.isfinite(logps).all())
    grads = [p.grad for p in umm.module.parameters() if p.requires_grad]
    assert grads and all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    assert any(bool(g.any()) for g in grads)
    # tensors (the backend's own batches) are still left-padded
    batch = umm.processor(text=[umm.format_prompt(p) for p in prompts], return_tensors="pt")
    assert batch["input_ids"].shape == (2, len(ids[1])) and batch["attention_mask"][0].tolist()[0] == 0


def test_generate_text_is_seeded(umm):
    img = _images(1)
    a = umm.generate_text(["what is this ?"] * 2, [img, img], max_new_tokens=6, seeds=[1, 2])
    b = umm.generate_text(["what is this ?"] * 2, [img, img], max_new_tokens=6, seeds=[1, 2])
    assert a.token_ids == b.token_ids and a.token_ids[0] != a.token_ids[1]


# ---- the MAR sampler ----


def test_mask_schedule_predicts_every_token_once_in_order():
    seq_len, iterations = 16, 5
    orders = torch.stack([torch.randperm(seq_len, generator=torch.Generator().manual_seed(s)) for s in (0, 1)])
    masked = torch.ones(2, seq_len, dtype=torch.bool)
    seen = torch.zeros(2, seq_len, dtype=torch.int64)
    for step in range(iterations):
        still = masked_count(step, iterations, seq_len, int(masked[0].sum()))
        following = next_mask(orders, still)
        due = masked if step == iterations - 1 else masked & ~following
        # the first positions of each order stay masked longest: this step predicts the end of what is left
        first = int(masked[0].sum())
        assert torch.equal(due[0].nonzero().flatten().sort().values, orders[0, still:first].sort().values) or (
            step == iterations - 1
        )
        seen += due.long()
        masked = following
    assert torch.equal(seen, torch.ones_like(seen))
    # the cosine schedule: floor(16 cos(pi/2 (s+1)/5)) tokens stay masked after steps 0..3
    assert [masked_count(s, 5, 16, 16) for s in range(4)] == [15, 12, 9, 4]


def test_cfg_combines_epsilon_and_keeps_the_conditional_variance():
    cond = torch.tensor([[1.0, 2.0, 0.5, -0.5]])  # epsilon (2 channels) then variance values
    uncond = torch.tensor([[0.0, 4.0, 0.9, 0.9]])
    out = guided_output(torch.cat([cond, uncond]), 2, 3.0)
    assert torch.equal(out, torch.tensor([[0.0 + 3 * (1 - 0), 4.0 + 3 * (2 - 4), 0.5, -0.5]]))
    assert torch.equal(guided_output(torch.cat([cond, uncond]), 2, 1.0), cond)


def test_respaced_schedule_matches_the_reference_rounding():
    assert spaced_timesteps(1000, 100)[:4] == [0, 10, 20, 30] and spaced_timesteps(1000, 100)[-1] == 999
    schedule = build_schedule(100)
    assert schedule.num_steps == 100 and bool((schedule.posterior_mean_coef1 > 0).all())


def test_images_follow_seeds_and_not_the_batch(umm):
    with umm.no_adapter():
        a = umm.generate_images(["a red circle", "a blue square"], seeds=[1, 2])
        b = umm.generate_images(["a red circle", "a blue square"], seeds=[1, 2])
        alone = umm.generate_images(["a blue square"], seeds=[2])
        other = umm.generate_images(["a blue square"], seeds=[3])
        unguided = umm.generate_images(["a blue square"], seeds=[2], guidance_scale=1.0)
    assert a.token_ids.shape == (2, 64, 4)
    assert [(im.size, im.mode) for im in a.images] == [((32, 32), "RGB")] * 2
    assert torch.equal(a.token_ids, b.token_ids)
    torch.testing.assert_close(alone.token_ids[0], a.token_ids[1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(other.token_ids, alone.token_ids)
    assert not torch.allclose(unguided.token_ids, alone.token_ids)  # guidance 3 (the default) changes the image


def test_decode_tokens_renders_the_generated_latents(umm):
    out = umm.generate_images(["a red circle"], seeds=[3])
    again = umm.decode_tokens(out.token_ids)
    assert list(again[0].getdata()) == list(out.images[0].getdata())
    assert umm.encode_images(out.images).shape == out.token_ids.shape


def test_greedy_images_are_deterministic(umm):
    a = umm.generate_images(["a red circle"], do_sample=False)
    b = umm.generate_images(["a red circle"], do_sample=False)
    assert torch.equal(a.token_ids, b.token_ids)


def test_visual_side_stays_in_eval_mode(umm):
    umm.harmon.train()
    try:
        assert umm.harmon.llm.training and not umm.harmon.mar.training and not umm.harmon.vae.training
    finally:
        umm.harmon.eval()


# ---- LoRA roles ----


def test_generator_is_the_base_bit_for_bit_with_adapters():
    umm = HarmonUMM.from_shape("harmon-tiny", seed=1)
    img = _images(1)
    base_text = umm.token_logprobs(["what is this ?"], ["a red circle"], [img]).logprobs.detach()
    base_image = umm.generate_images(["a red circle"], seeds=[4]).token_ids
    umm.add_adapter(EVALUATOR, LoraSettings(r=2, alpha=4))
    wrapped = [n for n, _ in umm.module.named_parameters() if ".lora_A." in n]
    assert wrapped and all(".llm.model.layers." in n and ".self_attn." in n for n in wrapped)
    umm.activate_adapter(EVALUATOR, trainable=True)
    with torch.no_grad():
        for name, p in umm.module.named_parameters():
            if ".lora_B." in name:
                p.normal_(0, 0.5)
    adapted = umm.token_logprobs(["what is this ?"], ["a red circle"], [img]).logprobs.detach()
    assert not torch.allclose(adapted, base_text)
    with umm.no_adapter():
        assert torch.equal(umm.token_logprobs(["what is this ?"], ["a red circle"], [img]).logprobs, base_text)
        assert torch.equal(umm.generate_images(["a red circle"], seeds=[4]).token_ids, base_image)
    trainable = {n for n, p in umm.module.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n and f".{EVALUATOR}." in n for n in trainable)


# ---- loading ----


def test_save_and_load_round_trip(umm, tmp_path):
    umm.save_pretrained(tmp_path / "model")
    stored = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert "llm.lm_head.weight" not in stored  # tied to the input embeddings: stored once
    again = HarmonUMM.from_pretrained(tmp_path / "model", num_iterations=4)
    img = _images(1)
    assert torch.equal(
        again.token_logprobs(["what ?"], ["a red circle"], [img]).logprobs,
        umm.token_logprobs(["what ?"], ["a red circle"], [img]).logprobs,
    )
    assert torch.equal(
        again.generate_images(["a red circle"], seeds=[5]).token_ids,
        umm.generate_images(["a red circle"], seeds=[5]).token_ids,
    )


@pytest.mark.parametrize("fault", ["missing", "shape"])
def test_bad_checkpoint_names_the_tensor(umm, tmp_path, fault):
    umm.save_pretrained(tmp_path / "model")
    file = tmp_path / "model" / "model.safetensors"
    state = load_file(str(file))
    if fault == "missing":
        del state["mar.diffloss.net.cond_embed.weight"]
    else:
        state["mar.diffloss.net.cond_embed.weight"] = torch.zeros(3, 3)
    save_file(state, str(file))
    with pytest.raises(SeerError, match="mar.diffloss.net.cond_embed.weight") as error:
        HarmonUMM.from_pretrained(tmp_path / "model")
    assert "\n" not in str(error.value)


def test_official_raw_checkpoint_converts(umm, tmp_path):
    state = umm.harmon.state_dict()
    torch.save({k: v for k, v in state.items() if not k.startswith("vae.")}, tmp_path / "harmon.pth")
    torch.save({"model": {k[4:]: v for k, v in state.items() if k.startswith("vae.")}}, tmp_path / "kl16.ckpt")
    converted = official_state_dict(tmp_path / "harmon.pth", tmp_path / "kl16.ckpt", None, umm.harmon.config)
    assert set(converted) == set(state) - {"llm.lm_head.weight"}
    assert all(torch.equal(converted[k], state[k]) for k in converted)
    torch.save({k: v for k, v in state.items() if not k.startswith("vae.") and k != "proj_in.0.bias"},
               tmp_path / "harmon.pth")  # fmt: skip
    with pytest.raises(SeerError, match="'proj_in.0.bias' is missing"):
        official_state_dict(tmp_path / "harmon.pth", tmp_path / "kl16.ckpt", None, umm.harmon.config)
