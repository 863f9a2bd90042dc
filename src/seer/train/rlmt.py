"""`seer rlmt`: SEER stage 2. Train the `reprompter` LoRA adapter with the frozen evaluator's P(Yes) as reward (GRPO).

    seer rlmt --config recipes/rlmt/shapeworld-tiny.yaml --evaluator runs/rlvr
    seer rlmt --config recipes/rlmt/shapeworld-tiny.yaml --resume                   # continue after an interruption
    seer rlmt --config recipes/rlmt/shapeworld-tiny.yaml --evaluator runs/rlvr-smoke --generator renderer \
        --max_steps 2 --output_dir runs/rlmt-smoke                # plumbing only

The reprompter reads a prompt and an instruction (``reprompt_template``) and answers
``<think> reasoning </think> <answer> descriptor </answer>``. For each sampled answer the descriptor is parsed
strictly (`seer.rl.reprompt.parse_descriptor`: a malformed answer scores 0 and is counted); the frozen generator
(every adapter off) renders it, and renders the naive concatenation ``instruction + prompt`` with the same seed;
the frozen evaluator (the RLVR run's adapter, asked the RLVR run's own instruction question) gives P(Yes) that the
reprompt's image matches the instruction better (`seer.rl.judge`). The file reads top to bottom: output directory
-> model, evaluator and reprompter -> items -> the reward -> callbacks -> TRL's GRPOTrainer -> train. It writes
into ``output_dir``:

- config.yaml (the resolved arguments), metrics.jsonl (one line per step: TRL's metrics plus ``rlmt/*``,
  ``fidelity/*`` and ``health/*``), results.json (reward and agreement summary, timings);
- checkpoint-<step>/: TRL's state, ``reprompter/`` (the adapter, via ``save_adapter``) and rlmt.json (written
  last: a checkpoint without it is incomplete); ``--resume`` continues from the newest complete one;
- reprompter/: the final adapter (`seer reprompt --adapter` reads it).

Algorithm (TRL's GRPOTrainer does the optimisation; the choices below are ours or the paper's):

- Reward: P(Yes) of the frozen evaluator, averaged over both image orders (``both_orders``; the paper shows one
  order, ours first). One generator seed per (run seed, item, step): the whole GRPO group and the naive image share
  it, so advantages compare descriptors, not sampling noise; the naive image is drawn once per item and step.
- Reward fidelity: on ``fidelity_samples`` rollouts per step the oracle judges both images too; ``fidelity/
  agreement`` is the fraction of the pairs the oracle decides (one image passes, the other fails) on which the
  evaluator agrees (reward > 0.5 iff ours passes). Agreement falling while reward rises is the policy gaming the
  judge.
- ``judge: oracle`` swaps the evaluator for the oracle (1 / 0.5 / 0 as it prefers ours / neither / the naive
  image): not SEER, a diagnostic of what RLMT can reach with a perfect judge on the same budget.
- KL (k3) to the adapter-free base model with weight ``beta`` (SEER's frozen reference), as in RLVR; the policy
  starts from the evaluator adapter (``init_from: evaluator``, as the paper initialises from the RLVR model) or from
  a fresh adapter (``base``, the embedded default: with the evaluator's start the reprompter inherits what RLVR cost
  understanding, and lost 2 points of yes/no VQA at 1 of 3 seeds; benchmarks/RESULTS.md).
- Reward health (`rl.health`): zero-variance groups are logged; all-zero or non-finite rewards for
  ``max_bad_reward_steps`` steps stop the run with a message and exit status 1; constant rewards (every group
  without variance) for as long warn, or stop with ``constant_reward_action: stop``.
- Non-finite steps (`train.nonfinite`): a step whose loss or gradient is NaN/inf updates nothing and is logged
  (``health/nonfinite_steps``); ``max_nonfinite_steps`` in a row stop the run (exit 1), its last checkpoint intact.

Where this departs from plain TRL use (docs/decisions.md): the trainer gets ``beta=0`` and its ``beta`` afterwards
(as RLVR, so the reference is the adapter-free base); the reward is one callable object that renders and judges
with the model being trained, switching adapters under ``use_adapter``/``no_adapter`` (which restore the adapter
state exactly); rows carry their step, so seeds do not depend on TRL's internal counters.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import transformers
import yaml
from datasets import Dataset
from PIL import Image
from tqdm.auto import tqdm
from transformers import TrainerCallback, TrainingArguments

from seer.config import config_dict, save_config
from seer.data.build import generate_sets
from seer.data.pairs import LiteralRenderer, QuestionTemplates
from seer.data.vie import VIEItem, load_vie
from seer.errors import SeerError
from seer.eval.base import take_stratified
from seer.formats import naive_concatenation
from seer.models import load_umm
from seer.models.adapters import EVALUATOR, REPROMPTER, LoraSettings
from seer.models.base import UnifiedModel
from seer.rl.health import JudgeHealthMonitor, RewardHealthMonitor, RewardTap
from seer.rl.judge import JudgeResult, judge_p_yes, judge_question, order_averaged_reward
from seer.rl.reprompt import GRAMMARS, REASONS, REPROMPT_TEMPLATE, check_template, parse_descriptor
from seer.rl.rewards import completion_text
from seer.train import run_dir
from seer.train.grpo import CONSTANT_REWARD_HELP, MAX_NONFINITE_HELP, GuardedGRPOTrainer, build_grpo_trainer
from seer.train.rlvr import KEYS_BEFORE_THEY_EXISTED

STATE_FILE, METRICS_FILE, RESULTS_FILE, CONFIG_FILE = "rlmt.json", "metrics.jsonl", "results.json", "config.yaml"
# Keys that may differ between an interrupted run and its --resume (they do not change what is trained).
RESUMABLE_CHANGES = ("resume", "overwrite", "output_dir", "device", "judge_batch_size", "image_batch_size",
                     "sample_every", "min_agreement", "max_judge_prefers_failing", "max_judge_no_answer",
                     "judge_health_action",
                     "judge_health_patience", "constant_reward_action", "max_nonfinite_steps")  # fmt: skip
# The RLVR run's keys the judge needs (its question, exactly as it was trained on it).
JUDGE_KEYS = ("prompt_question", "instruction_question", "answer_suffix", "system_prompt", "max_completion_length")


@dataclass
class RLMTArgs:
    """Arguments of `seer rlmt` (flat keys, the same in recipes and on the command line).

    The defaults are the embedded model's recipe (recipes/rlmt/shapeworld-tiny.yaml).
    """

    # Model
    backend: Literal["janus", "harmon"] = field(
        default="janus", metadata={"help": "Model backend: janus (Janus-Pro, the embedded model) or harmon."}
    )
    model: str | None = field(
        default=None,
        metadata={"help": "Model directory; null: the RLVR run's model (the evaluator only fits the model it was "
                          "trained on)."},
    )  # fmt: skip
    model_shape: str | None = field(
        default=None, metadata={"help": "Random-weight model of this shape (smoke runs); null: the RLVR run's."}
    )
    device: str = field(default="cpu", metadata={"help": "Device to train on (cpu, cuda, cuda:1, ...)."})
    dtype: Literal["float32", "bfloat16"] = field(default="float32", metadata={"help": "Weight dtype of the model."})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 autocast in training (GPU)."})
    # The judge
    evaluator: str = field(
        default="runs/rlvr",
        metadata={"help": "The RLVR run directory (its config.yaml gives the judge's question, its evaluator/ the "
                          "adapter), or one of its checkpoint-<step>/ folders."},
    )  # fmt: skip
    both_orders: bool = field(
        default=True,
        metadata={"help": "Judge both image orders and average (removes position bias); false: ours first (paper)."},
    )
    judge: Literal["evaluator", "oracle"] = field(
        default="evaluator",
        metadata={"help": "evaluator: SEER's reward (P(Yes)); oracle: 1 / 0.5 / 0 as the oracle prefers ours / "
                          "neither / the naive image (a perfect-judge diagnostic; items need a spec)."},
    )  # fmt: skip
    judge_max_new_tokens: int | None = field(
        default=None, metadata={"help": "Token budget of the evaluator's answer; null: the RLVR run's."}
    )
    judge_batch_size: int = field(default=64, metadata={"help": "Pairs per evaluator generation call."})
    # The policy
    init_from: Literal["evaluator", "base"] = field(
        default="base",
        metadata={"help": "Start the reprompter from the evaluator adapter (paper) or a fresh one (base)."},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank of a fresh reprompter (init_from base)."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha of a fresh reprompter (init_from base)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout of a fresh reprompter."})
    reprompt_template: str = field(
        default=REPROMPT_TEMPLATE, metadata={"help": "The reprompter's question, with {prompt} and {instruction}."}
    )
    descriptor_grammar: Literal["shapeworld", "none"] = field(
        default="shapeworld",
        metadata={"help": "shapeworld: a descriptor must be a literal ShapeWorld prompt; none: any text."},
    )
    max_descriptor_words: int = field(default=64, metadata={"help": "Longer descriptors score 0 (over-long)."})
    # The frozen generator
    generator: Literal["model", "renderer"] = field(
        default="model", metadata={"help": "model: the model's frozen generator (SEER); renderer: exact renders."}
    )
    guidance_scale: float | None = field(
        default=None, metadata={"help": "CFG scale of the generator; null: the model's default_guidance_scale."}
    )
    image_temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the images."})
    image_batch_size: int = field(default=64, metadata={"help": "Images per generation call."})
    # Data
    train_file: str | None = field(
        default=None, metadata={"help": "VIE JSONL (prompt, instruction; spec for the oracle); default: seer data's."}
    )
    data_seed: int = field(default=0, metadata={"help": "seer data's seed, used when train_file is not given."})
    max_train_items: int | None = field(
        default=None, metadata={"help": "Use at most this many training items (spread over categories)."}
    )
    # GRPO
    max_steps: int = field(default=80, metadata={"help": "Optimiser steps."})
    prompts_per_step: int = field(default=4, metadata={"help": "Items per optimiser step, over all processes."})
    num_generations: int = field(default=8, metadata={"help": "Reprompts sampled per item (the GRPO group size G)."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per optimiser step."})
    learning_rate: float = field(default=5e-4, metadata={"help": "AdamW learning rate of the LoRA weights."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "transformers scheduler name."})
    beta: float = field(default=0.1, metadata={"help": "Weight of the KL (k3) to the adapter-free base model."})
    epsilon: float = field(default=0.2, metadata={"help": "PPO clip range of the importance ratio."})
    loss_type: Literal["grpo", "dapo", "dr_grpo"] = field(
        default="grpo", metadata={"help": "TRL loss aggregation; grpo: token mean per answer, then batch mean."}
    )
    max_completion_length: int = field(default=96, metadata={"help": "Token budget of a sampled reprompt."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of reprompts (full softmax)."})
    max_bad_reward_steps: int = field(
        default=10, metadata={"help": "Stop after this many steps in a row of all-zero or non-finite rewards."}
    )
    constant_reward_action: Literal["warn", "stop"] = field(default="warn", metadata={"help": CONSTANT_REWARD_HELP})
    max_nonfinite_steps: int = field(default=5, metadata={"help": MAX_NONFINITE_HELP})
    fidelity_samples: int = field(
        default=8, metadata={"help": "Rollouts per step the oracle also judges (judge-oracle agreement); 0: none."}
    )
    min_agreement: float | None = field(
        default=None,
        metadata={"help": "Judge health: warn (or stop) when a step's fidelity/agreement is below this; null: off."},
    )
    max_judge_prefers_failing: float | None = field(
        default=None,
        metadata={"help": "Judge health: warn (or stop) when a step's fidelity/judge_prefers_failing (the judge "
                          "rewards above 0.5 rollouts the oracle fails) is above this; null: off."},
    )  # fmt: skip
    max_judge_no_answer: float | None = field(
        default=1.0,
        metadata={"help": "Judge health: warn (or stop) when this fraction of judge answers is malformed; null: off."},
    )
    judge_health_action: Literal["warn", "stop"] = field(
        default="warn", metadata={"help": "What a judge-health alarm does: warn, or stop after the patience."}
    )
    judge_health_patience: int = field(
        default=3, metadata={"help": "Alarming logged steps in a row before judge_health_action stop stops the run."}
    )
    sample_every: int = field(default=10, metadata={"help": "Print raw reprompts every N steps."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Trade compute for memory (large models)."})
    # Run
    output_dir: str = field(default="runs/rlmt", metadata={"help": "Where checkpoints, the adapter and logs go."})
    seed: int = field(default=0, metadata={"help": "Seed of sampling, image seeds, LoRA init and data order."})
    save_steps: int = field(default=20, metadata={"help": "Write a checkpoint every N steps."})
    resume: bool = field(
        default=False, metadata={"help": "Continue the run in output_dir from its newest complete checkpoint."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace the results of an earlier run in output_dir."})

    def __post_init__(self) -> None:
        if self.model is not None and self.model_shape is not None:
            raise ValueError("model and model_shape: expected at most one (a checkpoint, or a random-weight shape)")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite: expected at most one")
        at_least = {
            "max_steps": 1, "prompts_per_step": 1, "gradient_accumulation_steps": 1, "save_steps": 1,
            "max_completion_length": 1, "judge_batch_size": 1, "image_batch_size": 1, "max_bad_reward_steps": 1,
            "num_generations": 2, "max_descriptor_words": 1, "fidelity_samples": 0, "sample_every": 1,
            "max_train_items": 1, "judge_max_new_tokens": 1, "judge_health_patience": 1, "max_nonfinite_steps": 1,
        }  # fmt: skip
        for name, low in at_least.items():
            value = getattr(self, name)
            if value is not None and value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {value}")
        for name, value in (("learning_rate", self.learning_rate), ("temperature", self.temperature)):
            if value <= 0:
                raise ValueError(f"{name}: expected > 0, got {value}")
        if self.beta < 0 or self.epsilon <= 0:
            raise ValueError(f"beta / epsilon: expected beta >= 0 and epsilon > 0, got {self.beta} / {self.epsilon}")
        if self.descriptor_grammar not in GRAMMARS:
            raise ValueError(f"descriptor_grammar: expected one of {list(GRAMMARS)}, got {self.descriptor_grammar!r}")
        for name in ("min_agreement", "max_judge_prefers_failing", "max_judge_no_answer"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: expected a fraction in [0, 1] or null, got {value}")
        if self.guidance_scale is not None and self.guidance_scale < 0:
            raise ValueError(f"guidance_scale: expected >= 0 (1.0 = no guidance), got {self.guidance_scale}")
        check_template(self.reprompt_template)


ARG_TYPES = (RLMTArgs,)


# ---------------------------------------------------------------------------------------------------------------
# 1. Output directory (as RLVR's, with our own completeness marker)


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint of a run in `out` (`run_dir.latest_checkpoint` with this stage's marker)."""
    return run_dir.latest_checkpoint(out, STATE_FILE)


