"""Fast batched image rollouts for the ``janus`` backend: a static KV cache, both CFG rows in one batch, and each
decode step replayed as a captured CUDA graph.

transformers' ``generate(generation_mode="image")`` spends ~20 ms per decode step launching kernels from Python,
whatever the batch (../shared/bench/: 5.4 images/s at Janus-Pro-1B shape, batch 64, on an H200). This engine does
the same computation with the per-step work captured once:

- **Prefill**: one forward of the prompts (conditional and unconditional rows in one batch) through transformers'
  own language model, exactly as the reference loop (`JanusUMM.sample_image_tokens`) does; its keys and values are
  copied into a preallocated cache of prompt + N positions.
- **Decode**: each step runs transformers' own decoder layers (so LoRA layers, the attention implementation and
  the numerics are theirs) on one token per row, with a cache object whose ``update`` writes the step's keys and
  values in place at a device-side index and returns the first ``length`` positions. ``length`` is the current
  length rounded up to a bucket (64 positions by default), so attention reads about what it needs rather than the
  whole cache; there is one graph per bucket (10 for 576 tokens), all in one memory pool.
- **Sampling inside the graph**: Janus's CFG rule, the log-softmax (each sampled token's log-prob is returned, for
  RL), and the reference loop's own inverse-CDF draw (`seer.models.janus.sample_tokens`) fed by per-sample uniforms
  drawn before the loop from each sample's own ``torch.Generator`` (`seer.models.janus.seeded_uniforms`). We chose
  uniforms over precomputed Gumbel noise because they are the reference loop's draws: with the same seeds both
  engines draw the same tokens (up to floating-point rounding), and sample i depends only on its prompt and seed.

On a CPU, or with ``cuda_graphs=False``, the same step runs eagerly; the CPU tests check that path against
transformers' ``generate`` and the reference loop, and the ``-m gpu`` test checks the graphs against it.

`StaticTextRollout` is the same machinery for text answers (`JanusUMM.generate_text` on a GPU: the judge's answers
in RLMT, the evaluations): the prefill is the model's multimodal forward (images included), each step reads the
language-model head and the text embeddings instead of the image ones, finished rows idle on padding, and the loop
stops early once every row has written its end token (checked every ``check_every`` steps). Prompts are left-padded
to a multiple of ``bucket`` so that questions of different lengths share one set of graphs. At Janus-Pro-1B shape
it judges an RLMT step's 128 two-image answers 2.7x faster than the loop (benchmarks/RESULTS.md).

Configurations (Janus-Pro-1B shape, batch 64, bf16, one H200; benchmarks/RESULTS.md has every figure):

- default (the model's SDPA attention, no compilation): 17.9 images/s; the first call of a batch shape, which
  captures the graphs, took 3-9 s;
- ``compile_step=True``: 25.5 images/s; the layer stack is compiled once per batch shape (~30-60 s), worth it
  for an RL run that samples one batch shape hundreds of times;
- ``attention="eager"``: bit-reproducible on the GPU (two calls with the same seeds give the same tokens; SDPA's
  masked bf16 kernel does not), at 7-13% less throughput (23.1 images/s with ``compile_step=True``).

A captured graph bakes in what Python decided while it was captured: shapes, guidance scale, temperature, the
adapter state (which LoRA adapter is active, or none) and the addresses of the weights. All of these are part of
the key of the captured decoder, which is kept for the last key only (its KV cache is ~15 GB at Janus-Pro-1B shape,
batch 64); `release()` frees it.

    engine = StaticImageRollout(umm.janus)
    out = engine.sample(input_ids, mask, uncond_ids, uniforms=seeded_uniforms(seeds, 576), guidance_scale=5.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from transformers import DynamicCache, JanusForConditionalGeneration

from seer.errors import SeerError
from seer.models.base import position_ids
from seer.models.janus import sample_tokens


@dataclass
class Rollout:
    """Image tokens drawn by `StaticImageRollout.sample`.

    Attributes:
        tokens: (B, N) image token ids.
        logprobs: (B, N) float32 log-probability of each token under the distribution it was drawn from: the
            guided logits at ``temperature`` (at temperature 1 for greedy decoding).
    """

    tokens: torch.Tensor
    logprobs: torch.Tensor


class StaticKVCache:
    """Preallocated keys and values, (rows, heads, max_len, head_dim) per layer, behind the ``cache`` interface that
    transformers' attention layers call (``update``).

    ``update`` writes the step's keys and values at ``write_index``, a device tensor so that a captured graph reads
    the current position, and returns the first ``length`` positions (a Python int, fixed for each graph).
    """

    def __init__(
        self, layers: int, rows: int, heads: int, max_len: int, head_dim: int, dtype: torch.dtype, device: torch.device
    ) -> None:
        shape = (rows, heads, max_len, head_dim)
        # Zeros, not empty: masked positions still meet the query (0 * NaN garbage would poison the softmax).
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
        self.write_index = torch.zeros(1, dtype=torch.long, device=device)
        self.length = max_len

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store one step's (rows, heads, 1, head_dim) keys/values; return the cache's first ``length`` positions."""
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys.index_copy_(2, self.write_index, key_states)
        values.index_copy_(2, self.write_index, value_states)
        return keys[:, :, : self.length], values[:, :, : self.length]


