"""Janus-Pro-1B shape (random weights, bf16) on a CUDA GPU: one batch of images through our sampling loop.

Run on the device machine with ``pytest -m gpu tests/models/test_gpu.py``.
"""

import time

import pytest
import torch

from seer.models.janus import JanusUMM

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def janus_pro_1b():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    return JanusUMM.from_shape("janus-pro-1b", seed=0, dtype=torch.bfloat16, device="cuda")


def test_janus_pro_1b_generates_a_batch_of_images(janus_pro_1b):
    umm = janus_pro_1b
    prompts = ["a red circle at the center", "a small blue square", "a large green triangle", "a white ring"]
    seeds = [1, 2, 3, 4]
    torch.cuda.synchronize()
    start = time.perf_counter()
    with umm.no_adapter():
        out = umm.generate_images(prompts, seeds=seeds, guidance_scale=5.0)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(f"janus-pro-1b bf16, batch {len(prompts)}, CFG 5: {seconds:.2f} s, {len(prompts) / seconds:.2f} images/s")
    assert out.token_ids.shape == (4, 576)
    assert 0 <= int(out.token_ids.min()) and int(out.token_ids.max()) < 16384
    assert [(im.size, im.mode) for im in out.images] == [((384, 384), "RGB")] * 4
    with umm.no_adapter():
        again = umm.generate_images(prompts, seeds=seeds, guidance_scale=5.0)
    # Same seeds: the same first token (one prompt forward + the seed's uniform). Later tokens are not bit-exact
    # in bf16 on a GPU: with random weights the 16384-way distribution is nearly flat, so kernel-level rounding
    # differences between two calls flip samples (seen on an H200). Exact reproducibility is tested on the CPU.
    assert torch.equal(again.token_ids[:, 0], out.token_ids[:, 0])
    agreement = (again.token_ids == out.token_ids).float().mean().item()
    print(f"same-seed token agreement between two bf16 calls: {agreement:.3f}")
    assert len({tuple(row.tolist()) for row in out.token_ids}) == 4  # different seeds: different images


def test_janus_pro_1b_scores_text_in_bf16(janus_pro_1b):
    got = janus_pro_1b.token_logprobs(["what is this ?"], ["a red circle"])
    assert got.mask.sum() == 3 and torch.isfinite(got.logprobs).all() and (got.logprobs <= 0).all()
