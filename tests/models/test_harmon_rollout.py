"""`seer.models.harmon_rollout`: the diffusion head's chain with rows padded to buckets gives the eager chain's
latents (the padding changes nothing in the real rows), with guidance and temperature read from device scalars; the
Harmon backend samples through it. The ``-m gpu`` test checks the captured graphs against the eager chain."""

import pytest
import torch

from seer.errors import SeerError
from seer.models.harmon import HarmonUMM
from seer.models.harmon_diffusion import DiffLoss
from seer.models.harmon_rollout import GraphedDiffusionSampler, padded_rows


def head(device="cpu"):
    torch.manual_seed(0)
    diffloss = DiffLoss(target_channels=4, z_channels=8, depth=2, width=16, num_sampling_steps=10).to(device)
    with torch.no_grad():
        for p in diffloss.parameters():  # no layer left at its (possibly zero) initial value
            p.copy_(torch.randn_like(p) * 0.1)
    return diffloss


def inputs(rows, guided, device="cpu"):
    generator = torch.Generator().manual_seed(rows)
    z = torch.randn(2 * rows if guided else rows, 8, generator=generator)
    noise = torch.randn(rows, 11, 4, generator=generator)
    return z.to(device), noise.to(device)


def assert_close(got, expected, tolerance):
    """Equal up to `tolerance` of the largest value: an untrained head's chain reaches |x| ~ 1e4 (at the noisiest
    step x_start multiplies x by 1 / sqrt(alpha_bar) ~ 1e3), so rounding differences are relative to that."""
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) <= tolerance * float(expected.abs().max())


def test_padded_rows_round_up_to_the_bucket():
    assert [padded_rows(n, 4) for n in (1, 4, 5, 8, 9)] == [4, 4, 8, 8, 12]
    assert padded_rows(0, 4) == 4


@pytest.mark.parametrize("guided", [False, True])
def test_padded_chain_equals_the_eager_chain(guided):
    diffloss = head()
    sampler = GraphedDiffusionSampler(diffloss, bucket=4, cuda_graphs=False)
    for rows, cfg, temperature in ((5, 3.0, 1.0), (3, 1.5, 0.7), (8, 4.0, 1.3)):
        z, noise = inputs(rows, guided)
        cfg = cfg if guided else 1.0
        expected = diffloss.sample(z, noise, temperature, cfg)
        got = sampler.sample(z, noise, temperature, cfg)
        assert got.shape == (rows, 4)
        assert_close(got, expected, 1e-6)
    # the same padded size (8) serves rows 5 and 8: one buffer set per (padded rows, guided, ...)
    assert sorted(key[0] for key in sampler._chains) == [4, 8]


def test_guidance_is_read_at_each_call_not_frozen_at_the_first():
    diffloss = head()
    sampler = GraphedDiffusionSampler(diffloss, bucket=4, cuda_graphs=False)
    z, noise = inputs(3, guided=True)
    first = sampler.sample(z, noise, 1.0, 3.0)
    second = sampler.sample(z, noise, 1.0, 5.0)
    assert not torch.allclose(first, second)
    assert_close(second, diffloss.sample(z, noise, 1.0, 5.0), 1e-6)


def test_condition_rows_must_match_the_samples():
    sampler = GraphedDiffusionSampler(head(), bucket=4, cuda_graphs=False)
    z, noise = inputs(3, guided=False)
    with pytest.raises(SeerError, match="z: expected 6 rows for 3 samples, got 3"):
        sampler.sample(z, noise, 1.0, 3.0)  # guided needs [cond; uncond]
    with pytest.raises(SeerError, match="CUDA graphs need a CUDA device"):
        GraphedDiffusionSampler(head(), cuda_graphs=True)


def test_harmon_samples_through_the_engine():
    umm = HarmonUMM.from_shape("harmon-tiny", seed=0)
    assert umm.diffusion_sampler is umm.harmon.mar.diffloss  # the eager head on a CPU
    with umm.no_adapter():
        eager = umm.generate_images(["a red circle", "a blue square"], seeds=[1, 2])
        umm.diffusion_sampler = GraphedDiffusionSampler(umm.harmon.mar.diffloss, bucket=3, cuda_graphs=False)
        padded = umm.generate_images(["a red circle", "a blue square"], seeds=[1, 2])
    torch.testing.assert_close(padded.token_ids, eager.token_ids, atol=1e-4, rtol=1e-4)
    assert umm.diffusion_sampler._chains  # it was used


@pytest.mark.gpu
@pytest.mark.parametrize("guided", [False, True])
def test_graphs_equal_the_eager_chain_on_a_gpu(guided):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    diffloss = head("cuda")
    sampler = GraphedDiffusionSampler(diffloss, bucket=4)
    assert sampler.cuda_graphs
    for rows, cfg in ((5, 3.0), (7, 2.0), (2, 4.0)):
        z, noise = inputs(rows, guided, "cuda")
        cfg = cfg if guided else 1.0
        got = sampler.sample(z, noise, 0.9, cfg)
        assert_close(got, diffloss.sample(z, noise, 0.9, cfg), 1e-5)
    assert all(chain.graph is not None for chain in sampler._chains.values())
    sampler.release()  # graphs are captured again into a fresh pool
    z, noise = inputs(5, guided, "cuda")
    cfg = 3.0 if guided else 1.0
    assert_close(sampler.sample(z, noise, 1.0, cfg), diffloss.sample(z, noise, 1.0, cfg), 1e-5)
