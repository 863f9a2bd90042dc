"""Image rollout throughput: our static-cache engine (`seer.models.janus_rollout`) against transformers'
``generate(generation_mode="image")``, in the same run on one CUDA GPU, at Janus-Pro shapes with random weights.

    python benchmarks/rollout.py --shapes janus-pro-1b:64,16,1 janus-pro-7b:16,1 --out rollout.json

(about 12 minutes on an H200 with the default engines; benchmarks/RESULTS.md has the figures and commands.)

Workload (as ../shared/bench/anchor_janus_gen.py): prompts of 40 random ids ending in BOI, CFG 5 (both rows in one
batch), full-softmax sampling, 576 image tokens per image, in ``--dtype`` (bf16 by default).

- ``static``: our engine with CUDA graphs, decode attention through the model's own implementation (SDPA).
  Its first call per (shape, batch) captures the graphs and is reported apart (``first_call_s``); the figure is
  the median of ``--repeats`` calls after it, the steady state of an RL loop that samples one batch shape per step.
- ``static-eager``: the same with transformers' eager attention (matmul, softmax, matmul) in the decode steps.
- ``static-compile``, ``static-eager-compile``: the decode step compiled by ``torch.compile`` before capture;
  their first call includes the compilation.
- ``static-compile-autotune``: compiled with ``mode="max-autotune-no-cudagraphs"`` (Triton kernels tuned for the
  step's shapes; a much longer first call).
- ``transformers``: ``generate(..., do_sample=True, top_k=0, guidance_scale=5)`` with ``--baseline-repeats`` timed
  calls, after one warm-up call at the first (shape, batch) of the run (eager code needs no per-shape warm-up).

Bandwidth floor of one batch: every forward pass (N per image) reads the weights it uses once (the decoder layers,
final norm, generation head and aligner; not the text embedding, which image decoding never reads) and the keys
and values of all 2B rows up to the current position. Floor seconds = those bytes / the card's bandwidth, measured
here by a 1 GiB device-to-device copy (bytes read + written). ``floor_fraction`` = floor seconds / measured seconds.
Peak memory is ``torch.cuda.max_memory_allocated`` over the engine's calls, weights included.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time

import torch
import transformers

from seer.models.janus import JanusUMM, seeded_uniforms, unconditional_ids

PROMPT_LEN = 40
GUIDANCE = 5.0
# our engine's variants: StaticImageRollout keyword arguments
VARIANTS = {
    "static": {},
    "static-eager": dict(attention="eager"),
    "static-compile": dict(compile_step=True),
    "static-eager-compile": dict(attention="eager", compile_step=True),
    "static-compile-autotune": dict(compile_step=True, compile_mode="max-autotune-no-cudagraphs"),
}


def measure_bandwidth(device: torch.device, size_bytes: int = 2**30, repeats: int = 10) -> float:
    """Bytes per second of a device-to-device copy, counting bytes read plus bytes written."""
    src = torch.empty(size_bytes, dtype=torch.uint8, device=device).random_()
    dst = torch.empty_like(src)
    dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        dst.copy_(src)
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1000
    return 2 * size_bytes * repeats / seconds


def bytes_read_per_batch(umm: JanusUMM, batch: int, prompt_len: int, tokens: int) -> tuple[int, int]:
    """(weight bytes, KV-cache bytes) that N forward passes of 2B CFG rows must read at least."""
    janus = umm.janus
    lm = janus.model.language_model
    read = [p for name, p in lm.named_parameters() if not name.startswith("embed_tokens")]
    read += list(janus.model.generation_head.parameters()) + list(janus.model.generation_aligner.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in read)
    config = lm.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    element = lm.embed_tokens.weight.element_size()
    per_position = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * element * 2 * batch
    kv_bytes = sum(per_position * (prompt_len + i) for i in range(tokens))
    return weight_bytes * tokens, kv_bytes


def random_prompts(umm: JanusUMM, batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(100, 90000, (batch, PROMPT_LEN), generator=generator)
    ids[:, -1] = umm.tokenizer.boi_token_id
    return ids.to(umm.device), torch.ones_like(ids, device=umm.device)


def timed(fn) -> tuple[float, object]:
    torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start, out


def run_static(umm: JanusUMM, engine, batch: int, repeats: int) -> dict:
    input_ids, mask = random_prompts(umm, batch, seed=batch)
    tok = umm.tokenizer
    uncond = unconditional_ids(input_ids, tok.bos_token_id, tok.boi_token_id, tok.pad_token_id)
    tokens = umm.num_image_tokens
    seeds = list(range(batch))

    def call():
        uniforms = seeded_uniforms(seeds, tokens).to(umm.device)  # per-sample generators, as generate_images does
        return engine.sample(input_ids, mask, uncond, uniforms=uniforms, guidance_scale=GUIDANCE)

    torch.cuda.reset_peak_memory_stats()
    first, out = timed(call)
    times = [timed(call)[0] for _ in range(repeats)]
    again = call()
    return dict(
        first_call_s=round(first, 3),
        seconds=statistics.median(times),
        peak_gib=torch.cuda.max_memory_allocated() / 2**30,
        distinct_images=len({tuple(row.tolist()) for row in out.tokens}),
        token_range_ok=bool(0 <= int(out.tokens.min()) and int(out.tokens.max()) < 16384),
        same_seed_token_agreement=round((again.tokens == out.tokens).float().mean().item(), 4),
    )


def run_transformers(umm: JanusUMM, batch: int, repeats: int, warm_up: bool) -> dict:
    input_ids, mask = random_prompts(umm, batch, seed=batch)
    kwargs = dict(
        input_ids=input_ids,
        attention_mask=mask,
        generation_mode="image",
        do_sample=True,
        top_k=0,
        guidance_scale=GUIDANCE,
    )
    torch.cuda.reset_peak_memory_stats()
    if warm_up:
        umm.janus.generate(**kwargs)
    times = [timed(lambda: umm.janus.generate(**kwargs))[0] for _ in range(repeats)]
    return dict(seconds=statistics.median(times), peak_gib=torch.cuda.max_memory_allocated() / 2**30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["janus-pro-1b:1,16,64", "janus-pro-7b:1,16"],
                        help="SHAPE:BATCH,BATCH,... (shapes of seer.models.janus.SHAPES)")  # fmt: skip
    parser.add_argument("--engines", nargs="+", default=["static", "static-compile", "transformers"],
                        choices=[*VARIANTS, "transformers"])  # fmt: skip
    parser.add_argument("--tokens", type=int, default=None,
                        help="image tokens per image (default: the shape's, 576); fewer for a smoke run")  # fmt: skip
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--buckets", type=int, nargs="+", default=[64],
                        help="attention-length buckets of the static engine (each variant runs at each)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="timed calls of our engine (median)")
    parser.add_argument("--baseline-repeats", type=int, default=1, help="timed calls of transformers' generate")
    parser.add_argument("--out", default=None, help="write all rows to this JSON file")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/rollout.py needs a CUDA GPU")
    from seer.models.janus_rollout import StaticImageRollout

    device = torch.device("cuda")
    bandwidth = measure_bandwidth(device)
    header = dict(
        card=torch.cuda.get_device_name(),
        date=datetime.date.today().isoformat(),
        torch=torch.__version__,
        transformers=transformers.__version__,
        copy_bandwidth_tb_s=round(bandwidth / 1e12, 3),
        dtype=args.dtype,
        guidance_scale=GUIDANCE,
        prompt_len=PROMPT_LEN,
    )
    print(json.dumps(header), flush=True)
    rows = []
    baseline_warm = False

    def save() -> None:
        if args.out:
            with open(args.out, "w") as f:
                json.dump(dict(header=header, rows=rows), f, indent=1)

    for spec in args.shapes:
        shape, batches = spec.split(":")
        umm = JanusUMM.from_shape(shape, seed=0, dtype=getattr(torch, args.dtype), device=device)
        if args.tokens:
            umm.janus.config.vision_config.num_image_tokens = umm.num_image_tokens = args.tokens
        engines = {
            (name, bucket): StaticImageRollout(umm.janus, bucket=bucket, **VARIANTS[name])
            for name in args.engines if name != "transformers" for bucket in args.buckets
        }  # fmt: skip
        tokens = umm.num_image_tokens
        for batch in (int(b) for b in batches.split(",")):
            weight_bytes, kv_bytes = bytes_read_per_batch(umm, batch, PROMPT_LEN, tokens)
            floor_s = (weight_bytes + kv_bytes) / bandwidth
            runs = [(name, bucket) for name in args.engines
                    for bucket in ([None] if name == "transformers" else args.buckets)]  # fmt: skip
            for name, bucket in runs:
                start = time.perf_counter()
                try:
                    if name == "transformers":
                        result = run_transformers(umm, batch, args.baseline_repeats, warm_up=not baseline_warm)
                        baseline_warm = True
                    else:
                        result = run_static(umm, engines[name, bucket], batch, args.repeats)
                        engines[name, bucket].release()
                except Exception as error:  # noqa: BLE001 - one failing row must not lose the others
                    result = dict(error=f"{type(error).__name__}: {error}"[:500])
                row = dict(shape=shape, batch=batch, engine=name, bucket=bucket, tokens=tokens, **result)
                if "seconds" in result:
                    row.update(
                        images_per_s=round(batch / result["seconds"], 3),
                        ms_per_step=round(1000 * result["seconds"] / tokens, 3),
                        floor_s=round(floor_s, 3),
                        floor_images_per_s=round(batch / floor_s, 2),
                        floor_fraction=round(floor_s / result["seconds"], 3),
                        seconds=round(result["seconds"], 3),
                        peak_gib=round(result["peak_gib"], 2),
                    )
                row["wall_s"] = round(time.perf_counter() - start, 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
                save()
        del umm, engines
        torch.cuda.empty_cache()

    print(f"\n{header['card']}, {header['date']}, torch {header['torch']}, transformers {header['transformers']}, "
          f"{args.dtype}, CFG {GUIDANCE}, copy bandwidth {header['copy_bandwidth_tb_s']} TB/s")  # fmt: skip
    print("| shape | batch | engine | bucket | images/s | ms/step | peak GiB | floor images/s | floor fraction |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "seconds" in r:
            cells = [r[k] for k in ("shape", "batch", "engine", "bucket", "images_per_s", "ms_per_step", "peak_gib",
                                    "floor_images_per_s", "floor_fraction")]  # fmt: skip
            print("| " + " | ".join(str(c) for c in cells) + " |")
        else:
            print(f"| {r['shape']} | {r['batch']} | {r['engine']} | {r.get('error')} |")


if __name__ == "__main__":
    main()
