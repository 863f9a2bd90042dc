"""The janus backend on the tiny random-weight shape: tokenizer, sampling maths, generation loops, log-probs, I/O.

Reference values are hand-derived or come from an independent path (transformers' own generate, a plain forward
pass with a hand log_softmax/gather), never from the code under test.
"""

import json
import math

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from seer.errors import SeerError
from seer.models.janus import (
    SHAPES,
    JanusShape,
    JanusUMM,
    build_config,
    nearest_codes,
    position_ids,
    sample_tokens,
    seeded_uniforms,
    to_pil_images,
    unconditional_ids,
)
from seer.models.tokenizer import DEFAULT_WORDS, SPECIAL_TOKENS, build_word_tokenizer

torch.set_num_threads(2)

RED = Image.new("RGB", (32, 32), (220, 30, 30))
BLUE = Image.new("RGB", (32, 32), (30, 60, 220))
# Different lengths, so batches are left-padded.
PROMPTS = ["a large red circle at the top left and a small blue square", "a red circle", "a blue bar at the center"]


@pytest.fixture(scope="module")
def umm():
    """A read-only tiny model shared by the tests that do not modify it."""
    return JanusUMM.from_shape("shapeworld-tiny", seed=0)


# ---- tokenizer ----


def test_word_tokenizer_ids_follow_specials_then_words():
    tok = build_word_tokenizer(["a", "red", "circle", ".", "<think>"])
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(7))
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert (tok.image_token_id, tok.boi_token_id, tok.eoi_token_id) == (4, 5, 6)
    # words get 7, 8, ... in order; "." is split off "circle."; "<think>" stays whole; unknown words are <unk> (3)
    assert tok("a red circle. zebra <think>red")["input_ids"] == [1, 7, 8, 9, 10, 3, 11, 8]


def test_word_tokenizer_decode_joins_with_spaces_and_round_trips(tmp_path):
    tok = build_word_tokenizer(DEFAULT_WORDS)
    text = "<think> red and blue </think> <answer> Yes </answer> ."
    ids = tok(text)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == text
    tok.save_pretrained(tmp_path)
    loaded = type(tok).from_pretrained(tmp_path)
    assert loaded(text)["input_ids"] == ids
    assert (loaded.image_token, loaded.boi_token, loaded.eoi_token) == (
        "<image_placeholder>",
        "<begin_of_image>",
        "<end_of_image>",
    )
    assert loaded.padding_side == "left"


def test_word_tokenizer_pads_to_vocab_size_and_rejects_bad_words():
    assert len(build_word_tokenizer(["a"], vocab_size=50)) == 50
    with pytest.raises(SeerError, match="vocab_size"):
        build_word_tokenizer(["a", "b"], vocab_size=8)
    with pytest.raises(SeerError, match="whitespace"):
        build_word_tokenizer(["red circle"])
    with pytest.raises(SeerError, match="special"):
        build_word_tokenizer(["<eos>"])


# ---- pure helpers ----


def test_sample_tokens_inverse_cdf_hand_values():
    logits = torch.tensor([0.25, 0.5, 0.25]).log().expand(4, 3)
    # cumulative probabilities 0.25, 0.75, 1.0: u picks the first token whose cumulative mass exceeds it
    assert sample_tokens(logits, torch.tensor([0.1, 0.3, 0.74, 0.76])).tolist() == [0, 1, 1, 2]
    assert sample_tokens(logits, None).tolist() == [1, 1, 1, 1]  # greedy
    impossible = torch.tensor([[-math.inf, 0.0, 0.0]])
    assert sample_tokens(impossible, torch.tensor([0.0])).tolist() == [1]  # zero probability is never drawn


def test_sample_tokens_temperature_hand_values():
    logits = torch.tensor([[0.0, math.log(3.0)]])  # p = [0.25, 0.75] at T=1, [0.1, 0.9] at T=0.5
    assert sample_tokens(logits, torch.tensor([0.2]), temperature=1.0).tolist() == [0]
    assert sample_tokens(logits, torch.tensor([0.2]), temperature=0.5).tolist() == [1]


