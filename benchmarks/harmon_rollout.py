"""Harmon image generation on one CUDA GPU: the diffusion head's chain replayed from CUDA graphs
(`seer.models.harmon_rollout`, the default on CUDA) against the eager chain, in the same run, at a Harmon shape with
random weights.

    python benchmarks/harmon_rollout.py --shape harmon-1.5b --batches 4 16 --out harmon_rollout.json

Workload: `HarmonUMM.generate_images` (Harmon's defaults: 512 px, CFG 3.0 on the head's epsilon, temperature 1, 64
MAR iterations, 100-step DDPM head), distinct seeds per image. Per engine and batch: one untimed call (the graphs'
capture; the eager chain's lazy initialisation), then the median of ``--repeats`` timed calls; images/s, peak
memory, and the agreement of the two engines' latents for the same seeds (max |graph - eager| / max |eager|; small
differences in a matrix product's rounding may grow over the 64 iterations, as the tokens feed back).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time

import torch
import transformers

from seer.models.harmon import HarmonUMM
from seer.models.harmon_rollout import GraphedDiffusionSampler


def timed_call(umm: HarmonUMM, prompts: list[str], seeds: list[int]) -> tuple[float, torch.Tensor]:
    torch.cuda.synchronize()
    start = time.perf_counter()
    with umm.no_adapter():
        out = umm.generate_images(prompts, seeds=seeds)
    torch.cuda.synchronize()
    return time.perf_counter() - start, out.token_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="harmon-1.5b", help="a shape of seer.models.harmon.SHAPES")
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per engine and batch (median)")
    parser.add_argument("--bucket", type=int, default=64, help="row bucket of the graph engine")
    parser.add_argument("--iterations", type=int, default=None, help="MAR iterations (default: the model's, 64)")
    parser.add_argument("--out", default=None, help="write the rows to this JSON file")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/harmon_rollout.py needs a CUDA GPU")
    umm = HarmonUMM.from_shape(args.shape, seed=0, dtype=torch.bfloat16, device="cuda")
    if args.iterations:
        umm.num_iterations = args.iterations
    diffloss = umm.harmon.mar.diffloss
    engines = {"eager": diffloss, "graphs": GraphedDiffusionSampler(diffloss, bucket=args.bucket)}
    header = dict(card=torch.cuda.get_device_name(), date=datetime.date.today().isoformat(), torch=torch.__version__,
                  transformers=transformers.__version__, shape=args.shape, image_size=umm.image_size,
                  iterations=umm.num_iterations, guidance_scale=umm.default_guidance_scale,
                  bucket=args.bucket)  # fmt: skip
    print(json.dumps(header), flush=True)
    rows = []
    for batch in args.batches:
        prompts = [f"a red circle number {i}" for i in range(batch)]
        seeds = list(range(batch))
        latents = {}
        for name, sampler in engines.items():
            umm.diffusion_sampler = sampler
            torch.cuda.reset_peak_memory_stats()
            first, _ = timed_call(umm, prompts, seeds)
            times = []
            for _ in range(args.repeats):
                seconds, latents[name] = timed_call(umm, prompts, seeds)
                times.append(seconds)
            median = statistics.median(times)
            peak = torch.cuda.max_memory_allocated() / 2**30
            row = dict(batch=batch, engine=name, first_call_s=round(first, 2), seconds=round(median, 3),
                       images_per_s=round(batch / median, 3), peak_gib=round(peak, 2))  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
        eager, graphs = latents["eager"].float(), latents["graphs"].float()
        rows[-1]["speedup"] = round(rows[-2]["seconds"] / rows[-1]["seconds"], 2)
        rows[-1]["max_rel_diff_vs_eager"] = float((graphs - eager).abs().max() / eager.abs().max())
        print(json.dumps(rows[-1]), flush=True)
        engines["graphs"].release()
        if args.out:
            with open(args.out, "w") as f:
                json.dump(dict(header=header, rows=rows), f, indent=1)
    print("| batch | engine | images/s | s per batch | first call s | peak GiB | speedup |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['engine']} | {r['images_per_s']} | {r['seconds']} | {r['first_call_s']} | "
              f"{r['peak_gib']} | {r.get('speedup', '')} |")  # fmt: skip


if __name__ == "__main__":
    main()
