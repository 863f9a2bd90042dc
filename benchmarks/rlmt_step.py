"""One RLMT step (SEER stage 2) at a model's shape, random weights, with its time split into parts (issue 7).

    python benchmarks/rlmt_step.py --shape shapeworld-tiny --device cpu                  # under a minute on a CPU
    python benchmarks/rlmt_step.py --shape janus-pro-1b --dtype bfloat16 --device cuda --out rlmt_step.json
    python benchmarks/rlmt_step.py --shape janus-pro-1b --dtype bfloat16 --device cuda --rollout compile
    accelerate launch --config_file recipes/accelerate/ddp-2gpu.yaml --num_cpu_threads_per_process 8 \
        benchmarks/rlmt_step.py --shape janus-pro-1b --dtype bfloat16 --device cuda      # DDP: see benchmarks/ddp.py

The step is `seer rlmt`'s own: TRL's GRPOTrainer as `rlmt.build_trainer` builds it, over `rlmt.build_rows`' rows,
with the reward `rlmt.PYesReward` and the judge `seer.rl.judge.judge_p_yes` (the evaluator's greedy answers, then
one log-prob read of P(Yes)), both image orders. Its settings are the shape's RLMT recipe (``--recipe``, default
per shape: recipes/rlmt/<name>.yaml; the judge's question and token budget come from recipes/rlvr/<name>.yaml, as
`seer rlmt` takes them from the RLVR run); ``--prompts`` and ``--generations`` override the recipe's
``prompts_per_step`` and ``num_generations``, ``--policy_tokens`` and ``--judge_tokens`` the token budgets. Under
``accelerate launch`` every process keeps one GPU's share of a step (weak scaling, as data-parallel training is
used): the step has ``prompts_per_step`` x processes items, samples/s counts all processes' reprompts, and the
first process prints and writes the figures (its own parts and peak memory). The evaluator and the reprompter are
fresh LoRA adapters with the recipe's rank (their weights do not change what a step computes). ``--text_engine``
picks the judge's answer loop (janus: the static text engine, the default on CUDA, or the reference loop).

Timers (exclusive: a nested part's time is not counted in its parent's; CUDA is synchronised at every boundary):

- policy generation: TRL's ``_generate_single_turn`` (the reprompter's sampled answers, through ``generate``);
- image generation: ``PYesReward.render`` (the frozen generator: one naive image per item, one per descriptor);
- judging: the judge callable (``judge_p_yes``);
- optimizer step: the rest of what turns rewards into an update: TRL's old/reference log-prob passes (the rest of
  ``_generate_and_score_completions``), the loss forward (``compute_loss``), ``backward`` and ``optimizer.step``
  (between the ``on_pre_optimizer_step`` and ``on_optimizer_step`` callbacks);
- reward, other: the rest of the reward (parsing, the fidelity oracle), and ``unaccounted``: step time minus all parts
  (gradient clipping, the scheduler, callbacks).

Random weights neither write a well-formed reprompt nor reach the judge's ``<answer>``, so the reward would render
nothing but the naive images and the judge would skip its read. Unless ``--as-sampled``, two substitutions make the
step do a trained run's work: the reward sees, in place of each sampled answer, a well-formed one whose descriptor
is a distinct seeded ShapeWorld scene (every descriptor of a group is rendered and judged: the worst case), and a
judge answer without ``<answer>`` is read as if it ended in one. Policy and judge answers still run to the token
budget unless an end token is sampled (the JSON gives their mean lengths). The first ``--warmup`` steps (CUDA graph
capture, compilation, allocator growth) are run, printed and kept apart from the timed ones. The recipe's
``fidelity_samples`` (oracle checks inside the reward) are turned off at image sizes other than 32 and 64 px, which
the oracle cannot read (at 384 px `PYesReward.fidelity` raises: a bug of `seer rlmt` on real-size recipes).
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import transformers
from datasets import Dataset
from transformers import TrainerCallback

import seer.rl.judge as judge_module
from seer.config import parse
from seer.formats import ANSWER_OPEN, format_answer
from seer.models import load_umm, process_state
from seer.models.adapters import EVALUATOR, REPROMPTER, LoraSettings
from seer.rl.judge import judge_p_yes
from seer.train import rlmt, rlvr
from seer.worlds.shapeworld.grammar import describe
from seer.worlds.shapeworld.render import IMAGE_SIZES
from seer.worlds.shapeworld.scene import random_scene

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
# The recipe of each shape (janus-pro-7b and harmon-tiny borrow their family's).
RECIPE_OF = {"shapeworld-tiny": "shapeworld-tiny", "janus-pro-1b": "janus-pro-1b", "janus-pro-7b": "janus-pro-1b",
             "harmon-tiny": "shapeworld-tiny", "harmon-0.5b": "harmon-1.5b", "harmon-1.5b": "harmon-1.5b"}  # fmt: skip
PARTS = ("policy_generation", "image_generation", "judging", "optimizer_step")
OPTIMIZER_PARTS = ("logprob_passes", "loss_forward", "backward", "optimizer_update")


class Timers:
    """Exclusive wall time per named part: entering a part pauses the enclosing one."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.seconds: dict[str, float] = defaultdict(float)
        self.stack: list[list[Any]] = []  # [name, start of its current stretch]
        self.active = False  # parts are recorded only in timed steps

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def start(self, name: str) -> None:
        now = self._now()
        if self.stack:
            parent = self.stack[-1]
            self._add(parent[0], now - parent[1])
        self.stack.append([name, now])

    def stop(self, name: str) -> None:
        now = self._now()
        top, began = self.stack.pop()
        if top != name:
            raise RuntimeError(f"timer {name!r} stopped inside {top!r}")
        self._add(name, now - began)
        if self.stack:
            self.stack[-1][1] = now

    def _add(self, name: str, seconds: float) -> None:
        if self.active:
            self.seconds[name] += seconds

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        self.start(name)
        try:
            yield
        finally:
            self.stop(name)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.part(name):
                return fn(*args, **kwargs)

        return timed


