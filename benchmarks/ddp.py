"""RLVR or RLMT throughput on one GPU against N GPUs of one host (DDP through accelerate), in the same run.

Weak scaling, as data-parallel training is used: every process keeps the one-GPU run's share of each step
(`--prompts_per_step` items x their `num_generations` answers), so N processes train on N times the completions per
step. Throughput = completions per second = completions per step / median step time (steps after `--warmup`; the
median keeps RLVR's held-out evaluation steps out of it).

- ``--stage rlvr``: `seer rlvr` itself, on the embedded model (or a random-weight real shape, `--model_shape`) with
  the recipe's settings, pairs drawn by the literal renderer (the same pairs for both runs, no image generation
  before the clock). A random-weight model never samples its end token, so every answer is
  `--max_completion_length` tokens: the work per step is fixed.
- ``--stage rlmt``: `benchmarks/rlmt_step.py` (`seer rlmt`'s trainer and reward at a random-weight shape, every
  sampled reprompt replaced by a distinct well-formed descriptor, so that each is rendered and judged): policy
  generation, the frozen generator's images, the judge's two-order answers and the update, per process.

    python benchmarks/ddp.py --gpus 2 --steps 14 --out /tmp/ddp      # on a machine with 2 GPUs
    python benchmarks/ddp.py --gpus 2 --steps 18 --warmup 4 --model_shape janus-pro-1b \\
        --prompts_per_step 4 --max_completion_length 64 --out /tmp/ddp1b     # Janus-Pro-1B shape, bf16
    python benchmarks/ddp.py --stage rlmt --gpus 2 --steps 5 --warmup 1 --model_shape janus-pro-1b \\
        --prompts_per_step 4 --max_completion_length 64 --judge_tokens 64 --out /tmp/ddp_rlmt

Prints a table and writes `<out>/ddp_<stage>.json`.
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

import yaml

ROOT = Path(__file__).resolve().parent.parent


def rlvr_argv(args: argparse.Namespace, out: Path, prompts_per_step: int) -> list[str]:
    """`seer rlvr`'s arguments for one of the two runs."""
    return [
        "-m", "seer.cli", "rlvr", "--config", args.config, "--device", "cuda", "--pair_generator", "renderer",
        "--max_steps", str(args.steps), "--save_steps", str(10 * args.steps),
        "--prompts_per_step", str(prompts_per_step),
        "--output_dir", str(out), "--overwrite", "true", "--seed", str(args.seed),
        # A random-weight model's rewards are all zero, which the reward-health guard would stop after 10 steps.
        *(["--model_shape", args.model_shape, "--dtype", "bfloat16", "--max_bad_reward_steps", str(args.steps + 1)]
          if args.model_shape else []),
        *(["--max_completion_length", str(args.max_completion_length)] if args.max_completion_length else []),
    ]  # fmt: skip


def rlmt_argv(args: argparse.Namespace, out: Path) -> list[str]:
    """`benchmarks/rlmt_step.py`'s arguments (each process's share; the script scales it by the processes)."""
    shape = args.model_shape or "shapeworld-tiny"
    return [
        str(ROOT / "benchmarks" / "rlmt_step.py"), "--shape", shape, "--device", "cuda",
        "--dtype", "bfloat16" if args.model_shape else "float32", "--prompts", str(args.prompts_per_step),
        "--warmup", str(args.warmup), "--steps", str(args.steps - args.warmup), "--seed", str(args.seed),
        "--out", str(out / "rlmt_step.json"),
        *(["--policy_tokens", str(args.max_completion_length)] if args.max_completion_length else []),
        *(["--judge_tokens", str(args.judge_tokens)] if args.judge_tokens else []),
    ]  # fmt: skip


