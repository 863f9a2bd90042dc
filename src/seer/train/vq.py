"""Training the image tokenizer (VQ) of the embedded UMM from scratch, and measuring it with the oracle.

Stage A of `seer pretrain` (see seer.train.pretrain). The modules are transformers' own (`JanusVQVAE`: encoder,
quant_conv, codebook, post_quant_conv, decoder), so the trained tokenizer is exactly what `decode_image_tokens`
and `JanusUMM.decode_tokens` use. Only the quantiser's forward is ours, because HF's cannot be trained:

- HF's encode path does not L2-normalise, but its decode path (`get_codebook_entry`) does. We quantise on the
  unit sphere (latent and codebook both L2-normalised, nearest code = largest dot product), which is the code
  `JanusUMM.encode_images` picks and the vector HF's decoder looks up: encode -> decode is consistent.
- HF's forward decodes from the argmin *indices*, so no gradient reaches the encoder. We use the
  straight-through estimator (https://arxiv.org/abs/1711.00937), with the codebook and commitment losses of
  VQ-VAE on normalised vectors as LlamaGen does (https://arxiv.org/abs/2406.06525).

The quality figure is the oracle's: the fraction of random scenes whose encode -> decode image parses back to
the exact scene (WORLD.md asks for >= 97%), not a pixel error.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.janus.modeling_janus import JanusVQVAE

from seer.models.janus import JanusUMM
from seer.worlds.shapeworld.oracle import parse_image
from seer.worlds.shapeworld.render import render, render_array
from seer.worlds.shapeworld.scene import MAX_OBJECTS, Scene, random_scene


@dataclass
class VQLosses:
    """The terms of one VQ training forward; `loss` is what is minimised."""

    loss: torch.Tensor  # scalar: recon + codebook + commitment_weight * commitment
    recon: torch.Tensor  # scalar: MSE between the reconstruction and the input, in normalised pixel space
    codebook: torch.Tensor  # scalar: moves the chosen codes towards the (detached) latents
    commitment: torch.Tensor  # scalar: moves the latents towards their (detached) codes, unweighted
    codes: torch.Tensor  # (B, h*w) the chosen codes, row-major (what encode_images returns)
    latents: torch.Tensor  # (B*h*w, D) the L2-normalised encoder outputs, detached (candidates for restarts)
    reconstruction: torch.Tensor  # (B, 3, H, W) the decoder's output


def vq_losses(vq: JanusVQVAE, pixels: torch.Tensor, commitment_weight: float = 0.25) -> VQLosses:
    """One differentiable VQ forward on normalised pixels (B, 3, H, W); see the module docstring."""
    latents = vq.quant_conv(vq.encoder(pixels))  # (B, D, h, w)
    # Quantise in float32 even under autocast, so training picks the codes that inference (float32) picks.
    with torch.autocast(pixels.device.type, enabled=False):
        z = F.normalize(latents.float().permute(0, 2, 3, 1), dim=-1)  # (B, h, w, D) on the unit sphere
        codebook = F.normalize(vq.quantize.embedding.weight.float(), dim=-1)  # (K, D)
        codes = (z @ codebook.T).argmax(dim=-1)  # (B, h, w): nearest unit code = largest dot product
        quantised = codebook[codes]  # (B, h, w, D)
        codebook_loss = F.mse_loss(quantised, z.detach())
        commitment = F.mse_loss(z, quantised.detach())
        # Straight-through: the forward value is the code, the gradient flows to the encoder as if it were z.
        straight = z + (quantised - z).detach()
    reconstruction = vq.decoder(vq.post_quant_conv(straight.permute(0, 3, 1, 2).contiguous()))  # (B, 3, H, W)
    recon = F.mse_loss(reconstruction.float(), pixels)
    return VQLosses(
        loss=recon + codebook_loss + commitment_weight * commitment,
        recon=recon,
        codebook=codebook_loss,
        commitment=commitment,
        codes=codes.flatten(1),
        latents=z.detach().flatten(0, 2),
        reconstruction=reconstruction,
    )


def code_usage(codes: torch.Tensor, num_codes: int) -> torch.Tensor:
    """How often each code occurs in `codes` (any shape): (num_codes,) float counts, computed without a host sync."""
    flat = codes.flatten()
    return torch.zeros(num_codes, device=flat.device).index_add_(0, flat, torch.ones_like(flat, dtype=torch.float))


@torch.no_grad()
def restart_dead_codes(
    weight: torch.Tensor, usage: torch.Tensor, candidates: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Move every unused code onto a random encoder output, in place; returns how many moved (a 0-d tensor).

    A code that no latent picks gets no gradient and stays dead forever; restarting it where the latents are
    is the usual cure for codebook collapse (e.g. https://arxiv.org/abs/2005.00341, section 2.4). Only the
    direction matters (codes are L2-normalised), so a restarted code gets the live codes' mean norm.

    Args:
        weight: (K, D) the codebook parameter.
        usage: (K,) how often each code was picked (over all processes); 0 = dead.
        candidates: (M, D) unit-norm encoder outputs, the same on every process.
        generator: a CPU generator: the same picks on every process and in a resumed run.
    """
    dead = usage == 0  # (K,)
    picks = torch.randint(0, candidates.shape[0], (weight.shape[0],), generator=generator).to(weight.device)
    live_norm = (weight.norm(dim=-1) * ~dead).sum() / (~dead).sum().clamp(min=1)
    replacement = candidates[picks].to(weight.dtype) * live_norm  # (K, D)
    weight.copy_(torch.where(dead[:, None], replacement, weight))
    return dead.sum()