class StepClock(TrainerCallback):
    """Step time (``on_step_begin`` -> ``on_step_end``) and parts of every step, and the optimizer-update part."""

    def __init__(self, timers: Timers, warmup: int) -> None:
        self.timers = timers
        self.warmup = warmup
        self.step_seconds: list[float] = []  # of the timed steps
        self.parts: list[dict[str, float]] = []
        self.warmup_steps: list[dict[str, Any]] = []
        self.began = 0.0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.timers.active = True
        self.timers.seconds.clear()
        self.began = self.timers._now()

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.timers.start("optimizer_update")

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.timers.stop("optimizer_update")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        seconds = self.timers._now() - self.began
        parts = dict(self.timers.seconds)
        self.timers.active = False
        timed = state.global_step > self.warmup  # global_step counts this step already
        if timed:
            self.step_seconds.append(seconds)
            self.parts.append(parts)
        else:
            self.warmup_steps.append({"seconds": seconds, "parts": parts})
        shown = ", ".join(f"{name} {value:.2f}" for name, value in parts.items())
        if state.is_world_process_zero:
            print(f"step {state.global_step} ({'timed' if timed else 'warm-up'}): {seconds:.2f} s ({shown})",
                  file=sys.stderr, flush=True)  # fmt: skip


class WellFormedAnswers:
    """The reward as TRL calls it, seeing for each sampled answer a well-formed one with a distinct literal descriptor.

    The descriptor of completion k of a call is a ShapeWorld scene seeded by (item, step, k): distinct within a group,
    the same in every run.
    """

    __name__ = rlmt.PYesReward.__name__

    def __init__(self, reward: rlmt.PYesReward) -> None:
        self.reward = reward
        self.seen: list[int] = []  # completions of each call on this process (its share of the step under DDP)

    def __call__(self, completions: list[Any], item_id: list[str], step: list[int], **kwargs: Any) -> list[float]:
        self.seen.append(len(completions))
        texts = [
            format_answer("the prompt asks for this", describe(random_scene(random.Random(f"bench/{i}/{s}/{k}"))))
            for k, (i, s) in enumerate(zip(item_id, step, strict=True))
        ]
        return self.reward(texts, item_id=item_id, step=step, **kwargs)


def forced_answer_prefix(text: str) -> str:
    """`judge.answer_prefix`, reading an answer without ``<answer>`` as if it ended in one (random weights)."""
    prefix = ORIGINAL_ANSWER_PREFIX(text)
    return prefix if prefix is not None else f"{text} {ANSWER_OPEN}"