@dataclass
class _Decoder:
    """Every buffer one (batch, prompt length, settings) configuration reads and writes, and its captured graphs."""

    key: tuple
    prompt_len: int
    guided: bool
    guidance_scale: float
    sampling: bool
    temperature: float
    cache: StaticKVCache
    mask: torch.Tensor  # (R, 1, 1, max_len) attention mask in the format of the attention implementation
    allow: bool | float  # the mask value that makes a position visible
    embeds: torch.Tensor  # (R, 1, H) the embedding of the last drawn token: the next step's input
    positions: torch.Tensor  # (R, 1) long, the next step's position ids
    step: torch.Tensor  # (1,) long, the index of the token the next step draws
    uniforms: torch.Tensor  # (B, N) float32; zeros when greedy
    tokens: torch.Tensor  # (B, N) long
    logprobs: torch.Tensor  # (B, N) float32
    lengths: list[int]  # the attention length of each decode step, step 1..N-1
    finished: torch.Tensor | None = None  # (B,) bool, text only: the row has written its end token
    graphs: dict[int, torch.cuda.CUDAGraph] = field(default_factory=dict)  # by attention length
    pool: Any = None  # the graphs' memory pool


def bucket_lengths(prompt_len: int, num_tokens: int, bucket: int) -> list[int]:
    """Attention length of decode steps 1..N-1: the positions step s needs (prompt_len + s), rounded up to a multiple
    of ``bucket`` and capped at prompt_len + N - 1, the most that any step needs."""
    max_len = prompt_len + num_tokens - 1
    return [min(max_len, math.ceil((prompt_len + s) / bucket) * bucket) for s in range(1, num_tokens)]


def adapter_fingerprint(module: torch.nn.Module) -> tuple:
    """What a captured graph baked in of the LoRA state: (adapters disabled, active adapters, training mode)."""
    for layer in module.modules():
        if isinstance(layer, BaseTunerLayer):
            return (layer.disable_adapters, tuple(layer.active_adapters), module.training)
    return (None, (), module.training)