def test_sample_tokens_frequencies_on_a_uniform_grid():
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    grid = (torch.arange(1000, dtype=torch.float64) + 0.5) / 1000
    drawn = sample_tokens(probs.log().expand(1000, 4), grid)
    assert torch.bincount(drawn, minlength=4).tolist() == [100, 200, 300, 400]


def test_seeded_uniforms_row_depends_only_on_its_seed():
    alone = seeded_uniforms([5], 10)[0]
    assert torch.equal(seeded_uniforms([5, 6], 10)[0], alone)
    assert torch.equal(seeded_uniforms([7, 5], 10)[1], alone)
    assert not torch.equal(seeded_uniforms([6], 10)[0], alone)
    assert ((alone >= 0) & (alone < 1)).all()


def test_unconditional_ids_and_positions_hand_values():
    ids = torch.tensor([[0, 1, 9, 8, 5], [1, 7, 7, 7, 5]])  # pad bos w w boi / bos w w w boi
    assert unconditional_ids(ids, bos_id=1, boi_id=5, pad_id=0).tolist() == [[0, 1, 0, 0, 5], [1, 0, 0, 0, 5]]
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert position_ids(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]


def test_nearest_codes_uses_l2_normalised_codes():
    codebook = torch.tensor([[1.0, 0.0], [10.0, 1.0], [0.0, -2.0]])
    # latents along code 0, 1, 2 at various lengths; (8, 0) is nearer to the unnormalised code 1 (distance^2 5 vs
    # 49), but its direction is code 0's, which is what the decoder's normalised lookup reproduces
    latents = torch.tensor([[8.0, 0.0], [0.5, 0.05], [0.0, -7.0], [3.0, 0.0]])  # (4 positions, D=2)
    grid = latents.T.reshape(1, 2, 2, 2)  # (B=1, D, h=2, w=2), row-major positions
    assert nearest_codes(grid, codebook).tolist() == [[0, 1, 2, 0]]


def test_to_pil_images_denormalises_by_hand():
    pixels = torch.tensor([-1.0, 1.0, 0.0, 0.2, 2.0, -3.0]).reshape(1, 1, 2, 3).expand(1, 3, 2, 3)
    image = to_pil_images(pixels, mean=[0.5] * 3, std=[0.5] * 3)[0]
    # (x * 0.5 + 0.5) * 255, rounded (127.5 -> 128, half to even) and clamped
    assert image.size == (3, 2) and image.mode == "RGB"
    assert [image.getpixel((x, y))[0] for y in range(2) for x in range(3)] == [0, 255, 128, 153, 255, 0]


# ---- shapes ----


def llama_parameters(vocab: int, hidden: int, inter: int, layers: int) -> int:
    """Embeddings + per layer (q, k, v, o: 4 H^2; gate, up, down: 3 H I; two RMSNorms) + the final norm."""
    return vocab * hidden + layers * (4 * hidden**2 + 3 * hidden * inter + 2 * hidden) + hidden


def test_janus_pro_shapes_have_the_real_language_model_sizes():
    for name, (hidden, inter, layers) in {"janus-pro-1b": (2048, 5632, 24), "janus-pro-7b": (4096, 11008, 30)}.items():
        model = JanusUMM.from_shape(name, device="meta")
        lm = model.janus.model.language_model
        assert sum(p.numel() for p in lm.parameters()) == llama_parameters(102400, hidden, inter, layers)
        assert model.num_image_tokens == 576 and model.image_size == 384  # 24 x 24 grid at 384 px
        assert len(model.tokenizer) == 102400