ORIGINAL_ANSWER_PREFIX = judge_module.answer_prefix


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="shapeworld-tiny", help="random-weight model shape (a janus or harmon one)")
    parser.add_argument("--recipe", default=None, help="recipes/rlmt/NAME.yaml and recipes/rlvr/NAME.yaml; "
                                                       "default: the shape's family")  # fmt: skip
    parser.add_argument("--prompts", type=int, default=None, help="items per step (default: the recipe's)")
    parser.add_argument("--generations", type=int, default=None, help="reprompts per item, G (default: the recipe's)")
    parser.add_argument("--policy_tokens", type=int, default=None,
                        help="max_completion_length (default: the recipe's)")  # fmt: skip
    parser.add_argument("--judge_tokens", type=int, default=None,
                        help="the judge's max new tokens (default: the RLVR recipe's max_completion_length)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rollout", default="default", choices=["default", "compile"],
                        help="janus: the static image engine as is, or with its layer stack compiled")  # fmt: skip
    parser.add_argument("--text_engine", default="auto", choices=["auto", "static", "reference"],
                        help="janus: the judge's answers through the static text engine or the reference loop")
    parser.add_argument("--warmup", type=int, default=1, help="steps run before the timed ones")
    parser.add_argument("--steps", type=int, default=1, help="timed steps")
    parser.add_argument("--as-sampled", action="store_true",
                        help="no substitutions: the reward sees the sampled answers (see the module docstring)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.steps < 1:
        parser.error("--warmup >= 0 and --steps >= 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    opts = parse_args(argv)
    transformers.logging.set_verbosity_error()
    backend = "harmon" if opts.shape.startswith("harmon") else "janus"
    recipe = opts.recipe or RECIPE_OF.get(opts.shape, "shapeworld-tiny")
    output_dir = tempfile.mkdtemp(prefix="rlmt-step-")
    overrides = ["--backend", backend, "--device", opts.device, "--dtype", opts.dtype, "--bf16", "false",
                 "--max_steps", str(opts.warmup + opts.steps), "--save_steps", "1000000", "--output_dir", output_dir,
                 "--seed", str(opts.seed)]  # fmt: skip
    if opts.prompts is not None:
        overrides += ["--prompts_per_step", str(opts.prompts)]
    if opts.generations is not None:
        overrides += ["--num_generations", str(opts.generations)]
    if opts.policy_tokens is not None:
        overrides += ["--max_completion_length", str(opts.policy_tokens)]
    if opts.judge_tokens is not None:
        overrides += ["--judge_max_new_tokens", str(opts.judge_tokens)]
    (args,) = parse(["--config", str(RECIPES / "rlmt" / f"{recipe}.yaml"), *overrides], rlmt.ARG_TYPES)
    # A recipe's checkpoint directory is not read; each process keeps one GPU's share of the step's items.
    state = process_state(opts.device)
    args = replace(args, model=None, model_shape=opts.shape,
                   prompts_per_step=args.prompts_per_step * state.num_processes)  # fmt: skip
    (judge_args,) = parse(["--config", str(RECIPES / "rlvr" / f"{recipe}.yaml")], rlvr.ARG_TYPES)
    templates = judge_args.templates()
    judge_tokens = args.judge_max_new_tokens or judge_args.max_completion_length
    cuda = torch.device(opts.device).type == "cuda"

    build_start = time.perf_counter()
    model, model_id = load_umm(backend, None, opts.shape, opts.dtype, opts.device, shape_seed=opts.seed)
    if model.image_size not in IMAGE_SIZES and args.fidelity_samples:
        # The oracle reads 32 and 64 px ShapeWorld images only: PYesReward.fidelity would raise at this size.
        print(f"fidelity_samples {args.fidelity_samples} -> 0: the oracle cannot read {model.image_size} px images",
              file=sys.stderr)  # fmt: skip
        args = replace(args, fidelity_samples=0)
    if opts.rollout == "compile":
        from seer.models.janus_rollout import StaticImageRollout

        model.image_rollout = StaticImageRollout(model.janus, compile_step=True)  # type: ignore[attr-defined]
    if opts.text_engine != "auto":
        if backend != "janus":
            raise SystemExit("--text_engine: the janus backend only")
        model.generate_text = functools.partial(model.generate_text, engine=opts.text_engine)  # type: ignore
    transformers.set_seed(opts.seed)
    lora = LoraSettings(r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout)
    model.add_adapter(EVALUATOR, lora)
    model.add_adapter(REPROMPTER, lora)
    model.activate_adapter(REPROMPTER, trainable=True)
    build_seconds = time.perf_counter() - build_start

    timers = Timers(cuda)
    judge_lengths: list[int] = []

    def judge(firsts: Any, seconds: Any, questions: Any) -> Any:
        with timers.part("judging"):
            result = judge_p_yes(model, firsts, seconds, questions, batch_size=args.judge_batch_size,
                                 max_new_tokens=judge_tokens, response_prefix=templates.response_prefix)  # fmt: skip
        judge_lengths.extend(len(model.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in result.texts)
        return result

    items, _ = rlmt.load_items(args)
    reward = rlmt.PYesReward(model, judge, {item.id: item for item in items}, templates, args)
    reward.render = timers.wrap("image_generation", reward.render)  # type: ignore[method-assign]
    reward_fn: Any = reward if opts.as_sampled else WellFormedAnswers(reward)
    clock = StepClock(timers, opts.warmup)
    rows = rlmt.build_rows(items, args.reprompt_template, args.prompts_per_step, args.max_steps, args.seed)
    trainer = rlmt.build_trainer(model, args, Dataset.from_list(rows), reward_fn, [clock])
    trainer._generate_single_turn = timers.wrap("policy_generation", trainer._generate_single_turn)
    trainer._generate_and_score_completions = timers.wrap("logprob_passes", trainer._generate_and_score_completions)
    trainer._calculate_rewards = timers.wrap("reward_other", trainer._calculate_rewards)
    trainer.compute_loss = timers.wrap("loss_forward", trainer.compute_loss)
    trainer.accelerator.backward = timers.wrap("backward", trainer.accelerator.backward)
    if not opts.as_sampled:
        judge_module.answer_prefix = forced_answer_prefix
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    try:
        trainer.train()
    finally:
        judge_module.answer_prefix = ORIGINAL_ANSWER_PREFIX

    # The timed steps' means.
    n = len(clock.step_seconds)
    step = sum(clock.step_seconds) / n
    names = ("policy_generation", "image_generation", "judging", "reward_other", *OPTIMIZER_PARTS)
    raw = {name: sum(p.get(name, 0.0) for p in clock.parts) / n for name in names}
    parts = {name: raw[name] for name in PARTS[:3]}
    parts["optimizer_step"] = sum(raw[name] for name in OPTIMIZER_PARTS)
    parts["reward_other"] = raw["reward_other"]
    parts["unaccounted"] = step - sum(parts.values())
    completions = args.prompts_per_step * args.num_generations
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    last = logs[-1] if logs else {}
    figures: dict[str, Any] = {
        "shape": opts.shape, "backend": backend, "recipe": recipe, "model_id": model_id, "dtype": opts.dtype,
        "device": opts.device, "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "rollout": opts.rollout, "text_engine": opts.text_engine, "substitutions": not opts.as_sampled,
        "torch": torch.__version__,
        "transformers": transformers.__version__, "prompts_per_step": args.prompts_per_step,
        "num_generations": args.num_generations, "completions_per_step": completions,
        "max_completion_length": args.max_completion_length, "judge_max_new_tokens": judge_tokens,
        "both_orders": args.both_orders, "image_batch_size": args.image_batch_size,
        "judge_batch_size": args.judge_batch_size, "fidelity_samples": args.fidelity_samples,
        "warmup_steps": clock.warmup_steps, "timed_steps": n,
        "processes": state.num_processes, "build_seconds": round(build_seconds, 2), "step_seconds": step,
        "step_seconds_median": statistics.median(clock.step_seconds), "step_seconds_each": clock.step_seconds,
        "parts": parts, "optimizer_step_parts": {name: raw[name] for name in OPTIMIZER_PARTS},
        "samples_per_second": completions / step,
        "completions_per_process_call": None if opts.as_sampled else reward_fn.seen[-1],
        "policy_completion_mean_tokens": last.get("completions/mean_length"),
        "judge_answer_mean_tokens": sum(judge_lengths) / len(judge_lengths) if judge_lengths else None,
        "reward_metrics": {k: last.get(k) for k in ("reward", "rlmt/valid", "rlmt/distinct_descriptors")},
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
    }  # fmt: skip
    if not state.is_main_process:
        return figures
    print_figures(figures)
    if opts.out:
        Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.out).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return figures


def print_figures(f: dict[str, Any]) -> None:
    print(f"\nRLMT step, {f['shape']} ({f['dtype']}, {f['device_name']}, rollout {f['rollout']}): "
          f"{f['prompts_per_step']} items x {f['num_generations']} reprompts, <= {f['max_completion_length']} "
          f"policy tokens, judge <= {f['judge_max_new_tokens']} tokens, both orders {f['both_orders']}")  # fmt: skip
    step = f["step_seconds"]
    print(f"{'part':<20} {'seconds':>9} {'share':>7}")
    for name, seconds in f["parts"].items():
        print(f"{name:<20} {seconds:>9.3f} {seconds / step:>7.1%}")
        if name == "optimizer_step":
            for sub, value in f["optimizer_step_parts"].items():
                print(f"  {sub:<18} {value:>9.3f} {value / step:>7.1%}")
    print(f"{'step':<20} {step:>9.3f}")
    print(f"samples/s: {f['samples_per_second']:.3f} ({f['completions_per_step']} reprompts per step); mean tokens: "
          f"policy {f['policy_completion_mean_tokens']}, judge {f['judge_answer_mean_tokens']}; "
          f"peak GPU GiB: {f['peak_gpu_gib']}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