class _StaticDecoding:
    """What both engines share: a static cache behind a mask, one decode step through transformers' own layers, and
    one captured graph per attention length. Subclasses prefill and say what a step emits (`_emit`)."""

    def __init__(
        self,
        janus: JanusForConditionalGeneration,
        *,
        bucket: int = 64,
        cuda_graphs: bool | None = None,
        compile_step: bool = False,
        compile_mode: str | None = None,
        attention: str | None = None,
    ) -> None:
        if bucket < 1:
            raise SeerError(f"bucket: expected >= 1, got {bucket}")
        if attention not in (None, "sdpa", "eager"):
            raise SeerError(f"attention: expected None, 'sdpa' or 'eager', got {attention!r}")
        self.attention = attention
        self.janus = janus
        self.language_model = janus.model.language_model
        self.bucket = bucket
        device = self.language_model.embed_tokens.weight.device
        self.cuda_graphs = device.type == "cuda" if cuda_graphs is None else cuda_graphs
        if self.cuda_graphs and device.type != "cuda":
            raise SeerError(f"cuda_graphs: the model is on {device}, CUDA graphs need a CUDA device")
        # Only the layer stack is compiled: Inductor (torch 2.11, CUDA) fails to generate the sampler's cumsum.
        # dynamic=True: the attention length differs per bucket, and one compilation serves them all.
        layers = self._decode_layers
        self._layers = torch.compile(layers, dynamic=True, mode=compile_mode) if compile_step else layers
        self._decoder: _Decoder | None = None

    def release(self) -> None:
        """Free the cache and the captured graphs (they are rebuilt by the next call)."""
        self._decoder = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _decoder_for(self, extra_key: tuple, batch: int, prompt_len: int, num_tokens: int, *, sampling: bool,
                     temperature: float, **settings: Any) -> _Decoder:  # fmt: skip
        """The decoder of this call: the last one if its key matches, else a new one (the old cache freed first).
        The key is everything a captured graph bakes in: shapes, ``extra_key`` (the engine's own settings), the
        sampling settings, the adapter state and the weights' addresses."""
        key = (batch, prompt_len, num_tokens, *extra_key, sampling, temperature, adapter_fingerprint(self.janus),
               tuple(p.data_ptr() for p in self.janus.parameters()))  # fmt: skip
        if self._decoder is None or self._decoder.key != key:
            self._decoder = None  # free the old cache before allocating the new one
            self._decoder = self._new_decoder(key, batch, prompt_len, num_tokens, sampling=sampling,
                                              temperature=temperature, **settings)  # fmt: skip
        return self._decoder

    def _new_decoder(
        self, key: tuple, batch: int, prompt_len: int, num_tokens: int, *, guided: bool, guidance_scale: float,
        sampling: bool, temperature: float, text: bool,
    ) -> _Decoder:  # fmt: skip
        """Allocate every buffer of one configuration (and capture its graphs on a GPU)."""
        config = self.language_model.config
        weight = self.language_model.embed_tokens.weight
        device, dtype = weight.device, weight.dtype
        rows = 2 * batch if guided else batch
        # One spare position that no step uses: no attention length then equals the buffers' length, which would
        # make torch.compile specialise (and compile a second time) for the last bucket.
        max_len = prompt_len + num_tokens
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        cache = StaticKVCache(
            config.num_hidden_layers, rows, config.num_key_value_heads, max_len, head_dim, dtype, device
        )
        implementation = self.attention or config._attn_implementation
        if implementation == "sdpa":  # a boolean mask, True = visible, as transformers builds it for SDPA
            mask, allow = torch.zeros(rows, 1, 1, max_len, dtype=torch.bool, device=device), True
        elif implementation == "eager":  # an additive mask: 0 = visible, the dtype's minimum = hidden
            mask = torch.full((rows, 1, 1, max_len), torch.finfo(dtype).min, dtype=dtype, device=device)
            allow = 0.0
        else:
            raise SeerError(
                f"attention implementation {implementation!r}: the static rollout supports 'sdpa' and 'eager'; "
                "load the model with attn_implementation='sdpa' or use engine='reference'"
            )
        decoder = _Decoder(
            key=key,
            prompt_len=prompt_len,
            guided=guided,
            guidance_scale=float(guidance_scale),
            sampling=sampling,
            temperature=temperature,
            cache=cache,
            mask=mask,
            allow=allow,
            embeds=torch.zeros(rows, 1, config.hidden_size, dtype=dtype, device=device),
            positions=torch.zeros(rows, 1, dtype=torch.long, device=device),
            step=torch.zeros(1, dtype=torch.long, device=device),
            uniforms=torch.zeros(batch, num_tokens, dtype=torch.float32, device=device),
            tokens=torch.zeros(batch, num_tokens, dtype=torch.long, device=device),
            logprobs=torch.zeros(batch, num_tokens, dtype=torch.float32, device=device),
            lengths=bucket_lengths(prompt_len, num_tokens, self.bucket),
            finished=torch.zeros(batch, dtype=torch.bool, device=device) if text else None,
        )
        if self.cuda_graphs:
            self._capture(decoder)
        return decoder

    def _capture(self, decoder: _Decoder) -> None:
        """Capture one graph per attention length. The warm-up and capture runs scribble on the buffers (finite
        values at positions the mask hides); every call's prefill resets all that a step reads."""
        # A pool per decoder: capturing into a pool whose graphs were all freed trips an allocator assert.
        decoder.pool = torch.cuda.graph_pool_handle()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        for length in sorted(set(decoder.lengths)):
            decoder.cache.length = length
            decoder.step.zero_()
            decoder.cache.write_index.fill_(decoder.prompt_len)
            with torch.cuda.stream(side), self._decode_attention():  # warm-up: lazy initialisation, compilation
                for _ in range(2):
                    self._decode_step(decoder)
                    decoder.step.zero_()
                    decoder.cache.write_index.fill_(decoder.prompt_len)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=decoder.pool), self._decode_attention():
                self._decode_step(decoder)
            decoder.graphs[length] = graph
        torch.cuda.synchronize()

    @contextmanager
    def _decode_attention(self) -> Iterator[None]:
        """Run the body with the decode steps' attention implementation (the layers read it from the config)."""
        config = self.language_model.config
        saved = config._attn_implementation
        if self.attention is not None:
            config._attn_implementation = self.attention
        try:
            yield
        finally:
            config._attn_implementation = saved

    def _load_prefill(self, decoder: _Decoder, cache: DynamicCache, rows_mask: torch.Tensor) -> None:
        """Copy a prefill's keys and values into the static cache and set up step 1."""
        prompt_len = decoder.prompt_len
        for layer, (keys, values) in enumerate(zip(decoder.cache.keys, decoder.cache.values)):
            keys[:, :, :prompt_len].copy_(cache.layers[layer].keys)
            values[:, :, :prompt_len].copy_(cache.layers[layer].values)
        visible = rows_mask.bool()[:, None, None, :]
        hidden_value = torch.finfo(decoder.mask.dtype).min if decoder.mask.dtype.is_floating_point else False
        decoder.mask.fill_(hidden_value)
        decoder.mask[..., :prompt_len].masked_fill_(visible, decoder.allow)
        decoder.positions.copy_(position_ids(rows_mask)[:, -1:] + 1)
        decoder.cache.write_index.fill_(prompt_len)
        decoder.step.zero_()

    def _run_steps(self, decoder: _Decoder, check_every: int | None = None) -> int:
        """Decode steps 1..N-1 (replayed or eager); with ``check_every``, stop once every row is finished. Returns
        the number of tokens written (the prefill's included)."""
        finished = decoder.finished
        for done, length in enumerate(decoder.lengths, start=1):
            if check_every and finished is not None and done % check_every == 0 and bool(finished.all()):
                return done
            if self.cuda_graphs:
                decoder.graphs[length].replay()
            else:
                decoder.cache.length = length
                with self._decode_attention():
                    self._decode_step(decoder)
        return len(decoder.lengths) + 1

    def _decode_step(self, decoder: _Decoder) -> None:
        """One token per row through the decoder layers at ``decoder.cache.length``; then draw the next token."""
        cache = decoder.cache
        decoder.mask.index_fill_(-1, cache.write_index, decoder.allow)  # the position written now becomes visible
        self._emit(decoder, self._layers(decoder))
        cache.write_index.add_(1)
        decoder.positions.add_(1)

    def _decode_layers(self, decoder: _Decoder) -> torch.Tensor:
        """The last hidden state (R, H) of one step: the decoder layers and the final norm on ``decoder.embeds``."""
        lm = self.language_model
        hidden = decoder.embeds
        cos_sin = lm.rotary_emb(hidden, position_ids=decoder.positions)
        mask = decoder.mask[..., : decoder.cache.length]
        for layer in lm.layers[: lm.config.num_hidden_layers]:
            hidden = layer(
                hidden,
                attention_mask=mask,
                position_ids=decoder.positions,
                cache=decoder.cache,
                use_cache=True,
                position_embeddings=cos_sin,
            )
        return lm.norm(hidden)[:, -1]

    def _emit(self, decoder: _Decoder, hidden: torch.Tensor) -> None:
        raise NotImplementedError