def test_probe_shapes_change_only_depth_or_width_of_the_embedded_language_model():
    base = JanusUMM.from_shape("shapeworld-tiny", device="meta")
    vocab = len(base.tokenizer)
    for name, (hidden, inter, layers, heads) in {
        "shapeworld-tiny": (256, 512, 4, 4),
        "shapeworld-tiny-l8": (256, 512, 8, 4),
        "shapeworld-tiny-w384": (384, 1024, 4, 6),
        "shapeworld-tiny-w512": (512, 1408, 4, 8),
    }.items():
        model = JanusUMM.from_shape(name, device="meta")
        lm = model.janus.model.language_model
        assert sum(p.numel() for p in lm.parameters()) == llama_parameters(vocab, hidden, inter, layers), name
        assert lm.config.num_attention_heads == heads and hidden // heads == 64  # the head size is kept
        assert model.num_image_tokens == 64 and model.image_size == 32  # the same 8 x 8 image grid


def test_build_config_rejects_inconsistent_shapes():
    tok = build_word_tokenizer(["a"])
    tiny = SHAPES["shapeworld-tiny"]
    bad_grid = JanusShape(**{**tiny.__dict__, "patch_size": 8})  # vision 4x4, VQ 8x8
    with pytest.raises(SeerError, match="grid"):
        build_config(bad_grid, tok)
    bad_channels = JanusShape(**{**tiny.__dict__, "vq": {**tiny.vq, "base_channels": 48}})
    with pytest.raises(SeerError, match="multiple of 32"):
        build_config(bad_channels, tok)
    with pytest.raises(SeerError, match="shapeworld-tiny"):
        JanusUMM.from_shape("janus-pro-3b")


def test_same_seed_builds_the_same_weights():
    a, b, c = (JanusUMM.from_shape(seed=s) for s in (0, 0, 1))
    assert torch.equal(a.janus.lm_head.weight, b.janus.lm_head.weight)
    assert not torch.equal(a.janus.lm_head.weight, c.janus.lm_head.weight)


# ---- image generation ----


def test_greedy_image_tokens_equal_transformers_generate(umm):
    input_ids, mask = umm.image_prompt_batch(PROMPTS)
    assert (mask == 0).any()  # left padding is exercised
    for scale in (2.0, 5.0):
        ours = umm.sample_image_tokens(input_ids, mask, do_sample=False, guidance_scale=scale)
        theirs = umm.janus.generate(
            input_ids=input_ids, attention_mask=mask, generation_mode="image", do_sample=False, guidance_scale=scale
        )
        assert torch.equal(ours, theirs)


def test_guidance_one_is_plain_conditional_decoding(umm):
    input_ids, mask = umm.image_prompt_batch(PROMPTS)
    tokens = umm.sample_image_tokens(input_ids, mask, do_sample=False, guidance_scale=1.0)
    # teacher forcing on the decoded tokens: each greedy token is the argmax of the conditional logits
    with torch.no_grad():
        logits = umm.image_token_logits(input_ids, mask, tokens)
    assert torch.equal(logits.argmax(-1), tokens)
    sampled = umm.generate_images(PROMPTS, seeds=[1, 2, 3], guidance_scale=1.0)
    assert len(sampled.images) == 3 and sampled.token_ids.shape == (3, 64)


def test_sampled_image_tokens_follow_the_teacher_forced_guided_distribution(umm):
    input_ids, mask = umm.image_prompt_batch(PROMPTS)
    seeds, scale = [3, 4, 5], 3.0
    tokens = umm.sample_image_tokens(input_ids, mask, seeds=seeds, guidance_scale=scale, temperature=1.3)
    # rebuild every draw from plain teacher-forced passes (no KV cache), Janus's CFG rule and the seeds' uniforms
    tok = umm.tokenizer
    uncond_ids = unconditional_ids(input_ids, tok.bos_token_id, tok.boi_token_id, tok.pad_token_id)
    with torch.no_grad():
        cond = umm.image_token_logits(input_ids, mask, tokens)
        uncond = umm.image_token_logits(uncond_ids, mask, tokens)
    guided = uncond + (cond - uncond) * scale  # (B, N, K)
    uniforms = seeded_uniforms(seeds, 64)
    expected = torch.stack([sample_tokens(guided[:, t], uniforms[:, t], 1.3) for t in range(64)], dim=1)
    assert torch.equal(tokens, expected)
    assert len(set(tokens.flatten().tolist())) > 32  # sampling, not a constant


