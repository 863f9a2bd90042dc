"""Harmon's diffusion head: MAR's per-token MLP denoiser and its DDPM sampler, ported for the ``harmon`` backend.

Each image token's 16-dim latent is sampled by a small MLP conditioned on the MAR decoder's output for that token
(MAR, arXiv 2406.11838). The schedule is the improved-DDPM cosine one over 1000 steps, respaced to
``num_sampling_steps`` (100 in Harmon), with a learned variance range and epsilon prediction; the network is called
with the *original* timestep of each respaced step, as the reference's ``_WrappedModel`` does.

Departures from the reference (github.com/LTH14/mar ``models/diffloss.py`` and ``diffusion/``, as vendored by
wusize/Harmon), none of which changes the numbers:

- Device-agnostic: the reference moves noise and timesteps with hard-coded ``.cuda()``.
- The noise is an argument (``noise[:, 0]`` starts the chain, ``noise[:, 1 + k]`` is added at the k-th denoising
  step), so a caller can give each token of each sample its own seeded noise; the reference draws it from the global
  RNG in one batch, which couples the samples of a batch.
- With guidance the network runs on ``[x, x]`` with ``[cond, uncond]`` conditions and returns only the guided
  conditional chain; the reference also carries an unconditional chain that is thrown away.
- Only sampling is here: SEER never trains the generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class TimestepEmbedder(nn.Module):
    """Sinusoidal timestep features (256) through a 2-layer MLP."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size)
        )
        self.frequency_embedding_size = frequency_embedding_size

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.frequency_embedding_size // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t[:, None].float() * freqs[None]
        features = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class ResBlock(nn.Module):
    """adaLN-modulated residual MLP block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.in_ln = nn.LayerNorm(channels, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, channels))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(channels, 3 * channels))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.adaLN_modulation(y).chunk(3, dim=-1)
        return x + gate * self.mlp(_modulate(self.in_ln(x), shift, scale))


class FinalLayer(nn.Module):
    """DiT's final layer: adaLN-modulated LayerNorm (no affine) and a linear map."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(channels, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(channels, out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(channels, 2 * channels))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(_modulate(self.norm_final(x), shift, scale))


class SimpleMLPAdaLN(nn.Module):
    """The denoiser: (noisy latent (N, C), timestep (N,), condition (N, Z)) -> (epsilon, variance value) (N, 2C)."""

    def __init__(self, in_channels: int, model_channels: int, z_channels: int, num_res_blocks: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.time_embed = TimestepEmbedder(model_channels)
        self.cond_embed = nn.Linear(z_channels, model_channels)
        self.input_proj = nn.Linear(in_channels, model_channels)
        self.res_blocks = nn.ModuleList(ResBlock(model_channels) for _ in range(num_res_blocks))
        self.final_layer = FinalLayer(model_channels, 2 * in_channels)  # epsilon and the learned-variance value

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = self.input_proj(x.to(self.input_proj.weight.dtype))
        y = self.time_embed(t) + self.cond_embed(c.to(self.cond_embed.weight.dtype))
        for block in self.res_blocks:
            x = block(x, y)
        return self.final_layer(x, y)


@dataclass(frozen=True)
class Schedule:
    """The respaced DDPM's per-step constants (float64, as the reference computes them), step 0 = least noise."""

    timestep_map: np.ndarray  # (T,) the original timestep (0..999) of each respaced step, fed to the network
    log_betas: np.ndarray
    posterior_log_variance_clipped: np.ndarray
    sqrt_recip_alphas_cumprod: np.ndarray
    sqrt_recipm1_alphas_cumprod: np.ndarray
    posterior_mean_coef1: np.ndarray
    posterior_mean_coef2: np.ndarray

    @property
    def num_steps(self) -> int:
        return len(self.timestep_map)


def cosine_betas(num_steps: int = 1000, max_beta: float = 0.999) -> np.ndarray:
    """Improved-DDPM cosine schedule: betas from alpha_bar(t) = cos((t + 0.008) / 1.008 * pi / 2)^2."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta) for i in range(num_steps)]
    return np.array(betas)


def spaced_timesteps(num_timesteps: int, count: int) -> list[int]:
    """``count`` evenly strided original timesteps (one section, rounded as the reference's ``space_timesteps``)."""
    if not 1 <= count <= num_timesteps:
        raise ValueError(f"num_sampling_steps: expected 1..{num_timesteps}, got {count}")
    stride = 1.0 if count <= 1 else (num_timesteps - 1) / (count - 1)
    return sorted({round(i * stride) for i in range(count)})


def build_schedule(num_sampling_steps: int, num_timesteps: int = 1000) -> Schedule:
    """The respaced schedule: betas recomputed from the kept steps' alpha_cumprod (the reference's SpacedDiffusion)."""
    base_alphas_cumprod = np.cumprod(1.0 - cosine_betas(num_timesteps))
    kept = spaced_timesteps(num_timesteps, num_sampling_steps)
    betas, last = [], 1.0
    for i in kept:
        betas.append(1 - base_alphas_cumprod[i] / last)
        last = base_alphas_cumprod[i]
    betas_arr = np.array(betas, dtype=np.float64)
    alphas_cumprod = np.cumprod(1.0 - betas_arr)
    alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])
    posterior_variance = betas_arr * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
    # the posterior variance is 0 at step 0: its log is clipped to step 1's value
    clipped = np.log(np.append(posterior_variance[1], posterior_variance[1:])) if len(betas) > 1 else np.zeros(1)
    return Schedule(
        timestep_map=np.array(kept, dtype=np.int64),
        log_betas=np.log(betas_arr),
        posterior_log_variance_clipped=clipped,
        sqrt_recip_alphas_cumprod=np.sqrt(1.0 / alphas_cumprod),
        sqrt_recipm1_alphas_cumprod=np.sqrt(1.0 / alphas_cumprod - 1),
        posterior_mean_coef1=betas_arr * np.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod),
        posterior_mean_coef2=(1.0 - alphas_cumprod_prev) * np.sqrt(1.0 - betas_arr) / (1.0 - alphas_cumprod),
    )