class StaticImageRollout(_StaticDecoding):
    """Batched CFG image-token sampler over one ``JanusForConditionalGeneration`` (see the module docstring).

    Args:
        janus: the model; LoRA layers injected in it (PEFT) are used in whatever state they are at each call.
        bucket: attention lengths are rounded up to a multiple of this (fewer graphs vs. fewer masked reads).
        cuda_graphs: capture and replay the decode step (default: when the model is on a CUDA device).
        compile_step: compile the decode step's layer stack with ``torch.compile`` (fused element-wise kernels)
            before capturing; ~30-60 s once per batch shape.
        compile_mode: ``torch.compile``'s ``mode`` (e.g. ``"max-autotune-no-cudagraphs"``: Triton kernels tuned for
            the step's shapes, a longer compilation); None is its default.
        attention: transformers' attention implementation for the decode steps; None is the model's own.
            ``"eager"`` (matmul, softmax, matmul) is deterministic on a GPU, where SDPA's masked bf16 kernel is
            not, at 7-13% less throughput (benchmarks/RESULTS.md).
    """

    def __init__(self, janus: JanusForConditionalGeneration, **kwargs: Any) -> None:
        super().__init__(janus, **kwargs)
        self.num_image_tokens: int = janus.config.vision_config.num_image_tokens

    @torch.no_grad()
    def sample(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        uncond_ids: torch.Tensor | None,
        *,
        uniforms: torch.Tensor | None,
        guidance_scale: float = 5.0,
        temperature: float = 1.0,
    ) -> Rollout:
        """Draw N image tokens per prompt.

        Args:
            input_ids: (B, T) prompt ids ending in BOI, left-padded (`JanusUMM.image_prompt_batch`).
            attention_mask: (B, T) 1 on real tokens.
            uncond_ids: (B, T) the CFG unconditional prompts (`seer.models.janus.unconditional_ids`), or None for
                no guidance (one row per sample; ``guidance_scale`` is then ignored).
            uniforms: (B, N) per-sample uniforms in [0, 1) (`seer.models.janus.seeded_uniforms`); None is greedy.
            guidance_scale: CFG scale g: logits = uncond + g * (cond - uncond).
            temperature: softmax temperature of the draws (ignored when greedy).

        Returns:
            The tokens and their log-probs, in new tensors (the engine's buffers are reused by the next call).
        """
        batch, prompt_len = input_ids.shape
        num_tokens = self.num_image_tokens
        if uniforms is not None and tuple(uniforms.shape) != (batch, num_tokens):
            raise SeerError(f"uniforms: expected shape {(batch, num_tokens)}, got {tuple(uniforms.shape)}")
        guided = uncond_ids is not None
        sampling = uniforms is not None
        temperature = float(temperature) if sampling else 1.0
        decoder = self._decoder_for(
            (guided, float(guidance_scale) if guided else None), batch, prompt_len, num_tokens, guided=guided,
            guidance_scale=guidance_scale, sampling=sampling, temperature=temperature, text=False,
        )  # fmt: skip
        rows_ids = torch.cat([input_ids, uncond_ids]) if guided else input_ids
        rows_mask = torch.cat([attention_mask, attention_mask]) if guided else attention_mask
        if sampling:
            decoder.uniforms.copy_(uniforms)
        self._prefill(decoder, rows_ids, rows_mask)
        self._run_steps(decoder)
        return Rollout(tokens=decoder.tokens.clone(), logprobs=decoder.logprobs.clone())

    # ---- the computation ----

    def _prefill(self, decoder: _Decoder, rows_ids: torch.Tensor, rows_mask: torch.Tensor) -> None:
        """Run the prompts as the reference loop does, fill the static cache, draw token 0, set up step 1."""
        cache = DynamicCache(config=self.language_model.config)
        output = self.language_model(
            inputs_embeds=self.janus.get_input_embeddings()(rows_ids),
            attention_mask=rows_mask,
            position_ids=position_ids(rows_mask),
            cache=cache,
            use_cache=True,
        )
        self._load_prefill(decoder, cache, rows_mask)
        self._emit(decoder, output.last_hidden_state[:, -1])

    def _emit(self, decoder: _Decoder, hidden: torch.Tensor) -> None:
        """From the last hidden state (R, H): guided logits, the draw, its log-prob, and the next step's input."""
        logits = self.janus.model.generation_head(hidden).float()  # (R, K)
        if decoder.guided:
            cond, uncond = logits.chunk(2)
            logits = uncond + (cond - uncond) * decoder.guidance_scale  # the reference loop's expression, exactly
        uniforms = decoder.uniforms.index_select(1, decoder.step).squeeze(1) if decoder.sampling else None
        token = sample_tokens(logits, uniforms, decoder.temperature)  # (B,)
        logprobs = torch.log_softmax(logits / decoder.temperature, dim=-1)
        decoder.tokens.index_copy_(1, decoder.step, token[:, None])
        decoder.logprobs.index_copy_(1, decoder.step, logprobs.gather(-1, token[:, None]))
        rows = token.repeat(2) if decoder.guided else token  # both CFG rows continue with the drawn token
        decoder.embeds.copy_(self.janus.prepare_embeddings_for_image_generation(rows[:, None]))
        decoder.step.add_(1)


