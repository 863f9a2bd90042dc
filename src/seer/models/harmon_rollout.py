"""Fast Harmon image rollouts on a GPU: the diffusion head's denoising chain replayed as captured CUDA graphs.

MAR's sampler (`HarmonUMM.sample_latents`) runs, at each of its 64 iterations, the diffusion head's 100-step DDPM
chain on the tokens due at that iteration: per step a dozen small AdaLN MLP blocks and the schedule's arithmetic on a
few hundred rows. Launched from Python that is ~10^5 small kernels per iteration, and the GPU mostly waits for the
host (benchmarks/RESULTS.md: 0.10 images/s at Harmon-1.5B shape, batch 4). This engine captures the whole chain
once per row count and replays it:

- **Rows are padded** to a multiple of ``bucket`` (the number of tokens due changes at every iteration of the
  cosine schedule), so a handful of graphs serve a whole image. The denoiser treats rows independently (no batch
  statistics, no attention), so padded rows (zero condition, zero noise) change nothing in the real ones.
- **The same code**: the graph is a capture of `DiffLoss.chain`, the chain the eager path runs; the guidance scale
  and the temperature are device scalars it reads at replay (a linear CFG schedule changes the scale per
  iteration), the schedule's constants are baked in (fixed per model).
- **Exactness**: rows are computed by the same kernels on the same numbers except for the matrix products' batch
  size, so the latents agree to floating-point rounding (`tests/models/test_harmon_rollout.py`; the ``-m gpu`` test
  checks the graphs against the eager chain).

The LLM and MAR decoder passes of each iteration stay as they are (large matrix products, not launch-bound). At
Harmon-1.5B shape (bf16, one H200) images come 2.46x faster at batch 4 and 1.83x at batch 16, with latents identical
to the eager chain's (benchmarks/RESULTS.md).

    umm.diffusion_sampler = GraphedDiffusionSampler(umm.harmon.mar.diffloss)   # the default on CUDA
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from seer.errors import SeerError
from seer.models.harmon_diffusion import DiffLoss


@dataclass
class _Chain:
    """The buffers one (padded rows, guided, dtypes) configuration reads and writes, and its captured graph."""

    z: torch.Tensor  # (P, Z) or (2P, Z) = [cond padded; uncond padded]
    noise: torch.Tensor  # (P, T + 1, C) float32
    temperature: torch.Tensor  # () float32
    cfg: torch.Tensor  # () float32
    out: torch.Tensor | None = None  # (P, C) float32, written by the graph
    graph: torch.cuda.CUDAGraph | None = None


def padded_rows(rows: int, bucket: int) -> int:
    """``rows`` rounded up to a multiple of ``bucket`` (at least one bucket)."""
    return max(1, math.ceil(rows / bucket)) * bucket


class GraphedDiffusionSampler:
    """`DiffLoss.sample` with rows padded to buckets and, on CUDA, the chain replayed from a captured graph.

    Args:
        diffloss: the model's diffusion head (``umm.harmon.mar.diffloss``); its weights must stay where they are.
        bucket: rows are padded to a multiple of this (fewer graphs vs. fewer wasted rows).
        cuda_graphs: capture and replay (default: when the head is on a CUDA device); without them the padded
            chain runs eagerly (the CPU tests' path).
    """

    def __init__(self, diffloss: DiffLoss, *, bucket: int = 64, cuda_graphs: bool | None = None) -> None:
        if bucket < 1:
            raise SeerError(f"bucket: expected >= 1, got {bucket}")
        self.diffloss = diffloss
        self.bucket = bucket
        device = next(diffloss.parameters()).device
        self.cuda_graphs = device.type == "cuda" if cuda_graphs is None else cuda_graphs
        if self.cuda_graphs and device.type != "cuda":
            raise SeerError(f"cuda_graphs: the diffusion head is on {device}, CUDA graphs need a CUDA device")
        self._chains: dict[tuple, _Chain] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.cuda_graphs else None

    def release(self) -> None:
        """Free the buffers and graphs (rebuilt on demand)."""
        self._chains.clear()
        # A fresh pool: capturing into a pool whose graphs were all freed trips an allocator assert.
        self._pool = torch.cuda.graph_pool_handle() if self.cuda_graphs else None

    @torch.no_grad()
    def sample(self, z: torch.Tensor, noise: torch.Tensor, temperature: float = 1.0, cfg: float = 1.0) -> torch.Tensor:
        """As `DiffLoss.sample`: token latents (N, C) for conditions ``z`` (N or 2N rows) and noise (N, T + 1, C)."""
        guided = cfg != 1.0
        rows = noise.shape[0]
        if z.shape[0] != (2 * rows if guided else rows):
            raise SeerError(f"z: expected {2 * rows if guided else rows} rows for {rows} samples, got {z.shape[0]}")
        padded = padded_rows(rows, self.bucket)
        key = (padded, guided, z.dtype, tuple(noise.shape[1:]), next(self.diffloss.parameters()).data_ptr())
        chain = self._chains.get(key)
        if chain is None:
            chain = self._chains[key] = self._build(key, z, noise, guided)
        chain.z.zero_()
        chain.noise.zero_()
        if guided:
            chain.z[:rows].copy_(z[:rows])
            chain.z[padded : padded + rows].copy_(z[rows:])
        else:
            chain.z[:rows].copy_(z)
        chain.noise[:rows].copy_(noise)
        chain.temperature.fill_(float(temperature))
        chain.cfg.fill_(float(cfg))
        if chain.graph is not None:
            chain.graph.replay()
            out = chain.out
        else:
            out = self._run(chain, guided)
        assert out is not None
        return out[:rows].clone()

    def _run(self, chain: _Chain, guided: bool) -> torch.Tensor:
        return self.diffloss.chain(chain.z, chain.noise, chain.temperature, chain.cfg, guided=guided)

    def _build(self, key: tuple, z: torch.Tensor, noise: torch.Tensor, guided: bool) -> _Chain:
        padded, device = key[0], z.device
        chain = _Chain(
            z=torch.zeros((2 * padded if guided else padded, z.shape[1]), dtype=z.dtype, device=device),
            noise=torch.zeros((padded, *noise.shape[1:]), dtype=torch.float32, device=device),
            temperature=torch.ones((), dtype=torch.float32, device=device),
            cfg=torch.ones((), dtype=torch.float32, device=device),
        )
        if self.cuda_graphs:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up: lazy initialisation (cuBLAS handles, workspaces)
                self._run(chain, guided)
            torch.cuda.current_stream().wait_stream(side)
            chain.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(chain.graph, pool=self._pool):
                chain.out = self._run(chain, guided)
            torch.cuda.synchronize()
        return chain