def guided_output(output: torch.Tensor, in_channels: int, cfg: float) -> torch.Tensor:
    """Network output (2N, 2C) on ``[x, x]`` with ``[cond, uncond]`` -> (N, 2C): guided epsilon, conditional variance.

    epsilon = eps_uncond + cfg * (eps_cond - eps_uncond), the reference's ``forward_with_cfg``.
    """
    cond, uncond = output.chunk(2)
    eps = uncond[:, :in_channels] + cfg * (cond[:, :in_channels] - uncond[:, :in_channels])
    return torch.cat([eps, cond[:, in_channels:]], dim=1)


class DiffLoss(nn.Module):
    """Holds the denoiser (``net``, the name the checkpoints use) and samples token latents with it."""

    def __init__(self, target_channels: int, z_channels: int, depth: int, width: int, num_sampling_steps: int) -> None:
        super().__init__()
        self.in_channels = target_channels
        self.net = SimpleMLPAdaLN(target_channels, width, z_channels, depth)
        self.schedule = build_schedule(num_sampling_steps)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, noise: torch.Tensor, temperature: float = 1.0, cfg: float = 1.0) -> torch.Tensor:
        """Token latents (N, C) for conditions ``z`` (N, Z), or (2N, Z) = [cond; uncond] when ``cfg != 1``.

        ``noise`` (N, T + 1, C): column 0 is the starting point, column 1 + k the noise of the k-th denoising step
        (scaled by ``temperature``; none is added at the last step).
        """
        return self.chain(z, noise, temperature, cfg, guided=cfg != 1.0)

    def chain(self, z: torch.Tensor, noise: torch.Tensor, temperature: float | torch.Tensor,
              cfg: float | torch.Tensor, *, guided: bool) -> torch.Tensor:  # fmt: skip
        """`sample`'s denoising chain; ``temperature`` and ``cfg`` may be device scalars (a captured CUDA graph reads
        them at replay, `seer.models.harmon_rollout`), and ``guided`` says whether ``z`` holds [cond; uncond]."""
        s = self.schedule
        x = noise[:, 0].float()  # the chain runs in float32 whatever the weights are (the reference's does too)
        rows = x.shape[0]
        for k, i in enumerate(reversed(range(s.num_steps))):
            t = torch.full((2 * rows if guided else rows,), int(s.timestep_map[i]), dtype=torch.long, device=z.device)
            output = self.net(torch.cat([x, x]) if guided else x, t, z).float()
            if guided:
                output = guided_output(output, self.in_channels, cfg)
            eps, values = output.split(self.in_channels, dim=1)
            # the reference casts each float64 constant to float32 before using it
            frac = (values + 1) / 2
            log_variance = frac * float(np.float32(s.log_betas[i])) + (1 - frac) * float(
                np.float32(s.posterior_log_variance_clipped[i])
            )
            x_start = (
                float(np.float32(s.sqrt_recip_alphas_cumprod[i])) * x
                - float(np.float32(s.sqrt_recipm1_alphas_cumprod[i])) * eps
            )
            mean = (
                float(np.float32(s.posterior_mean_coef1[i])) * x_start
                + float(np.float32(s.posterior_mean_coef2[i])) * x
            )
            if i == 0:
                x = mean
            else:
                x = mean + torch.exp(0.5 * log_variance) * noise[:, 1 + k].float() * temperature
        return x


def interpolate_grid(table: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """A learned position table (1, h*w, D) laid out on ``grid`` resized bilinearly to ``size`` (1, H*W, D)."""
    if tuple(grid) == tuple(size):
        return table
    image = table.transpose(1, 2).reshape(1, table.shape[-1], *grid)
    return F.interpolate(image, size=size, mode="bilinear").flatten(2).transpose(1, 2)