def test_image_seeds_reproduce_and_are_independent_per_sample(umm):
    first = umm.generate_images(PROMPTS, seeds=[11, 12, 13], guidance_scale=3.0).token_ids
    again = umm.generate_images(PROMPTS, seeds=[11, 12, 13], guidance_scale=3.0).token_ids
    assert torch.equal(first, again)
    other = umm.generate_images(PROMPTS, seeds=[11, 99, 98], guidance_scale=3.0).token_ids
    assert torch.equal(other[0], first[0])  # sample 0 ignores the other samples' seeds
    assert not torch.equal(other[1], first[1]) and not torch.equal(other[2], first[2])
    alone = umm.generate_images(PROMPTS[:1], seeds=[11], guidance_scale=3.0).token_ids
    assert torch.equal(alone[0], first[0])  # ... and the batch it is in
    changed = umm.generate_images(PROMPTS[:1], seeds=[12], guidance_scale=3.0).token_ids
    assert not torch.equal(changed[0], first[0])


def test_generated_images_are_decoded_rgb(umm):
    out = umm.generate_images(PROMPTS[:2], seeds=[0, 1])
    assert [(im.size, im.mode) for im in out.images] == [((32, 32), "RGB")] * 2
    assert out.token_ids.dtype == torch.long and 0 <= out.token_ids.min() and out.token_ids.max() < 512
    assert [im.tobytes() for im in umm.decode_tokens(out.token_ids)] == [im.tobytes() for im in out.images]


def test_encode_images_gives_one_code_per_grid_cell(umm):
    codes = umm.encode_images([RED, BLUE, RED])
    assert codes.shape == (3, 64) and codes.dtype == torch.long
    assert torch.equal(codes[0], codes[2])  # same image, same codes, whatever the batch


def test_bad_sampling_arguments_raise(umm):
    with pytest.raises(SeerError, match="seeds"):
        umm.generate_images(PROMPTS, seeds=[1])
    with pytest.raises(SeerError, match="guidance_scale"):
        umm.generate_images(PROMPTS[:1], seeds=[1], guidance_scale=-1.0)
    with pytest.raises(SeerError, match="temperature"):
        umm.generate_text(PROMPTS[:1], seeds=[1], temperature=0.0)
    with pytest.raises(SeerError, match="images"):
        umm.generate_text(PROMPTS[:2], images=[[RED]], seeds=[1, 2])


# ---- text generation and log-probs ----


def _plain_logprobs(umm, prompt, images, completion_ids, temperature=1.0):
    """Log-probs of a completion by one unpadded forward pass and a hand log_softmax/gather."""
    enc = umm.processor(text=umm.format_prompt(prompt, len(images)), images=images or None, return_tensors="pt")
    ids = torch.cat([enc["input_ids"], torch.tensor([completion_ids])], dim=1)
    logits = umm.janus(input_ids=ids, pixel_values=enc.get("pixel_values")).logits[0]
    start = enc["input_ids"].shape[1]
    rows = logits[start - 1 : start - 1 + len(completion_ids)]
    return torch.log_softmax(rows / temperature, dim=-1)


def test_format_prompt_places_one_placeholder_per_image(umm):
    text = umm.format_prompt("does the first image match ?", 2)
    assert text == "user: <image_placeholder> <image_placeholder> does the first image match ? assistant:"


def test_a_response_prefix_ends_the_prompt_literally_and_the_model_writes_on_from_it(umm):
    prefix = 'a "quoted" {{ x }} <think> the first image'  # quotes and Jinja braces stay literal text
    text = umm.format_prompt("does the first image match ?", 2, response_prefix=prefix)
    assert text == umm.format_prompt("does the first image match ?", 2) + " " + prefix
    out = umm.generate_text(["what color ?"], [[RED, BLUE]], max_new_tokens=6, do_sample=False,
                            response_prefix="<think> the first image")  # fmt: skip
    prefix_ids = umm.tokenizer("<think> the first image", add_special_tokens=False)["input_ids"]
    assert out.prompt_ids[0][-len(prefix_ids) :] == prefix_ids  # the prefix is context, not output
    with torch.no_grad():  # and the answer is the greedy continuation of prompt + prefix
        logprobs = _plain_logprobs(umm, "what color ?", [RED, BLUE], prefix_ids + out.token_ids[0])
    assert logprobs[len(prefix_ids) :].argmax(-1).tolist() == out.token_ids[0]