class VQObjective(nn.Module):
    """The VQ as one module whose forward returns the losses: what `accelerator.prepare` wraps (DDP needs every
    trainable computation inside one forward)."""

    def __init__(self, vq: JanusVQVAE, commitment_weight: float) -> None:
        super().__init__()
        self.vq = vq
        self.commitment_weight = commitment_weight
        # The latest forward's codes (B, h*w) and latents (B*h*w, D), kept for dead-code restarts.
        self.last_codes: torch.Tensor | None = None
        self.last_latents: torch.Tensor | None = None

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:  # pixels: (B, 3, H, W) normalised
        out = vq_losses(self.vq, pixels, self.commitment_weight)
        self.last_codes, self.last_latents = out.codes, out.latents
        used = (code_usage(out.codes, self.vq.quantize.embedding.num_embeddings) > 0).sum()
        # codebook and commitment losses have the same value (they differ in where the gradient goes): log one
        return {"loss": out.loss, "recon": out.recon, "code_distance": out.codebook, "codes_used": used}

    def restart_dead_codes(self, reduce: Callable, broadcast: Callable, seed: int) -> torch.Tensor:
        """`restart_dead_codes` on the latest batch of every process: codes unused by all of them are moved onto
        latents of process 0. `reduce(t)` sums over processes; `broadcast(t)` sends process 0's tensor to all."""
        if self.last_codes is None or self.last_latents is None:
            raise RuntimeError("restart_dead_codes needs a forward pass first")
        weight = self.vq.quantize.embedding.weight
        usage = reduce(code_usage(self.last_codes, weight.shape[0]))
        candidates = broadcast(self.last_latents.contiguous())
        return restart_dead_codes(weight, usage, candidates, torch.Generator().manual_seed(seed))


# ---- data ----


def sample_scene(rng: random.Random) -> Scene:
    """A random scene with 1..4 objects, equally likely: the tokenizer must cope with every scene of the world."""
    return random_scene(rng, n_objects=rng.randint(1, MAX_OBJECTS))


def scene_pixels(scenes: Sequence[Scene], mean: Sequence[float], std: Sequence[float], size: int = 32) -> torch.Tensor:
    """Normalised pixels (B, 3, size, size) of rendered scenes: ``(x / 255 - mean) / std``.

    The same values as the Janus image processor gives for the rendered PIL images (renders are already at the
    model's size, so its resize is the identity), without a PIL round trip per image.
    """
    arrays = np.stack([render_array(s, size) for s in scenes])  # (B, H, W, 3) uint8
    pixels = torch.from_numpy(arrays).permute(0, 3, 1, 2).float() / 255.0
    mean_t = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    std_t = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return (pixels - mean_t) / std_t


class VQBatches(torch.utils.data.Dataset):
    """Batch of step `s`: {"pixels": normalised pixels of `batch_size` random scenes}, a pure function of
    (seed, s, rank).

    A map-style dataset indexed by step, so a resumed run sees exactly the batches of an uninterrupted one, and
    DataLoader workers build batches in parallel.
    """

    def __init__(self, seed: int, rank: int, batch_size: int, mean: Sequence[float], std: Sequence[float], size: int):
        self.seed, self.rank, self.batch_size = seed, rank, batch_size
        self.mean, self.std, self.size = tuple(mean), tuple(std), size

    def __len__(self) -> int:  # steps are indexed freely; the sampler says which
        return 2**62

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        rng = random.Random(f"vq-{self.seed}-{step}-{self.rank}")
        scenes = [sample_scene(rng) for _ in range(self.batch_size)]
        return {"pixels": scene_pixels(scenes, self.mean, self.std, self.size)}


# ---- the oracle measure ----


@dataclass
class ReconstructionReport:
    """Oracle round-trip result: the exact rate and, per scene, what the oracle read back (None = unreadable)."""

    exact_rate: float
    scenes: list[Scene]
    readings: list[Scene | None]


@torch.no_grad()
def reconstruction_exact_rate(umm: JanusUMM, scenes: Sequence[Scene], batch_size: int = 256) -> ReconstructionReport:
    """Encode -> decode each rendered scene with the UMM's tokenizer; the fraction the oracle reads back exactly."""
    readings: list[Scene | None] = []
    for start in range(0, len(scenes), batch_size):
        chunk = scenes[start : start + batch_size]
        decoded = umm.decode_tokens(umm.encode_images([render(s, umm.image_size) for s in chunk]))
        readings += [parse_image(img) for img in decoded]
    exact = sum(r == s for r, s in zip(readings, scenes))
    return ReconstructionReport(exact / max(1, len(scenes)), list(scenes), readings)


def eval_scenes(seed: int, n: int) -> list[Scene]:
    """`n` scenes for the tokenizer's evaluation, from a stream no training batch draws from."""
    rng = random.Random(f"vq-eval-{seed}")
    return [sample_scene(rng) for _ in range(n)]
