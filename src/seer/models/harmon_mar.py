"""Harmon's visual transformer: MAR's masked encoder/decoder (arXiv 2406.11838), ported for the ``harmon`` backend.

One encoder serves both directions in Harmon: for understanding it encodes all tokens of an image (nothing masked);
for generation it encodes the tokens sampled so far, the language model refines them, and the decoder predicts a
condition for every still-masked token, from which the diffusion head (`seer.models.harmon_diffusion`) samples it.
``buffer_size`` learned "buffer" tokens (filled with ``fake_latent``) precede the image tokens in both transformers.

Parameter names and shapes are those of wusize/Harmon's ``MAR`` (``mar.*`` in its checkpoints), including the
ImageNet ``class_emb`` that Harmon never uses. The position tables are learned at the configured ``img_size`` (256 in
Harmon) and resized bilinearly to the grid of the image at hand (32x32 at 512 px), as the reference does.

Departures from the reference (github.com/wusize/Harmon ``src/models/mar/mar.py``): the transformer blocks are ours
(timm's ``Block`` layout and names, attention through ``scaled_dot_product_attention``), masked tokens are gathered
and scattered without in-place indexing, and the ImageNet training/sampling loops are left out.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seer.models.harmon_diffusion import DiffLoss, interpolate_grid


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (timm's ``Attention``; no masking)."""

    def __init__(self, dim: int, num_heads: int, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))


class Mlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout (timm's ``Mlp``)."""

    def __init__(self, dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block (timm's ``Block`` without layer scale or drop path)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, attn_drop, proj_drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MAR(nn.Module):
    """MAR encoder + decoder + diffusion head, with Harmon's fields (see the module docstring)."""

    def __init__(
        self,
        *,
        img_size: int = 256,
        vae_stride: int = 16,
        patch_size: int = 1,
        vae_embed_dim: int = 16,
        encoder_embed_dim: int = 1280,
        encoder_depth: int = 20,
        encoder_num_heads: int = 16,
        decoder_embed_dim: int = 1280,
        decoder_depth: int = 20,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        class_num: int = 1000,
        attn_dropout: float = 0.1,
        proj_dropout: float = 0.1,
        buffer_size: int = 64,
        diffloss_d: int = 12,
        diffloss_w: int = 1536,
        num_sampling_steps: int = 100,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.seq_h = self.seq_w = img_size // vae_stride // patch_size
        self.seq_len = self.seq_h * self.seq_w
        self.token_embed_dim = vae_embed_dim * patch_size**2
        self.buffer_size = buffer_size
        self.encoder_embed_dim = encoder_embed_dim
        self.class_emb = nn.Embedding(class_num, encoder_embed_dim)  # unused by Harmon; kept for its checkpoints
        self.fake_latent = nn.Parameter(torch.zeros(1, encoder_embed_dim))
        self.z_proj = nn.Linear(self.token_embed_dim, encoder_embed_dim)
        self.z_proj_ln = nn.LayerNorm(encoder_embed_dim, eps=1e-6)
        self.encoder_pos_embed_learned = nn.Parameter(torch.zeros(1, self.seq_len + buffer_size, encoder_embed_dim))
        self.encoder_blocks = nn.ModuleList(
            Block(encoder_embed_dim, encoder_num_heads, mlp_ratio, attn_dropout, proj_dropout)
            for _ in range(encoder_depth)
        )
        self.encoder_norm = nn.LayerNorm(encoder_embed_dim, eps=1e-6)
        self.decoder_embed = nn.Linear(encoder_embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed_learned = nn.Parameter(torch.zeros(1, self.seq_len + buffer_size, decoder_embed_dim))
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, attn_dropout, proj_dropout)
            for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        self.diffusion_pos_embed_learned = nn.Parameter(torch.zeros(1, self.seq_len, decoder_embed_dim))
        self.diffloss = DiffLoss(self.token_embed_dim, decoder_embed_dim, diffloss_d, diffloss_w, num_sampling_steps)

    def _positions(self, table: torch.Tensor, size: tuple[int, int], buffer: bool = True) -> torch.Tensor:
        """A learned table resized to a ``size`` grid; the buffer rows (first ``buffer_size``) are kept as they are."""
        grid = (self.seq_h, self.seq_w)
        if not buffer:
            return interpolate_grid(table, grid, size)
        buffer_rows, image_rows = table.split([self.buffer_size, self.seq_len], dim=1)
        return torch.cat([buffer_rows, interpolate_grid(image_rows, grid, size)], dim=1)

    def forward_mae_encoder(self, x: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Encode the unmasked tokens of latents ``x`` (B, h*w, C): (B, buffer + unmasked, D), buffers first.

        ``mask`` (B, h*w) is 1 on masked tokens, which are dropped (every row must mask as many tokens). The buffer
        positions hold ``fake_latent``, Harmon's "no class" embedding.
        """
        tokens = self.z_proj(x.to(self.z_proj.weight.dtype))  # (B, L, D)
        b, _, d = tokens.shape
        buffer = self.fake_latent.to(tokens.dtype).expand(b, self.buffer_size, d)
        tokens = torch.cat([buffer, tokens], dim=1) + self._positions(self.encoder_pos_embed_learned, size)
        tokens = self.z_proj_ln(tokens)
        keep = torch.cat([mask.new_zeros(b, self.buffer_size), mask], dim=1) == 0
        tokens = tokens[keep].reshape(b, -1, d)
        for block in self.encoder_blocks:
            tokens = block(tokens)
        return self.encoder_norm(tokens)

    def forward_mae_decoder(self, x: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Diffusion conditions (B, h*w, D_dec) for every token, from encoded tokens (B, buffer + unmasked, D)."""
        x = self.decoder_embed(x)
        b, d = x.shape[0], x.shape[-1]
        keep = torch.cat([mask.new_zeros(b, self.buffer_size), mask], dim=1) == 0  # (B, buffer + L)
        padded = self.mask_token.to(x.dtype).expand(b, keep.shape[1], d).masked_scatter(keep[..., None], x)
        h = padded + self._positions(self.decoder_pos_embed_learned, size)
        for block in self.decoder_blocks:
            h = block(h)
        h = self.decoder_norm(h)[:, self.buffer_size :]
        return h + self._positions(self.diffusion_pos_embed_learned, size, buffer=False)


def next_mask(orders: torch.Tensor, num_masked: int) -> torch.Tensor:
    """(B, L) bool: the first ``num_masked`` positions of each row's generation order stay masked."""
    mask = torch.zeros(orders.shape, dtype=torch.bool, device=orders.device)
    return mask.scatter(1, orders[:, :num_masked], True)


def masked_count(step: int, num_iter: int, seq_len: int, still_masked: int) -> int:
    """Tokens left masked after ``step`` (MaskGIT's cosine schedule): at least 1, at most ``still_masked - 1``."""
    planned = int(np.floor(seq_len * np.cos(math.pi / 2.0 * (step + 1) / num_iter)))
    return max(1, min(still_masked - 1, planned))
