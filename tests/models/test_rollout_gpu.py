"""The static-cache image rollout engine on a CUDA GPU: captured CUDA graphs, checked in float32 against
transformers' ``generate``, teacher-forced passes and the reference loop, at the embedded model's shape.

Run on the device machine with ``pytest -m gpu tests/models/test_rollout_gpu.py``.
"""

import pytest
import torch

from seer.models.adapters import LoraSettings
from seer.models.janus import JanusUMM, seeded_uniforms, unconditional_ids

pytestmark = pytest.mark.gpu

PROMPTS = ["a large red circle at the top left and a small blue square", "a red circle", "a blue bar at the center"]


@pytest.fixture(scope="module")
def umm():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    return JanusUMM.from_shape("shapeworld-tiny", seed=0, device="cuda")  # float32: exact comparisons hold


def _uncond(umm, input_ids):
    tok = umm.tokenizer
    return unconditional_ids(input_ids, tok.bos_token_id, tok.boi_token_id, tok.pad_token_id)


def test_graphs_greedy_tokens_equal_transformers_generate(umm):
    input_ids, mask = umm.image_prompt_batch(PROMPTS)
    engine = umm.image_rollout
    assert engine.cuda_graphs
    ours = engine.sample(input_ids, mask, _uncond(umm, input_ids), uniforms=None, guidance_scale=5.0)
    decoder = engine._decoder
    assert sorted(decoder.graphs) == sorted(set(decoder.lengths))  # every step was a graph replay
    theirs = umm.janus.generate(
        input_ids=input_ids, attention_mask=mask, generation_mode="image", do_sample=False, guidance_scale=5.0
    )
    assert torch.equal(ours.tokens, theirs)


def test_graphs_sample_the_guided_distribution_of_the_reference_loop(umm):
    input_ids, mask = umm.image_prompt_batch(PROMPTS)
    seeds, scale = [3, 4, 5], 3.0
    out = umm.image_rollout.sample(
        input_ids, mask, _uncond(umm, input_ids), uniforms=seeded_uniforms(seeds, 64).cuda(), guidance_scale=scale
    )
    with torch.no_grad():
        cond = umm.image_token_logits(input_ids, mask, out.tokens).float()
        uncond = umm.image_token_logits(_uncond(umm, input_ids), mask, out.tokens).float()
    guided = uncond + (cond - uncond) * scale
    expected = torch.log_softmax(guided, dim=-1).gather(-1, out.tokens[..., None]).squeeze(-1)
    torch.testing.assert_close(out.logprobs, expected, rtol=0, atol=1e-4)
    reference = umm.sample_image_tokens(input_ids, mask, seeds=seeds, guidance_scale=scale, engine="reference")
    agreement = (out.tokens == reference).float().mean().item()
    print(f"float32 GPU: static engine vs reference loop token agreement {agreement:.4f}")
    assert agreement > 0.99  # rounding can flip a draw that sits on a CDF boundary; the rest of that row follows


def test_graphs_are_recaptured_when_the_adapter_state_changes(umm):
    input_ids, mask = umm.image_prompt_batch(PROMPTS)
    kwargs = dict(seeds=[1, 2, 3], guidance_scale=3.0, do_sample=False)
    base = umm.sample_image_tokens(input_ids, mask, **kwargs)  # "auto" is the static engine on CUDA
    umm.add_adapter("reprompter", LoraSettings(r=4))
    with torch.no_grad():
        for name, p in umm.module.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    with_adapter = umm.sample_image_tokens(input_ids, mask, **kwargs)
    assert not torch.equal(with_adapter, base)
    assert torch.equal(with_adapter, umm.sample_image_tokens(input_ids, mask, engine="reference", **kwargs))
    with umm.no_adapter():
        assert torch.equal(umm.sample_image_tokens(input_ids, mask, **kwargs), base)


QUESTIONS = ["does the first image match the prompt better than the second image ? prompt : a red circle",
             "does the first image show a large blue square at the top left on a white background ?",
             "describe the second image"]  # fmt: skip


@pytest.mark.parametrize("seeds", [None, [4, 5, 6]])
def test_text_graphs_write_the_reference_loops_answers(seeds):
    """The embedded (trained) model on CUDA: the text engine's graphs end answers where the loop does, with the same
    tokens, greedy (the judge) or sampled."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from seer.data.pairs import LiteralRenderer
    from seer.embedded import load_embedded_model

    umm = load_embedded_model(device="cuda")
    images = LiteralRenderer(32).generate_images(["a red circle", "a large blue square at the top left on a white "
                                                  "background", "a small green ring"]).images  # fmt: skip
    per_question = [[images[i], images[(i + 1) % 3]] for i in range(3)]
    kwargs = dict(images=per_question, max_new_tokens=160, do_sample=seeds is not None, seeds=seeds)
    static = umm.generate_text(QUESTIONS, **kwargs)  # "auto" is the static engine on CUDA
    assert umm.text_rollout.cuda_graphs and umm.text_rollout._decoder.graphs
    reference = umm.generate_text(QUESTIONS, engine="reference", **kwargs)
    assert static.token_ids == reference.token_ids
    assert all(ids[-1] == umm.tokenizer.eos_token_id and len(ids) < 160 for ids in static.token_ids)