def test_greedy_text_is_the_argmax_of_a_plain_forward(umm):
    prompts, images = ["what color ?", "describe this image"], [[RED, BLUE], []]
    out = umm.generate_text(prompts, images, max_new_tokens=8, do_sample=False)
    for prompt, imgs, ids in zip(prompts, images, out.token_ids):
        with torch.no_grad():
            logprobs = _plain_logprobs(umm, prompt, imgs, ids)
        assert logprobs.argmax(-1).tolist() == ids
    # prompt ids are the unpadded prompts: 2 images of 64 tokens (+ begin/end markers) in the first
    unpadded = umm.processor(text=umm.format_prompt(prompts[0], 2), images=[RED, BLUE])["input_ids"][0]
    assert out.prompt_ids[0] == list(unpadded)
    assert out.prompt_ids[0].count(umm.tokenizer.image_token_id) == 128


def test_sampled_text_follows_the_plain_forward_distribution(umm):
    prompts, images, seeds = ["what color ?", "describe this image"], [[RED, BLUE], []], [8, 9]
    out = umm.generate_text(prompts, images, max_new_tokens=20, seeds=seeds, temperature=1.5)
    uniforms = seeded_uniforms(seeds, 20)
    for i, ids in enumerate(out.token_ids):
        with torch.no_grad():
            logits = _plain_logprobs(umm, prompts[i], images[i], ids)  # log-softmax: same draws as the logits
        assert sample_tokens(logits, uniforms[i, : len(ids)], temperature=1.5).tolist() == ids
    assert len(set(out.token_ids[0] + out.token_ids[1])) > 5  # sampling, not a constant


def test_text_stops_at_eos_and_decodes_without_specials(umm):
    out = umm.generate_text(PROMPTS, max_new_tokens=40, seeds=[0, 1, 2])
    eos = umm.tokenizer.eos_token_id
    for ids, text in zip(out.token_ids, out.texts):
        assert 1 <= len(ids) <= 40 and eos not in ids[:-1]
        assert text == umm.tokenizer.decode(ids, skip_special_tokens=True)


def test_text_seeds_are_independent_per_sample(umm):
    images = [[RED], [BLUE, RED], []]
    first = umm.generate_text(PROMPTS, images, max_new_tokens=12, seeds=[5, 6, 7]).token_ids
    assert umm.generate_text(PROMPTS, images, max_new_tokens=12, seeds=[5, 6, 7]).token_ids == first
    assert umm.generate_text(PROMPTS, images, max_new_tokens=12, seeds=[5, 60, 70]).token_ids[0] == first[0]
    alone = umm.generate_text(PROMPTS[1:2], images[1:2], max_new_tokens=12, seeds=[6]).token_ids
    assert alone[0] == first[1]  # different padding and batch, same sample


def test_token_logprobs_match_a_plain_forward_and_are_differentiable():
    umm = JanusUMM.from_shape(seed=3)
    prompts, images = ["what color ?", "describe this image"], [[RED], [BLUE, RED]]
    completions = [[20, 21, 2], [22]]  # different lengths: the batch is right-padded
    got = umm.token_logprobs(prompts, completions, images, temperature=0.7)
    assert got.mask.tolist() == [[True, True, True], [True, False, False]]
    for i, ids in enumerate(completions):
        with torch.no_grad():
            expected = _plain_logprobs(umm, prompts[i], images[i], ids, temperature=0.7)
        expected = expected.gather(-1, torch.tensor(ids)[:, None]).squeeze(-1)
        torch.testing.assert_close(got.logprobs[i, : len(ids)].detach(), expected, rtol=0, atol=1e-5)
    assert got.logprobs[1, 1:].tolist() == [0.0, 0.0]
    got.logprobs.sum().backward()
    assert umm.janus.lm_head.weight.grad.abs().sum() > 0