class StaticTextRollout(_StaticDecoding):
    """Batched text answers over one ``JanusForConditionalGeneration``, with or without images in the prompts (see
    the module docstring); `JanusUMM.generate_text`'s loop with a static cache and, on a GPU, captured steps.

    Args:
        janus: the model; LoRA layers injected in it (PEFT) are used in whatever state they are at each call.
        eos, pad: the end token (a row that wrote it is finished) and the token finished rows write.
        check_every: steps between two checks whether every row has finished (each check waits for the GPU).
        **kwargs: as `StaticImageRollout`'s (bucket, cuda_graphs, compile_step, compile_mode, attention).
    """

    def __init__(self, janus: JanusForConditionalGeneration, *, eos: int, pad: int, check_every: int = 8,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(janus, **kwargs)
        if check_every < 1:
            raise SeerError(f"check_every: expected >= 1, got {check_every}")
        self.eos, self.pad, self.check_every = eos, pad, check_every

    @torch.no_grad()
    def sample(
        self,
        batch: dict[str, torch.Tensor],
        *,
        max_new_tokens: int,
        uniforms: torch.Tensor | None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Up to ``max_new_tokens`` tokens per prompt.

        Args:
            batch: the processor's left-padded ``input_ids`` and ``attention_mask`` (B, T), and ``pixel_values`` of
                the prompts' images, if any (`JanusUMM._text_batch`).
            max_new_tokens: the token budget N.
            uniforms: (B, N) per-sample uniforms (`seer.models.janus.seeded_uniforms`); None is greedy.
            temperature: softmax temperature of the draws (ignored when greedy).

        Returns:
            (B, n) token ids, n <= N: the loop stops once every row has written ``eos`` (then later tokens of a row
            are ``pad``), as `JanusUMM.generate_text`'s does, up to ``check_every`` - 1 steps later.
        """
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        size = input_ids.shape[0]
        if uniforms is not None and tuple(uniforms.shape) != (size, max_new_tokens):
            raise SeerError(f"uniforms: expected shape {(size, max_new_tokens)}, got {tuple(uniforms.shape)}")
        # Left-pad to a multiple of the bucket: questions of different lengths then share one decoder.
        extra = -input_ids.shape[1] % self.bucket
        input_ids = torch.nn.functional.pad(input_ids, (extra, 0), value=self.pad)
        attention_mask = torch.nn.functional.pad(attention_mask, (extra, 0), value=0)
        prompt_len = input_ids.shape[1]
        sampling = uniforms is not None
        temperature = float(temperature) if sampling else 1.0
        decoder = self._decoder_for(
            (), size, prompt_len, max_new_tokens, guided=False, guidance_scale=1.0, sampling=sampling,
            temperature=temperature, text=True,
        )  # fmt: skip
        if sampling:
            decoder.uniforms.copy_(uniforms)
        cache = DynamicCache(config=self.language_model.config)
        images = {"pixel_values": batch["pixel_values"]} if "pixel_values" in batch else {}
        output = self.janus(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
            cache=cache, use_cache=True, logits_to_keep=1, **images,
        )  # fmt: skip
        self._load_prefill(decoder, cache, attention_mask)
        assert decoder.finished is not None
        decoder.finished.zero_()
        self._emit_logits(decoder, output.logits[:, -1])
        written = self._run_steps(decoder, self.check_every)
        return decoder.tokens[:, :written].clone()

    def _emit(self, decoder: _Decoder, hidden: torch.Tensor) -> None:
        self._emit_logits(decoder, self.janus.lm_head(hidden))

    def _emit_logits(self, decoder: _Decoder, logits: torch.Tensor) -> None:
        """From the last position's logits (B, V): the draw (``pad`` for finished rows), and the next step's input."""
        assert decoder.finished is not None
        uniforms = decoder.uniforms.index_select(1, decoder.step).squeeze(1) if decoder.sampling else None
        token = sample_tokens(logits, uniforms, decoder.temperature).masked_fill(decoder.finished, self.pad)
        decoder.tokens.index_copy_(1, decoder.step, token[:, None])
        decoder.finished.logical_or_(token == self.eos)
        decoder.embeds.copy_(self.janus.get_input_embeddings()(token[:, None]))
        decoder.step.add_(1)