def prepare_output_dir(args: RLMTArgs) -> Path | None:
    """Check ``output_dir`` against --resume/--overwrite (`run_dir.prepare_output_dir`); the checkpoint to resume."""
    return run_dir.prepare_output_dir(
        Path(args.output_dir), resume=args.resume, overwrite=args.overwrite, marker=STATE_FILE,
        config=config_dict(args), resumable=RESUMABLE_CHANGES,
        outputs=(REPROMPTER, METRICS_FILE, RESULTS_FILE, run_dir.CONFIG_FILE),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# 2. The RLVR run (the judge) and the model


@dataclass(frozen=True)
class EvaluatorRun:
    """What RLMT takes from an RLVR run: the evaluator adapter, its question and its settings."""

    adapter: Path  # the evaluator/ adapter directory
    config_path: Path
    config: dict[str, Any]  # the RLVR run's config.yaml
    templates: QuestionTemplates
    max_new_tokens: int  # the RLVR run's max_completion_length: how long the evaluator was allowed to reason


def read_evaluator_run(path: str | Path) -> EvaluatorRun:
    """The RLVR run at `path` (a run directory, or one of its checkpoint-<step>/ folders)."""
    path = Path(path)
    adapter = path / EVALUATOR
    config_path = path / CONFIG_FILE
    if not config_path.is_file() and path.name.startswith("checkpoint-"):
        config_path = path.parent / CONFIG_FILE  # a checkpoint's run configuration is its parent's
    if not (adapter / "adapter_model.safetensors").is_file():
        raise SeerError(
            f"{adapter}: no evaluator adapter (key 'evaluator': expected an RLVR run directory with evaluator/, "
            "e.g. the output_dir of `seer rlvr`, or one of its checkpoint-<step>/ folders)"
        )
    if not config_path.is_file():
        raise SeerError(f"{config_path}: file not found (key 'evaluator': the RLVR run's config.yaml holds the "
                        "judge's question)")  # fmt: skip
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise SeerError(f"{config_path}: expected the mapping written by `seer rlvr`")
    config = {**KEYS_BEFORE_THEY_EXISTED, **config}
    for key in JUDGE_KEYS:
        if key not in config:
            raise SeerError(f"{config_path}: key '{key}' is missing (expected the config.yaml written by seer rlvr)")
    try:
        templates = QuestionTemplates(config["prompt_question"], config["instruction_question"],
                                      config["answer_suffix"] or "", config["system_prompt"] or "",
                                      config["response_prefix"] or "")  # fmt: skip
    except ValueError as error:
        raise SeerError(f"{config_path}: {error}") from None
    return EvaluatorRun(adapter, config_path, config, templates, int(config["max_completion_length"]))


def resolve_model_keys(args: RLMTArgs, run: EvaluatorRun) -> None:
    """Take the RLVR run's model when ours is left null; a different model is an error (the adapter would not fit
    what it was trained on). So is another backend (RLVR runs written before its ``backend`` key are janus ones)."""
    if args.backend != run.config.get("backend", "janus"):
        raise SeerError(f"key 'backend': {args.backend!r}, but the evaluator ({run.config_path}) was trained with "
                        f"backend {run.config.get('backend', 'janus')!r}")  # fmt: skip
    theirs = {key: run.config.get(key) for key in ("model", "model_shape")}
    ours = {"model": args.model, "model_shape": args.model_shape}
    if ours["model"] is None and ours["model_shape"] is None:
        args.model, args.model_shape = theirs["model"], theirs["model_shape"]
        return
    for key, value in ours.items():
        if value != theirs[key]:
            raise SeerError(
                f"key '{key}': {value!r}, but the evaluator ({run.config_path}) was trained on {key} "
                f"{theirs[key]!r}; leave model and model_shape null to use the RLVR run's"
            )


def load_model(args: RLMTArgs, shape_seed: int = 0) -> tuple[UnifiedModel, str]:
    """The model and a string identifying its weights; ``shape_seed`` seeds a random-weight shape (the RLVR run's)."""
    return load_umm(args.backend, args.model, args.model_shape, args.dtype, args.device, shape_seed=shape_seed)


def check_template_vocabulary(tokenizer: Any, template: str, key: str = "reprompt_template") -> None:
    """Every word of `template` must be a token of a word-level tokenizer (an unknown word reads as <unk>)."""
    if getattr(tokenizer, "unk_token_id", None) is None:
        return
    for word in template.replace("{prompt}", " ").replace("{instruction}", " ").split():
        if tokenizer.unk_token_id in tokenizer(word, add_special_tokens=False)["input_ids"]:
            raise SeerError(f"recipe key '{key}': word {word!r} is not in the model's vocabulary")


def setup_adapters(model: UnifiedModel, args: RLMTArgs, judge: EvaluatorRun) -> None:
    """Load the frozen evaluator (unless the model already has it) and create the trainable reprompter."""
    if EVALUATOR not in model.adapter_names:
        model.load_adapter(EVALUATOR, judge.adapter)
    if REPROMPTER in model.adapter_names:
        raise SeerError(f"adapter '{REPROMPTER}': the model already has one; RLMT starts a new reprompter")
    if args.init_from == "evaluator":
        model.load_adapter(REPROMPTER, judge.adapter)  # a copy of the evaluator's weights, trained from here
    else:
        model.add_adapter(REPROMPTER, LoraSettings(r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout))
    model.activate_adapter(REPROMPTER, trainable=True)


# ---------------------------------------------------------------------------------------------------------------
# 3. Items and the rows TRL reads


def load_items(args: RLMTArgs) -> tuple[list[VIEItem], str]:
    """(training items, where they come from)."""
    if args.train_file is not None:
        items, where = load_vie(args.train_file), args.train_file
    else:
        items, where = generate_sets(args.data_seed, 25, 1)[0], f"seer data --seed {args.data_seed} (train)"
    if args.max_train_items is not None:
        items = take_stratified(items, args.max_train_items, key=lambda item: (item.category, item.difficulty))
    if not items:
        raise SeerError(f"{where}: no training items")
    return items, where


def build_rows(items: Sequence[VIEItem], template: str, prompts_per_step: int, max_steps: int, seed: int
               ) -> list[dict[str, Any]]:  # fmt: skip
    """One row per item of every step, in step order: each pass over the items is a fresh seeded shuffle.

    The row carries its ``step`` (1-based), so the reward's image seed is a function of the row alone.
    """
    rows: list[dict[str, Any]] = []
    order: list[int] = []
    for slot in range(max_steps * prompts_per_step):
        if not order:
            order = random.Random(f"seer-rlmt-order/{seed}/{slot // len(items)}").sample(range(len(items)),
                                                                                          len(items))  # fmt: skip
        item = items[order.pop(0)]
        rows.append({
            "prompt": [{"role": "user", "content": template.format(prompt=item.prompt, instruction=item.instruction)}],
            "item_id": item.id,
            "step": slot // prompts_per_step + 1,
        })  # fmt: skip
    return rows


def rollout_seed(run_seed: int, item_id: str, step: int) -> int:
    """The generator seed of every image of one item at one step (the policy's and the naive one)."""
    digest = hashlib.sha256(f"seer-rlmt-image/{run_seed}/{item_id}/{step}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


# ---------------------------------------------------------------------------------------------------------------
# 4. The reward


Judge = Callable[[Sequence[Image.Image], Sequence[Image.Image], Sequence[str]], JudgeResult]


class PYesReward:
    """The RLMT reward, a TRL reward function: parse, render (same seed as the naive image), judge, watch fidelity.

    Args:
        generator: the frozen generator: the model (run under ``no_adapter()``) or a `LiteralRenderer`.
        judge: ``(firsts, seconds, questions) -> JudgeResult`` (`judge_p_yes` with the evaluator).
        items: the training items by id.
        templates: the RLVR run's question templates (the judge is asked the instruction question).
        args: the run's arguments (seed, both_orders, grammar, guidance, fidelity_samples, ...).
    """

    __name__ = "p_yes_reward"  # TRL names the reward's metrics after it

    def __init__(self, generator: Any, judge: Judge, items: dict[str, VIEItem], templates: QuestionTemplates,
                 args: RLMTArgs) -> None:  # fmt: skip
        self.generator = generator
        self.judge = judge
        self.items = items
        self.templates = templates
        self.args = args
        self.last_samples: list[dict[str, Any]] = []  # of the latest call, for printing raw samples

    def __call__(self, completions: Sequence[Any], item_id: Sequence[str], step: Sequence[int],
                 log_metric: Callable[[str, float], None] | None = None, **kwargs: Any) -> list[float]:  # fmt: skip
        args = self.args
        texts = [completion_text(c) for c in completions]
        parsed = [parse_descriptor(t, grammar=args.descriptor_grammar, max_words=args.max_descriptor_words)
                  for t in texts]  # fmt: skip
        # What to render: each (item, step)'s naive concatenation once, and each distinct descriptor once per seed
        # (a group often repeats a descriptor; the same text and seed draw the same image).
        naive_keys = list(dict.fromkeys(zip(item_id, step)))
        ours_keys = list(dict.fromkeys((p.descriptor, i, s) for p, i, s in zip(parsed, item_id, step)
                                       if p.descriptor is not None))  # fmt: skip
        texts_to_draw = [naive_concatenation(self.items[i].instruction, self.items[i].prompt) for i, _ in naive_keys]
        texts_to_draw += [d for d, _, _ in ours_keys]
        draw_seeds = [rollout_seed(args.seed, i, s) for i, s in naive_keys]
        draw_seeds += [rollout_seed(args.seed, i, s) for _, i, s in ours_keys]
        images = self.render(texts_to_draw, draw_seeds)
        naive = dict(zip(naive_keys, images[: len(naive_keys)]))
        ours = dict(zip(ours_keys, images[len(naive_keys):]))

        # The judge: ours first (and, with both orders, ours second) against the naive image.
        questions = [judge_question(self.templates, self.items[i].prompt, self.items[i].instruction)
                     for _, i, _ in ours_keys]  # fmt: skip
        firsts = [ours[k] for k in ours_keys]
        seconds = [naive[(i, s)] for _, i, s in ours_keys]
        if args.judge == "oracle":
            rewards_by_key = {k: self.oracle_reward(ours[k], naive[(k[1], k[2])], self.items[k[1]]) for k in ours_keys}
            result, p_first, p_swapped = JudgeResult([], [], []), [], []
        elif args.both_orders:
            result = self.judge([*firsts, *seconds], [*seconds, *firsts], [*questions, *questions])
            k = len(ours_keys)
            p_first, p_swapped = result.p_yes[:k], result.p_yes[k:]
            rewards_by_key = {key: order_averaged_reward(a, b) for key, a, b in zip(ours_keys, p_first, p_swapped)}
        else:
            result = self.judge(firsts, seconds, questions)
            p_first, p_swapped = result.p_yes, []
            rewards_by_key = dict(zip(ours_keys, p_first))
        rewards = [0.0 if p.descriptor is None else rewards_by_key[(p.descriptor, i, s)]
                   for p, i, s in zip(parsed, item_id, step)]  # fmt: skip

        metrics = {
            "rlmt/valid": sum(p.descriptor is not None for p in parsed) / len(parsed),
            **{f"rlmt/{reason}": sum(p.reason == reason for p in parsed) / len(parsed) for reason in REASONS},
            "rlmt/distinct_descriptors": len(ours_keys) / len(parsed),
        }
        if p_first:
            metrics["rlmt/judge_no_answer"] = 1.0 - sum(result.reached_answer) / len(result.reached_answer)
            metrics["rlmt/p_yes_first"] = sum(p_first) / len(p_first)
            if p_swapped:
                metrics["rlmt/p_yes_swapped"] = sum(p_swapped) / len(p_swapped)
        metrics.update(self.fidelity(ours_keys, ours, naive, rewards_by_key, step[0] if step else 0))
        if log_metric is not None:
            for name, value in metrics.items():
                log_metric(name, value)
        self.last_metrics = metrics
        self.last_samples = [
            {"item": i, "text": t, "reward": r, "reason": p.reason}
            for i, t, r, p in zip(item_id, texts, rewards, parsed)
        ]
        return rewards

    @staticmethod
    def oracle_reward(ours: Image.Image, naive: Image.Image, item: VIEItem) -> float:
        """The perfect judge's reward: 1 if only ours passes the oracle, 0 if only the naive image does, else 0.5."""
        from seer.worlds.shapeworld.judge import verify

        return (1.0 + verify(ours, item).passed - verify(naive, item).passed) / 2.0

    def render(self, texts: Sequence[str], seeds: Sequence[int]) -> list[Image.Image]:
        """The frozen generator's image of each text with its seed (adapter state restored afterwards)."""
        images: list[Image.Image] = []
        size = self.args.image_batch_size
        with torch.no_grad(), self.generator.no_adapter():
            for start in range(0, len(texts), size):
                out = self.generator.generate_images(
                    list(texts[start : start + size]), seeds=list(seeds[start : start + size]),
                    guidance_scale=self.args.guidance_scale, temperature=self.args.image_temperature,
                )  # fmt: skip
                images += out.images
        return images

    def fidelity(self, keys: Sequence[tuple[str, str, int]], ours: dict[Any, Image.Image],
                 naive: dict[Any, Image.Image], rewards: dict[Any, float], step: int) -> dict[str, float]:  # fmt: skip
        """Judge-oracle agreement on a seeded sample of this step's rollouts (items with a spec only); images of a
        real-size model are box-filtered to a size the oracle reads (`data.pairs.oracle_view`), as RLVR's pairs are.

        ``fidelity/agreement`` needs pairs the oracle decides, which a policy that never satisfies the instruction does
        not give; ``fidelity/judge_prefers_failing`` (of the sampled rollouts whose image fails the oracle, the
        fraction the judge rewards above 0.5) still shows a policy learning to please the judge, not the oracle."""
        from seer.data.pairs import oracle_view
        from seer.worlds.shapeworld.judge import verify

        candidates = [k for k in keys if self.items[k[1]].spec is not None]
        n = min(self.args.fidelity_samples, len(candidates))
        if n == 0:
            return {}
        sample = random.Random(f"seer-rlmt-fidelity/{self.args.seed}/{step}").sample(candidates, n)
        naive_pass: dict[tuple[str, int], bool] = {}
        decisive = agree = ours_pass = preferred_failing = 0
        for key in sample:
            _, item_id, item_step = key
            item = self.items[item_id]
            if (item_id, item_step) not in naive_pass:
                naive_pass[(item_id, item_step)] = verify(oracle_view(naive[(item_id, item_step)]), item).passed
            mine, theirs = verify(oracle_view(ours[key]), item).passed, naive_pass[(item_id, item_step)]
            ours_pass += mine
            if not mine and rewards[key] > 0.5:
                preferred_failing += 1
            if mine != theirs:  # the oracle prefers one image
                decisive += 1
                agree += (rewards[key] > 0.5) == mine
        out = {"fidelity/oracle_pass": ours_pass / n, "fidelity/decisive": decisive / n,
               "fidelity/naive_pass": sum(naive_pass.values()) / len(naive_pass)}  # fmt: skip
        if decisive:
            out["fidelity/agreement"] = agree / decisive
        if ours_pass < n:
            out["fidelity/judge_prefers_failing"] = preferred_failing / (n - ours_pass)
        return out


# ---------------------------------------------------------------------------------------------------------------
# 5. Callbacks: checkpoints, progress


class ProgressCallback(run_dir.StageProgress):
    """RLMT's progress bar (reward, valid descriptors, judge-oracle agreement, oracle pass, KL, zero-variance groups)
    and raw reprompts, one per group, from step 1 on."""

    desc = "rlmt"
    sample_first_step = True

    def __init__(self, metrics_path: Path, reward: PYesReward, sample_every: int) -> None:
        super().__init__(metrics_path, sample_every)
        self.reward = reward

    def postfix(self, logs: dict[str, float]) -> dict[str, Any]:
        return {
            "reward": logs.get("reward"), "valid": logs.get("rlmt/valid"),
            "agree": logs.get("fidelity/agreement"), "oracle": logs.get("fidelity/oracle_pass"),
            "kl": logs.get("kl"), "zero_var": logs.get("health/zero_variance_groups"),
        }  # fmt: skip

    def print_samples(self, step: int, args: TrainingArguments) -> None:
        for sample in self.reward.last_samples[:: max(1, args.num_generations)][:2]:  # one per group
            tqdm.write(f"sample (step {step}, {sample['item']}, reward {sample['reward']:.3f}"
                       f"{', ' + sample['reason'] if sample['reason'] else ''}): {sample['text']!r}")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# 6. The trainer and the run


def build_trainer(model: UnifiedModel, args: RLMTArgs, dataset: Dataset, reward: Any,
                  callbacks: list[TrainerCallback]) -> GuardedGRPOTrainer:  # fmt: skip
    """TRL's GRPOTrainer on the model's PEFT module, with the reprompter adapter active and trainable."""
    return build_grpo_trainer(model, args, dataset, [reward], [1.0], callbacks)


def main(args: RLMTArgs) -> int:
    """Run `seer rlmt`; 0 on success, 1 when reward or judge health or non-finite steps stopped the run."""
    transformers.logging.set_verbosity_error()
    judge_run = read_evaluator_run(args.evaluator)
    resolve_model_keys(args, judge_run)  # before the resume check: config.yaml holds the resolved keys
    resume_from = prepare_output_dir(args)  # before loading the model: a refused output_dir fails fast
    if args.train_file is not None:
        load_vie(args.train_file)  # so does a malformed dataset
    model, model_id = load_model(args, shape_seed=int(judge_run.config.get("seed", 0)))
    return run(args, model, model_id, resume_from, judge_run)


def run(args: RLMTArgs, model: UnifiedModel, model_id: str, resume_from: Path | None = None,
        judge_run: EvaluatorRun | None = None) -> int:  # fmt: skip
    """Train `model`'s reprompter adapter as `args` say (`main` without the loading; tests and `seer run` pass their
    own model, which may already hold the evaluator adapter)."""
    start = time.perf_counter()
    out = Path(args.output_dir)
    judge_run = judge_run or read_evaluator_run(args.evaluator)
    save_config(out, args)
    transformers.set_seed(args.seed)  # a fresh adapter's LoRA init draws from the global RNG
    check_template_vocabulary(model.processor.tokenizer, args.reprompt_template)
    items, where = load_items(args)
    print(f"rlmt: {len(items)} items from {where}; evaluator {judge_run.adapter} (init_from {args.init_from}); "
          f"model {model_id}")  # fmt: skip
    setup_adapters(model, args, judge_run)
    if resume_from is not None:
        print(f"resuming from {resume_from}")

    generator = model if args.generator == "model" else LiteralRenderer(model.image_size)  # type: ignore[attr-defined]
    max_new_tokens = args.judge_max_new_tokens or judge_run.max_new_tokens

    def judge(firsts: Sequence[Image.Image], seconds: Sequence[Image.Image], questions: Sequence[str]) -> JudgeResult:
        return judge_p_yes(model, firsts, seconds, questions, batch_size=args.judge_batch_size,
                           max_new_tokens=max_new_tokens, response_prefix=judge_run.templates.response_prefix)  # fmt: skip

    reward = PYesReward(generator, judge, {item.id: item for item in items}, judge_run.templates, args)
    tap = RewardTap()
    health = RewardHealthMonitor(tap, [1.0], args.num_generations, args.max_bad_reward_steps,
                                 constant_action=args.constant_reward_action)  # fmt: skip
    judge_health = JudgeHealthMonitor(args.min_agreement, args.max_judge_no_answer,
                                      stop=args.judge_health_action == "stop", patience=args.judge_health_patience,
                                      max_prefers_failing=args.max_judge_prefers_failing)  # fmt: skip
    callbacks: list[TrainerCallback] = [
        health,
        judge_health,
        run_dir.AdapterCheckpoint(model, REPROMPTER, STATE_FILE, lambda state: {
            "step": state.global_step, "evaluator": str(judge_run.adapter),
        }),  # fmt: skip
        ProgressCallback(out / METRICS_FILE, reward, args.sample_every),
    ]
    rows = build_rows(items, args.reprompt_template, args.prompts_per_step, args.max_steps, args.seed)
    trainer = build_trainer(model, args, Dataset.from_list(rows), tap.wrap([reward])[0], callbacks)
    train_start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    train_seconds = time.perf_counter() - train_start
    steps_run = trainer.state.global_step - (int(resume_from.name.removeprefix("checkpoint-")) if resume_from else 0)

    stop_message = health.stop_message or judge_health.stop_message or trainer.nonfinite.stop_message
    results: dict[str, Any] = {
        "status": "stopped" if stop_message else "completed",
        "steps": trainer.state.global_step,
        "evaluator": str(judge_run.adapter),
        "init_from": args.init_from,
        "items": len(items),
        **summarize_metrics(out / METRICS_FILE),
        "seconds": {"training": round(train_seconds, 1), "per_step": round(train_seconds / max(1, steps_run), 2)},
    }
    main_process = trainer.is_world_process_zero()
    if stop_message:
        if main_process:
            run_dir.write_json_atomic(out / RESULTS_FILE, {**results, "message": stop_message})
        print(stop_message, file=sys.stderr)
        return 1
    results["seconds"]["total"] = round(time.perf_counter() - start, 1)
    if main_process:
        model.save_adapter(REPROMPTER, out / REPROMPTER)
        run_dir.write_json_atomic(out / RESULTS_FILE, results)
        seconds = results["seconds"]["total"]
        print(f"reprompter adapter: {out / REPROMPTER}; results: {out / RESULTS_FILE} ({seconds} s)")
    return 0


def summarize_metrics(path: Path, window: int = 5) -> dict[str, Any]:
    """Reward, validity and agreement over the first and last `window` steps of metrics.jsonl (a resumed run's file
    holds every step once)."""
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def mean(key: str, part: list[dict[str, Any]]) -> float | None:
        values = [r[key] for r in part if key in r and r[key] is not None and math.isfinite(r[key])]
        return round(sum(values) / len(values), 4) if values else None

    keys = ("reward", "rlmt/valid", "rlmt/judge_no_answer", "fidelity/agreement", "fidelity/judge_prefers_failing",
            "fidelity/oracle_pass", "kl")
    return {
        "first_steps": {key: mean(key, rows[:window]) for key in keys},
        "last_steps": {key: mean(key, rows[-window:]) for key in keys},
        "all_steps": {key: mean(key, rows) for key in keys},
    }