def test_token_logprobs_accept_text_completions(umm):
    words = "red and blue"
    as_ids = umm.tokenizer(words, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        by_text = umm.token_logprobs(["what color ?"], [words])
        by_ids = umm.token_logprobs(["what color ?"], [as_ids])
    assert by_text.mask.sum() == 3
    assert torch.equal(by_text.logprobs, by_ids.logprobs)


# ---- checkpoints ----


def _greedy_tokens(model):
    input_ids, mask = model.image_prompt_batch(PROMPTS[:2])
    return model.sample_image_tokens(input_ids, mask, do_sample=False, guidance_scale=5.0)


def test_save_and_load_round_trip(tmp_path, umm):
    umm.save_pretrained(tmp_path / "ckpt")
    umm.save_pretrained(tmp_path / "ckpt")  # overwriting an existing checkpoint works
    loaded = JanusUMM.from_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no staging folder left behind
    for (name, a), (_, b) in zip(umm.janus.state_dict().items(), loaded.janus.state_dict().items()):
        assert torch.equal(a, b), name
    assert loaded.format_prompt("a red circle", 1) == umm.format_prompt("a red circle", 1)
    assert torch.equal(_greedy_tokens(loaded), _greedy_tokens(umm))


def test_save_with_adapters_writes_the_plain_base(tmp_path):
    model = JanusUMM.from_shape(seed=0)
    base = _greedy_tokens(model)
    model.add_adapter("evaluator")
    for name, p in model.module.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)
    model.save_pretrained(tmp_path / "ckpt")
    assert not any("lora" in key for key in load_file(tmp_path / "ckpt" / "model.safetensors"))
    assert torch.equal(_greedy_tokens(JanusUMM.from_pretrained(tmp_path / "ckpt")), base)


@pytest.fixture()
def checkpoint(tmp_path, umm):
    umm.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def _rewrite_weights(directory, change):
    file = directory / "model.safetensors"
    tensors = load_file(file)
    change(tensors)
    save_file(tensors, file, metadata={"format": "pt"})
    return file


def test_missing_tensor_is_named(checkpoint):
    name = "model.generation_head.vision_head.weight"
    file = _rewrite_weights(checkpoint, lambda t: t.pop(name))
    with pytest.raises(SeerError, match=f"{file}: tensor '{name}' is missing"):
        JanusUMM.from_pretrained(checkpoint)


def test_misshaped_tensor_is_named(checkpoint):
    name = "model.language_model.layers.1.self_attn.q_proj.weight"
    file = _rewrite_weights(checkpoint, lambda t: t.__setitem__(name, torch.zeros(256, 128)))
    with pytest.raises(SeerError, match=rf"{file}: tensor '{name}' has shape \[256, 128\], expected \[256, 256\]"):
        JanusUMM.from_pretrained(checkpoint)


def test_unexpected_tensor_is_named(checkpoint):
    _rewrite_weights(checkpoint, lambda t: t.__setitem__("model.extra.weight", torch.zeros(2)))
    with pytest.raises(SeerError, match="unexpected tensor 'model.extra.weight'"):
        JanusUMM.from_pretrained(checkpoint)


def test_bad_checkpoint_directories_are_named(tmp_path, checkpoint):
    with pytest.raises(SeerError, match="not a directory"):
        JanusUMM.from_pretrained(tmp_path / "nowhere")
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(SeerError, match="only safetensors"):
        JanusUMM.from_pretrained(checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    with pytest.raises(SeerError, match="config.json"):
        JanusUMM.from_pretrained(checkpoint)
    (checkpoint / "config.json").unlink()
    with pytest.raises(SeerError, match="config.json: file not found"):
        JanusUMM.from_pretrained(checkpoint)