def rlvr_step_times(run_dir: Path, warmup: int) -> tuple[list[float], int]:
    """The `step_time` of every logged step of a `seer rlvr` run after `warmup`, and its completions per step."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    times = [r["step_time"] for r in rows if "step_time" in r and r["step"] > warmup]
    return times, config["prompts_per_step"] * config["num_generations"]


def rlmt_step_times(run_dir: Path) -> tuple[list[float], int]:
    """The timed steps of a `rlmt_step.py` run and its completions per step (all processes)."""
    figures = json.loads((run_dir / "rlmt_step.json").read_text())
    return figures["step_seconds_each"], figures["completions_per_step"]


def measure(args: argparse.Namespace, prefix: list[str], run_dir: Path, processes: int,
            env: dict[str, str] | None = None) -> dict[str, float]:  # fmt: skip
    """Run one of the two runs (`prefix` starts the Python program), then read its step times."""
    start = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    if args.stage == "rlvr":
        subprocess.run([*prefix, *rlvr_argv(args, run_dir, args.prompts_per_step * processes)], cwd=ROOT, check=True,
                       env=env)  # fmt: skip
        times, completions = rlvr_step_times(run_dir, args.warmup)
    else:
        subprocess.run([*prefix, *rlmt_argv(args, run_dir)], cwd=ROOT, check=True, env=env)
        times, completions = rlmt_step_times(run_dir)
    median = statistics.median(times)
    return {"completions_per_step": completions, "median_step_s": median, "completions_per_s": completions / median,
            "steps_timed": len(times), "wall_s": time.perf_counter() - start}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", choices=["rlvr", "rlmt"], default="rlvr", help="What to run on 1 and N GPUs.")
    parser.add_argument("--gpus", type=int, default=2, help="Processes (GPUs) of the DDP run.")
    parser.add_argument("--config", default="recipes/rlvr/shapeworld-tiny.yaml", help="The RLVR recipe (rlvr).")
    parser.add_argument("--prompts_per_step", type=int, default=4, help="Pairs (rlvr) or items (rlmt) per step and "
                                                                        "per process.")  # fmt: skip
    parser.add_argument("--steps", type=int, default=14, help="Steps of each run, warm-up included.")
    parser.add_argument("--warmup", type=int, default=3, help="First steps left out of the timing.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model_shape", default=None,
                        help="A random-weight shape (e.g. janus-pro-1b, in bf16) instead of the embedded model (rlvr) "
                             "or the tiny shape (rlmt).")  # fmt: skip
    parser.add_argument("--max_completion_length", type=int, default=None,
                        help="Override the recipe's (rlvr: answers; rlmt: reprompts).")  # fmt: skip
    parser.add_argument("--judge_tokens", type=int, default=None, help="rlmt: the judge's token budget.")
    parser.add_argument("--threads_per_process", type=int, default=None,
                        help="CPU threads of each DDP process (default: the host's cores / --gpus).")
    parser.add_argument("--out", default="/tmp/ddp", help="Where both runs and the JSON go.")
    args = parser.parse_args()
    if not 0 <= args.warmup < args.steps:
        parser.error("expected 0 <= --warmup < --steps")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    one = measure(args, [sys.executable], out / "1gpu", 1, env={**os.environ, "CUDA_VISIBLE_DEVICES": "0"})
    # accelerate launch gives each process one CPU thread unless told otherwise; the one-GPU run has them all.
    threads = args.threads_per_process or max(1, (os.cpu_count() or 1) // args.gpus)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
              "recipes/accelerate/ddp-2gpu.yaml", "--num_processes", str(args.gpus),
              "--num_cpu_threads_per_process", str(threads)]  # fmt: skip
    many = measure(args, launch, out / f"{args.gpus}gpu", args.gpus)
    speedup = many["completions_per_s"] / one["completions_per_s"]
    result = {"stage": args.stage, "gpus": args.gpus, "one_gpu": one, "ddp": many, "speedup": speedup,
              "config": args.config if args.stage == "rlvr" else "recipes/rlmt (rlmt_step.py)",
              "model_shape": args.model_shape, "max_completion_length": args.max_completion_length,
              "judge_tokens": args.judge_tokens, "threads_per_process": threads}  # fmt: skip
    (out / f"ddp_{args.stage}.json").write_text(json.dumps(result, indent=1))
    print(f"{'run':<8} {'completions/step':>17} {'median step s':>14} {'completions/s':>14}")
    for name, r in (("1 GPU", one), (f"{args.gpus} GPUs", many)):
        print(f"{name:<8} {r['completions_per_step']:>17} {r['median_step_s']:>14.3f} {r['completions_per_s']:>14.1f}")
    print(f"{args.stage} throughput {args.gpus} GPUs / 1 GPU: {speedup:.2f}x")


if __name__ == "__main__":
    main()
