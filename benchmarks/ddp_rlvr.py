"""RLVR throughput on one GPU against N GPUs of one host (DDP through accelerate), in the same run.

Weak scaling, as data-parallel training is used: every process keeps the one-GPU run's share of each step
(`--prompts_per_step` x `num_generations` completions), so N processes train on N times the completions per step.
Throughput = completions per second = completions per step / median step time (steps after `--warmup`; the
median keeps the held-out evaluation steps of the curriculum out of it). Both runs are `seer rlvr` itself, on the
embedded model (or a random-weight real shape, `--model_shape`) with the recipe's settings, pairs drawn by the
literal renderer (the same pairs for both runs, no image generation before the clock). A random-weight model never
samples its end token, so every answer is `--max_completion_length` tokens: the work per step is fixed.

    python benchmarks/ddp_rlvr.py --gpus 2 --steps 14 --out /tmp/ddp      # on a machine with 2 GPUs
    python benchmarks/ddp_rlvr.py --gpus 2 --steps 18 --warmup 4 --model_shape janus-pro-1b \
        --prompts_per_step 4 --max_completion_length 64 --out /tmp/ddp1b     # Janus-Pro-1B shape, bf16

Prints a table and writes `<out>/ddp_rlvr.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def rlvr_argv(args: argparse.Namespace, out: Path, prompts_per_step: int) -> list[str]:
    """`seer rlvr`'s arguments for one of the two runs."""
    return [
        "rlvr", "--config", args.config, "--device", "cuda", "--pair_generator", "renderer",
        "--max_steps", str(args.steps), "--save_steps", str(10 * args.steps), "--prompts_per_step", str(prompts_per_step),
        "--output_dir", str(out), "--overwrite", "true", "--seed", str(args.seed),
        # A random-weight model's rewards are all zero, which the reward-health guard would stop after 10 steps.
        *(["--model_shape", args.model_shape, "--dtype", "bfloat16", "--max_bad_reward_steps", str(args.steps + 1)]
          if args.model_shape else []),
        *(["--max_completion_length", str(args.max_completion_length)] if args.max_completion_length else []),
    ]  # fmt: skip


def step_times(run_dir: Path, warmup: int) -> list[float]:
    """The `step_time` of every logged step after `warmup`."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r["step_time"] for r in rows if "step_time" in r and r["step"] > warmup]


def measure(command: list[str], run_dir: Path, completions: int, warmup: int, env: dict[str, str] | None = None
            ) -> dict[str, float]:  # fmt: skip
    """Run `command` (a `seer rlvr`), then read its step times: completions/s and the median step."""
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, env=env)
    times = step_times(run_dir, warmup)
    median = statistics.median(times)
    return {"completions_per_step": completions, "median_step_s": median, "completions_per_s": completions / median,
            "steps_timed": len(times), "wall_s": time.perf_counter() - start}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpus", type=int, default=2, help="Processes (GPUs) of the DDP run.")
    parser.add_argument("--config", default="recipes/rlvr/shapeworld-tiny.yaml", help="The RLVR recipe.")
    parser.add_argument("--prompts_per_step", type=int, default=4, help="Pairs per step and per process.")
    parser.add_argument("--num_generations", type=int, default=8, help="The recipe's answers per pair.")
    parser.add_argument("--steps", type=int, default=14, help="GRPO steps of each run.")
    parser.add_argument("--warmup", type=int, default=3, help="First steps left out of the timing.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model_shape", default=None,
                        help="A random-weight shape (e.g. janus-pro-1b, in bf16) instead of the embedded model.")
    parser.add_argument("--max_completion_length", type=int, default=None, help="Override the recipe's.")
    parser.add_argument("--threads_per_process", type=int, default=None,
                        help="CPU threads of each DDP process (default: the host's cores / --gpus).")
    parser.add_argument("--out", default="/tmp/ddp_rlvr", help="Where both runs and the JSON go.")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    per_gpu = args.prompts_per_step * args.num_generations

    one = measure([sys.executable, "-m", "seer.cli", *rlvr_argv(args, out / "1gpu", args.prompts_per_step)],
                  out / "1gpu", per_gpu, args.warmup, env={**os.environ, "CUDA_VISIBLE_DEVICES": "0"})  # fmt: skip
    # accelerate launch gives each process one CPU thread unless told otherwise; the one-GPU run has them all.
    threads = args.threads_per_process or max(1, (os.cpu_count() or 1) // args.gpus)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
              "recipes/accelerate/ddp-2gpu.yaml", "--num_processes", str(args.gpus),
              "--num_cpu_threads_per_process", str(threads), "-m", "seer.cli"]  # fmt: skip
    many = measure([*launch, *rlvr_argv(args, out / f"{args.gpus}gpu", args.prompts_per_step * args.gpus)],
                   out / f"{args.gpus}gpu", per_gpu * args.gpus, args.warmup)  # fmt: skip
    speedup = many["completions_per_s"] / one["completions_per_s"]
    result = {"gpus": args.gpus, "one_gpu": one, "ddp": many, "speedup": speedup, "config": args.config,
              "model_shape": args.model_shape, "max_completion_length": args.max_completion_length,
              "threads_per_process": threads}
    (out / "ddp_rlvr.json").write_text(json.dumps(result, indent=1))
    print(f"{'run':<8} {'completions/step':>17} {'median step s':>14} {'completions/s':>14}")
    for name, r in (("1 GPU", one), (f"{args.gpus} GPUs", many)):
        print(f"{name:<8} {r['completions_per_step']:>17} {r['median_step_s']:>14.3f} {r['completions_per_s']:>14.1f}")
    print(f"throughput {args.gpus} GPUs / 1 GPU: {speedup:.2f}x")


if __name__ == "__main__":
    main()
