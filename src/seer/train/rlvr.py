"""`seer rlvr`: SEER stage 1. Train the `evaluator` LoRA adapter with verifiable rewards and a curriculum (GRPO).

    seer rlvr --config recipes/rlvr/shapeworld-tiny.yaml
    seer rlvr --config recipes/rlvr/shapeworld-tiny.yaml --resume                   # continue after an interruption
    seer rlvr --config recipes/rlvr/shapeworld-tiny.yaml --model_shape shapeworld-tiny --pair_generator renderer \
        --max_steps 2 --output_dir runs/rlvr-smoke                # plumbing only: random weights earn no reward

The evaluator learns to answer "does the first image match the prompt/instruction better than the second image?"
as ``<think> ... </think> <answer> Yes|No </answer>`` about image pairs from the model's own frozen generator. The
file reads top to bottom: output directory -> model and adapter -> verified pairs (cached) -> curriculum data ->
TRL's GRPOTrainer -> train -> final adapter. It writes into ``output_dir``:

- config.yaml (the resolved arguments; ``--config`` on it repeats the run), metrics.jsonl (one line per step:
  TRL's metrics plus ``curriculum/*`` and ``health/*``), results.json (pair counts, curriculum switch, timings);
- checkpoint-<step>/: TRL's state (optimizer, scheduler, RNG, trainer_state.json), ``evaluator/`` (the adapter, via
  ``save_adapter``) and curriculum.json; ``--resume`` continues from the newest complete one;
- evaluator/: the final adapter; pairs/: the pair cache (unless ``pairs_dir`` points elsewhere).

Algorithm (TRL's GRPOTrainer does the optimisation; the choices below are ours or the authors'):

- Rewards: format (strict) + accuracy (the authors' Yes/No reading), summed with ``reward_weights`` (`rl.rewards`);
  ``checklist_weight`` > 0 adds a third, not the paper's, for ShapeWorld items (docs/decisions.md).
- Loss: ``loss_type`` "grpo" (token mean per sequence, then batch mean) as in the authors' trainer; advantages
  normalised by the group's reward std; one update per rollout (``num_iterations`` 1), so the clip is inert.
- KL (k3) to the adapter-free base model with weight ``beta``: the base is SEER's frozen reference.
- LoRA on the language model's attention instead of the authors' full fine-tuning (DESIGN §3).
- Curriculum (`data.curriculum`): stage-1 prompt pairs, then stage-2 instruction pairs after
  ``curriculum_switch_step`` steps or once held-out stage-1 accuracy reaches ``curriculum_threshold``.
- Reward health (`rl.health`): zero-variance groups are logged; all-zero or non-finite rewards for
  ``max_bad_reward_steps`` steps stop the run with a message and exit status 1; constant rewards (every group
  without variance) for as long warn, or stop with ``constant_reward_action: stop``.
- Non-finite steps (`train.nonfinite`): a step whose loss or gradient is NaN/inf updates nothing and is logged
  (``health/nonfinite_steps``); ``max_nonfinite_steps`` in a row stop the run (exit 1), its last checkpoint intact.

Where this departs from plain TRL use (see docs/decisions.md): the trainer is built with ``beta=0`` and its ``beta``
set afterwards, because TRL 1.16 assumes a PeftModel it is given holds a pre-trained adapter named "default" to copy
as the reference; and the dataset is a `datasets.Dataset` of slot numbers whose rows are made when read
(``set_transform``), so the curriculum can change what a slot shows while training runs.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import transformers
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from seer.config import config_dict, save_config
from seer.data.build import generate_sets
from seer.data.curriculum import (
    INSTRUCTION_STAGE,
    PROMPT_STAGE,
    STAGE_NAMES,
    CurriculumState,
    SwitchRule,
    initial_state,
    needs_evaluation,
    pool_index,
    record_evaluation,
    slot_step,
    stage_at,
)
from seer.data.pairs import (
    FAILURE_KINDS,
    LiteralRenderer,
    Pair,
    PairSet,
    PairSettings,
    QuestionTemplates,
    build_or_load_pairs,
    oracle_view,
    summary_lines,
)
from seer.data.vie import VIEItem, load_vie
from seer.errors import SeerError
from seer.eval.base import take_stratified
from seer.eval.evaluator import Judgement, pairs_accuracy
from seer.models import UnifiedModel, load_umm, process_state
from seer.models.adapters import EVALUATOR, LoraSettings
from seer.models.janus import JanusUMM
from seer.rl.health import RewardHealthMonitor, RewardTap
from seer.rl.rewards import RLVR_REWARDS, RewardFunc, after_response_prefix, checklist_reward, completion_text
from seer.train import run_dir
from seer.train.grpo import CONSTANT_REWARD_HELP, MAX_NONFINITE_HELP, GuardedGRPOTrainer, build_grpo_trainer
from seer.worlds.shapeworld.checklist import Checklist
from seer.worlds.shapeworld.oracle import parse_image

# The tiny model's wording (its vocabulary is seer.worlds.shapeworld.corpus.corpus_words()); the Janus-Pro recipe
# uses the paper's English wording, system prompt and answer-format suffix instead. Question first, literal text
# last, as in the embedded model's pre-training VQA ("does the image show <prompt> ?"): with the prompt first it
# captions the images instead of answering (probed: 0 of 32 sampled answers in the format, against 28 of 32).
PROMPT_QUESTION = "does the first image match the prompt better than the second image ? prompt : {prompt}"
INSTRUCTION_QUESTION = (
    "does the first image match the instruction better than the second image ? "
    "instruction : {instruction} . prompt : {prompt}"
)
# Written as the start of every answer: which image "the first image ... better than the second image" means is a
# habit pre-training settles by chance (run 25 seed 0 reasoned about the second one); this settles it (run 26).
RESPONSE_PREFIX = "<think> the first image shows"
CURRICULUM_FILE, METRICS_FILE, RESULTS_FILE = "curriculum.json", "metrics.jsonl", "results.json"
# Keys that may differ between an interrupted run and its --resume (they do not change what is trained; a run
# directory may be moved; the health watchers' keys only say when to stop, and a run from before they existed lacks
# them).
RESUMABLE_CHANGES = ("resume", "overwrite", "output_dir", "device", "pair_batch_size", "eval_batch_size",
                     "constant_reward_action", "max_nonfinite_steps")  # fmt: skip
# What a run's config.yaml from before a key existed did, for those who read it (the judge of RLMT, the evaluator
# suite): such a run wrote no response prefix, whatever the default is now.
KEYS_BEFORE_THEY_EXISTED: dict[str, Any] = {"response_prefix": ""}


@dataclass
class RLVRArgs:
    """Arguments of `seer rlvr` (flat keys, the same in recipes and on the command line).

    The defaults are the embedded model's recipe (recipes/rlvr/shapeworld-tiny.yaml).
    """

    # Model
    backend: Literal["janus", "harmon"] = field(
        default="janus", metadata={"help": "Model backend: janus (Janus-Pro, the embedded model) or harmon."}
    )
    model: str | None = field(
        default=None,
        metadata={"help": "Model directory (seer pretrain output, a Janus or converted Harmon checkpoint); default: "
                          "embedded."},
    )  # fmt: skip
    model_shape: str | None = field(
        default=None,
        metadata={"help": "Random-weight model of this shape instead (shapeworld-tiny, janus-pro-1b, harmon-tiny, "
                          "harmon-1.5b): smoke runs."},
    )  # fmt: skip
    device: str = field(default="cpu", metadata={"help": "Device to train on (cpu, cuda, cuda:1, ...)."})
    dtype: Literal["float32", "bfloat16"] = field(default="float32", metadata={"help": "Weight dtype of the model."})
    bf16: bool = field(default=False, metadata={"help": "bfloat16 autocast in training (GPU)."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank of the evaluator adapter."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (scale alpha / r) of the evaluator adapter."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout of the evaluator adapter."})
    # Data and pairs
    train_file: str | None = field(
        default=None,
        metadata={"help": "VIE JSONL with spec and gold (seer data's train.jsonl); default: seer data's items."},
    )
    data_seed: int = field(default=0, metadata={"help": "seer data's seed, used when train_file is not given."})
    max_train_items: int | None = field(
        default=None, metadata={"help": "Use at most this many training items (spread over categories)."}
    )
    heldout_items: int = field(
        default=24, metadata={"help": "Training items set aside (never trained on) for held-out stage-1 accuracy."}
    )
    pairs_dir: str | None = field(
        default=None, metadata={"help": "Cache directory of built pairs; default: <output_dir>/pairs."}
    )
    stage2_failures: list[str] = field(
        default_factory=lambda: list(FAILURE_KINDS),
        metadata={"help": "Stage-2 failing reprompts: naive (instruction + prompt), omission, hallucination."},
    )
    pair_generator: Literal["model", "renderer"] = field(
        default="model",
        metadata={"help": "model: the model's frozen generator (SEER); renderer: exact renders (smoke runs)."},
    )
    pair_guidance_scale: float | None = field(
        default=None, metadata={"help": "CFG scale of the pair images; null: the model's default_guidance_scale."}
    )
    pair_temperature: float = field(
        default=1.0, metadata={"help": "Sampling temperature of the pair images; 0: greedy."}
    )
    pair_batch_size: int = field(default=64, metadata={"help": "Images per generation call when building pairs."})
    # The evaluator's prompt
    prompt_question: str = field(
        default=PROMPT_QUESTION, metadata={"help": "Stage-1 question; {prompt} is replaced by the item's prompt."}
    )
    instruction_question: str = field(
        default=INSTRUCTION_QUESTION, metadata={"help": "Stage-2 question, with {prompt} and {instruction}."}
    )
    answer_suffix: str = field(default="", metadata={"help": "Text after the question (e.g. the answer-format rule)."})
    system_prompt: str = field(
        default="", metadata={"help": "Text before the question (the first part of the user turn)."}
    )
    response_prefix: str = field(
        default=RESPONSE_PREFIX,
        metadata={"help": "Start of every answer, written for the evaluator ('' for none); it reasons on from there."},
    )
    # Curriculum
    curriculum_switch_step: int | None = field(
        default=30,
        metadata={"help": "Instruction pairs after this many steps (0: from the start; null: no step rule)."},
    )
    curriculum_threshold: float | None = field(
        default=0.9,
        metadata={"help": "Switch earlier once held-out stage-1 accuracy (greedy) reaches this (null: no such rule)."},
    )
    curriculum_eval_steps: int = field(
        default=10, metadata={"help": "Measure held-out accuracy every N steps (and print raw samples)."}
    )
    # GRPO
    max_steps: int = field(default=60, metadata={"help": "Optimiser steps."})
    prompts_per_step: int = field(
        default=4, metadata={"help": "Pairs (questions) per optimiser step, over all processes."}
    )
    num_generations: int = field(default=8, metadata={"help": "Answers sampled per question (the GRPO group size G)."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per optimiser step."})
    learning_rate: float = field(default=5e-4, metadata={"help": "AdamW learning rate of the LoRA weights."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "transformers scheduler name."})
    beta: float = field(default=0.4, metadata={"help": "Weight of the KL (k3) to the adapter-free base model."})
    epsilon: float = field(default=0.2, metadata={"help": "PPO clip range of the importance ratio."})
    loss_type: Literal["grpo", "dapo", "dr_grpo"] = field(
        default="grpo",
        metadata={"help": "TRL loss aggregation; grpo: token mean per answer, then batch mean (the authors')."},
    )
    max_completion_length: int = field(
        default=224, metadata={"help": "Token budget of a sampled answer (checklist thinks: ~100, up to 200)."}
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of answers (full softmax)."})
    reward_weights: list[float] = field(
        default_factory=lambda: [1.0, 1.0], metadata={"help": "Weights of the format and accuracy rewards (summed)."}
    )
    checklist_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of a third reward, not the paper's (ShapeWorld items only): the share of the "
                          "checklist steps an answer to an instruction pair gets right against the oracle's "
                          "(seer.worlds.shapeworld.checklist). 0: the paper's two rewards."},
    )  # fmt: skip
    max_bad_reward_steps: int = field(
        default=10, metadata={"help": "Stop after this many steps in a row of all-zero or non-finite rewards."}
    )
    constant_reward_action: Literal["warn", "stop"] = field(default="warn", metadata={"help": CONSTANT_REWARD_HELP})
    max_nonfinite_steps: int = field(default=5, metadata={"help": MAX_NONFINITE_HELP})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Trade compute for memory (large models)."})
    # Run
    output_dir: str = field(default="runs/rlvr", metadata={"help": "Where checkpoints, the adapter and logs go."})
    seed: int = field(default=0, metadata={"help": "Seed of the pairs, answer sampling, LoRA init and data order."})
    save_steps: int = field(default=20, metadata={"help": "Write a checkpoint every N steps."})
    eval_batch_size: int = field(
        default=32, metadata={"help": "Questions per greedy generation call (held-out accuracy)."}
    )
    resume: bool = field(
        default=False, metadata={"help": "Continue the run in output_dir from its newest complete checkpoint."}
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Replace the results of an earlier run in output_dir (the pair cache stays)."}
    )

    def __post_init__(self) -> None:
        if self.model is not None and self.model_shape is not None:
            raise ValueError("model and model_shape: expected at most one (a checkpoint, or a random-weight shape)")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite: expected at most one")
        at_least = {
            "max_steps": 1, "prompts_per_step": 1, "gradient_accumulation_steps": 1, "save_steps": 1,
            "max_completion_length": 1, "pair_batch_size": 1, "eval_batch_size": 1, "max_bad_reward_steps": 1,
            "max_nonfinite_steps": 1, "num_generations": 2, "heldout_items": 0, "max_train_items": 1,
        }  # fmt: skip
        for name, low in at_least.items():
            value = getattr(self, name)
            if value is not None and value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {value}")
        if len(self.reward_weights) != len(RLVR_REWARDS):
            raise ValueError(f"reward_weights: expected 2 weights (format, accuracy), got {self.reward_weights}")
        for name, value in (("learning_rate", self.learning_rate), ("temperature", self.temperature)):
            if value <= 0:
                raise ValueError(f"{name}: expected > 0, got {value}")
        if self.checklist_weight < 0:
            raise ValueError(f"checklist_weight: expected >= 0, got {self.checklist_weight}")
        if self.beta < 0 or self.epsilon <= 0:
            raise ValueError(f"beta / epsilon: expected beta >= 0 and epsilon > 0, got {self.beta} / {self.epsilon}")
        if self.curriculum_threshold is not None and self.heldout_items == 0:
            raise ValueError("curriculum_threshold: needs held-out pairs; set heldout_items > 0 or the threshold null")
        self.switch_rule()  # range checks of the curriculum keys
        self.templates()  # placeholder checks of the question keys
        PairSettings(failures=tuple(self.stage2_failures))  # failure kinds

    def switch_rule(self) -> SwitchRule:
        """The curriculum's switch rule."""
        return SwitchRule(self.curriculum_switch_step, self.curriculum_threshold, self.curriculum_eval_steps)

    def templates(self) -> QuestionTemplates:
        """How a pair becomes the evaluator's question."""
        return QuestionTemplates(
            self.prompt_question, self.instruction_question, self.answer_suffix, self.system_prompt,
            self.response_prefix,
        )  # fmt: skip

    def rewards(self) -> tuple[list[RewardFunc], list[float]]:
        """The reward functions and their weights: format and accuracy, then the checklist reward when weighted."""
        funcs, weights = list(RLVR_REWARDS.values()), list(self.reward_weights)
        if self.checklist_weight > 0:
            funcs.append(checklist_reward)
            weights.append(self.checklist_weight)
        return funcs, weights


ARG_TYPES = (RLVRArgs,)


# ---------------------------------------------------------------------------------------------------------------
# 1. Output directory


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint of a run in `out` (`run_dir.latest_checkpoint` with this stage's marker)."""
    return run_dir.latest_checkpoint(out, CURRICULUM_FILE)


def prepare_output_dir(args: RLVRArgs) -> Path | None:
    """Check ``output_dir`` against --resume/--overwrite (`run_dir.prepare_output_dir`); the checkpoint to resume."""
    return run_dir.prepare_output_dir(
        Path(args.output_dir), resume=args.resume, overwrite=args.overwrite, marker=CURRICULUM_FILE,
        config=config_dict(args), resumable=RESUMABLE_CHANGES,
        outputs=(EVALUATOR, METRICS_FILE, RESULTS_FILE, run_dir.CONFIG_FILE),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# 2. Model


def load_model(args: RLVRArgs) -> tuple[UnifiedModel, str]:
    """The model and a string identifying its weights (part of the pair cache key); a shape is seeded by ``seed``."""
    return load_umm(args.backend, args.model, args.model_shape, args.dtype, args.device, shape_seed=args.seed)


def check_vocabulary(tokenizer: Any, templates: QuestionTemplates) -> None:
    """Every word of the question keys must be a token of a word-level tokenizer (an unknown word reads as <unk>)."""
    if tokenizer.unk_token_id is None:
        return
    keys = {
        "prompt_question": templates.prompt_question,
        "instruction_question": templates.instruction_question,
        "answer_suffix": templates.answer_suffix,
        "system_prompt": templates.system_prompt,
        "response_prefix": templates.response_prefix,
    }
    for key, text in keys.items():
        for word in text.replace("{prompt}", " ").replace("{instruction}", " ").split():
            if tokenizer.unk_token_id in tokenizer(word, add_special_tokens=False)["input_ids"]:
                raise SeerError(f"recipe key '{key}': word {word!r} is not in the model's vocabulary")


# ---------------------------------------------------------------------------------------------------------------
# 3. Items and pairs


def load_items(args: RLVRArgs) -> tuple[list[VIEItem], list[VIEItem], str]:
    """(training items, held-out items, where they come from); the held-out items are never trained on."""
    if args.train_file is not None:
        items, where = load_vie(args.train_file), args.train_file
    else:
        items, where = generate_sets(args.data_seed, 25, 1)[0], f"seer data --seed {args.data_seed} (train)"
    shuffled = random.Random(f"seer-rlvr-heldout/{args.seed}").sample(items, len(items))
    heldout = take_stratified(shuffled, args.heldout_items, key=lambda item: item.category)
    held_ids = {item.id for item in heldout}
    train = [item for item in items if item.id not in held_ids]
    if args.max_train_items is not None:
        train = take_stratified(train, args.max_train_items, key=lambda item: (item.category, item.difficulty))
    if not train:
        raise SeerError(f"{where}: no training items left after setting {len(heldout)} aside (heldout_items)")
    return train, heldout, where


def pair_source(args: RLVRArgs, model: JanusUMM, model_id: str) -> tuple[JanusUMM | LiteralRenderer, PairSettings]:
    """What draws the pair images (the model's frozen generator, or the renderer) and the pair settings."""
    generator = model if args.pair_generator == "model" else LiteralRenderer(model.image_size)
    guidance = model.default_guidance_scale if args.pair_guidance_scale is None else args.pair_guidance_scale
    settings = PairSettings(
        seed=args.seed, guidance_scale=guidance, temperature=args.pair_temperature,
        failures=tuple(args.stage2_failures), batch_size=args.pair_batch_size,
        model_id=model_id if args.pair_generator == "model" else f"renderer:{model.image_size}",
    )  # fmt: skip
    return generator, settings


def oracle_checklists(pairs: PairSet, items: Sequence[VIEItem]) -> Callable[[Pair], Checklist | None]:
    """pair -> the oracle's checklist for the first image its question shows (`checklist_weight`): instruction pairs
    only (a prompt pair's answer is another checklist; None scores 0 for a whole group, so it changes no advantage),
    None where the oracle cannot read the image; each computed once."""
    by_id = {item.id: item for item in items}
    if missing := [item.id for item in items if not item.spec]:
        raise SeerError(f"checklist_weight: the oracle's checklist needs items with a spec; {missing[0]} has none")
    cache: dict[str, Checklist | None] = {}

    def checklist_of(pair: Pair) -> Checklist | None:
        if pair.stage != INSTRUCTION_STAGE:
            return None
        if pair.id not in cache:
            scene = parse_image(oracle_view(pairs.images(pair)[0]))
            # Concepts checked as wholes carry marks since corpus run30 (the shipped model's corpus, run33, has them).
            cache[pair.id] = None if scene is None else Checklist.of(scene, by_id[pair.item_id], wholes=True)
        return cache[pair.id]

    return checklist_of


# ---------------------------------------------------------------------------------------------------------------
# 4. Curriculum data: what TRL reads


class CurriculumData:
    """Slot i (one question of step ``slot_step(i)``) -> a pair of that step's stage, as a TRL row.

    A row is a conversational prompt (one user turn; TRL puts the two images before the text, as
    `UnifiedModel.format_prompt` does), the two images in the order the question shows them, the verified
    ``solution`` and the pair's labels (reward functions receive them as keyword lists).
    """

    def __init__(self, pairs: PairSet, templates: QuestionTemplates, prompts_per_step: int, seed: int,
                 state: CurriculumState, checklist_of: Callable[[Pair], Any] | None = None) -> None:  # fmt: skip
        self.pairs = pairs
        self.checklist_of = checklist_of  # pair -> the oracle's checklist for its first image (checklist reward)
        self.pools = {stage: pairs.stage(stage) for stage in (PROMPT_STAGE, INSTRUCTION_STAGE)}
        self.templates = templates
        self.prompts_per_step = prompts_per_step
        self.seed = seed
        self.state = state
        self.last_step_read = 0  # the furthest step whose rows were made: a switch must come after it

    def check_pools(self, rule: SwitchRule, max_steps: int) -> None:
        """SeerError if a stage the run can reach has no pairs (every candidate dropped by the oracle)."""
        needed = {PROMPT_STAGE} if stage_at(1, self.state) == PROMPT_STAGE else set()
        if rule.threshold is not None or (rule.switch_step is not None and rule.switch_step < max_steps):
            needed.add(INSTRUCTION_STAGE)
        for stage in sorted(needed):
            if not self.pools[stage]:
                raise SeerError(
                    f"{self.pairs.root}: no stage-{stage} ({STAGE_NAMES[stage]}) pairs were kept: the oracle rejected "
                    "every candidate (see summary.json); check the generator, or change the curriculum keys"
                )

    def row(self, slot: int) -> dict[str, Any]:
        """The TRL row of one slot, with the curriculum's current decisions."""
        step = slot_step(slot, self.prompts_per_step)
        self.last_step_read = max(self.last_step_read, step)
        stage = stage_at(step, self.state)
        pool = self.pools[stage]
        pair = pool[pool_index(slot, len(pool), self.seed, stage)]
        first, second = self.pairs.images(pair)
        return {
            "prompt": [{"role": "user", "content": self.templates.text(pair)}],
            "images": [first, second],
            "solution": pair.answer,
            "stage": stage,
            "pair_id": pair.id,
            "bad_kind": pair.bad_kind,
            **({"checklist": self.checklist_of(pair)} if self.checklist_of else {}),
        }

    def dataset(self, max_steps: int) -> Dataset:
        """One slot per question of the whole run; rows are made when the data loader reads them."""
        slots = Dataset.from_dict({"slot": list(range(max_steps * self.prompts_per_step))})
        slots.set_transform(self._rows)
        return slots

    def _rows(self, batch: dict[str, list[int]]) -> dict[str, list[Any]]:
        rows = [self.row(slot) for slot in batch["slot"]]
        return {key: [r[key] for r in rows] for key in rows[0]}


# ---------------------------------------------------------------------------------------------------------------
# 5. Callbacks: curriculum, checkpoints, progress


class CurriculumCallback(TrainerCallback):
    """Measures held-out stage-1 accuracy when the switch rule needs it, decides the switch, and logs the stage."""

    def __init__(
        self, data: CurriculumData, rule: SwitchRule, measure: Callable[[], tuple[float, list[Judgement]]]
    ) -> None:
        self.data = data
        self.rule = rule
        self.measure = measure
        self.fields: dict[str, float] = {}

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        step = state.global_step + 1  # the step about to run
        if self.data.state.first_stage2_step == step and step > 1:
            reason = self.data.state.reason
            tqdm.write(f"curriculum: step {step} is the first on stage-2 (instruction) pairs ({reason} rule)")

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        step = state.global_step
        self.fields = {
            "curriculum/stage": float(stage_at(step, self.data.state)),
            "curriculum/switch": float(self.data.state.first_stage2_step == step),
        }
        if not needs_evaluation(step, self.rule, self.data.state):
            return
        value, judgements = self.measure()
        before = self.data.state
        self.data.state = record_evaluation(step, value, self.rule, before)
        self.fields["curriculum/heldout_accuracy"] = value
        tqdm.write(f"curriculum: held-out stage-1 accuracy after step {step}: {value:.3f} (n={len(judgements)})")
        for j in judgements[:2]:  # raw samples: exploits and bugs show there first
            tqdm.write(f"  expected {j.expected}: {j.completion!r}")
        if self.data.state.first_stage2_step != before.first_stage2_step:
            first = self.data.state.first_stage2_step
            if self.data.last_step_read >= first:  # a row already read would change stage: not reproducible
                raise RuntimeError(
                    f"the data loader read step {self.data.last_step_read}'s rows before the switch decided after "
                    f"step {step}; a read-ahead of more than one step is not supported (dataloader_num_workers=0)"
                )
            tqdm.write(
                f"curriculum: {value:.3f} >= curriculum_threshold {self.rule.threshold}: "
                f"stage-2 (instruction) pairs from step {first}"
            )

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
        logs: dict[str, float] | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        run_dir.add_step_fields(state, logs, self.fields)


class ProgressCallback(run_dir.StageProgress):
    """RLVR's progress bar (reward, format, accuracy, KL, zero-variance groups, stage) and raw answers."""

    desc = "rlvr"

    def __init__(self, metrics_path: Path, tap: RewardTap, sample_every: int) -> None:
        super().__init__(metrics_path, sample_every)
        self.tap = tap

    def postfix(self, logs: dict[str, float]) -> dict[str, Any]:
        return {
            "reward": logs.get("reward"), "format": logs.get("rewards/format_reward/mean"),
            "acc": logs.get("rewards/accuracy_reward/mean"), "kl": logs.get("kl"),
            "zero_var": logs.get("health/zero_variance_groups"), "stage": logs.get("curriculum/stage"),
        }  # fmt: skip

    def print_samples(self, step: int, args: TrainingArguments) -> None:
        solutions = self.tap.last_kwargs.get("solution", [])
        for completion, solution in list(zip(self.tap.last_completions, solutions))[:2]:
            tqdm.write(f"sample (step {step}, expected {solution}): {completion_text(completion)!r}")


# ---------------------------------------------------------------------------------------------------------------
# 6. The trainer and the run


def build_trainer(
    model: JanusUMM, args: RLVRArgs, dataset: Dataset, reward_funcs: Sequence[Any], reward_weights: Sequence[float],
    callbacks: list[TrainerCallback],
) -> GuardedGRPOTrainer:
    """TRL's GRPOTrainer on the model's PEFT module, with the evaluator adapter active and trainable."""
    return build_grpo_trainer(model, args, dataset, reward_funcs, reward_weights, callbacks,
                              response_prefix=args.response_prefix)  # fmt: skip


def main(args: RLVRArgs) -> int:
    """Run `seer rlvr`; 0 on success, 1 when reward health or non-finite steps stopped the run."""
    transformers.logging.set_verbosity_error()  # per-call generation warnings would bury the progress output
    resume_from = prepare_output_dir(args)  # before loading anything: a refused output_dir fails fast
    if args.train_file is not None:
        load_vie(args.train_file)  # so does a malformed dataset: before a model load that may take minutes
    model, model_id = load_model(args)
    return run(args, model, model_id, resume_from)


def run(args: RLVRArgs, model: JanusUMM, model_id: str, resume_from: Path | None = None) -> int:
    """Train `model`'s evaluator adapter as `args` say (`main` without the loading; tests pass their own model)."""
    start = time.perf_counter()
    out = Path(args.output_dir)
    save_config(out, args)
    transformers.set_seed(args.seed)  # the LoRA init draws from the global RNG
    templates = args.templates()
    check_vocabulary(model.processor.tokenizer, templates)
    train_items, heldout_items, where = load_items(args)
    generator, settings = pair_source(args, model, model_id)
    cache = Path(args.pairs_dir) if args.pairs_dir else out / "pairs"
    pairs_start = time.perf_counter()
    with process_state(args.device).main_process_first():  # the main process builds the cache, the others then read it
        train_pairs = build_or_load_pairs(generator, train_items, cache, "train", settings, where=where)
        heldout_pairs = None
        if heldout_items:
            stage_1 = replace(settings, stages=(PROMPT_STAGE,))
            heldout_pairs = build_or_load_pairs(generator, heldout_items, cache, "heldout", stage_1, where=where)
    pairs_seconds = time.perf_counter() - pairs_start
    for pair_set, name in ((train_pairs, "train"), (heldout_pairs, "held-out")):
        for line in summary_lines(pair_set, name) if pair_set else ():
            print(line)
    if heldout_pairs is not None and not heldout_pairs.pairs:
        if args.curriculum_threshold is not None:
            raise SeerError(
                f"{heldout_pairs.root}: no held-out pair was kept, so curriculum_threshold cannot be measured; "
                "set curriculum_threshold to null or check the generator"
            )
        heldout_pairs = None

    model.add_adapter(EVALUATOR, LoraSettings(r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout))
    model.activate_adapter(EVALUATOR, trainable=True)
    rule = args.switch_rule()
    state = initial_state(rule)
    if resume_from is not None:
        state = CurriculumState.from_dict(json.loads((resume_from / CURRICULUM_FILE).read_text(encoding="utf-8")))
        print(f"resuming from {resume_from}")
    checklist_of = oracle_checklists(train_pairs, train_items) if args.checklist_weight > 0 else None
    data = CurriculumData(train_pairs, templates, args.prompts_per_step, args.seed, state, checklist_of)
    data.check_pools(rule, args.max_steps)

    def measure() -> tuple[float, list[Judgement]]:  # only called with held-out pairs (checked above)
        return pairs_accuracy(
            model, heldout_pairs, templates, batch_size=args.eval_batch_size, max_new_tokens=args.max_completion_length
        )

    tap = RewardTap()
    funcs, weights = args.rewards()
    health = RewardHealthMonitor(tap, weights, args.num_generations, args.max_bad_reward_steps,
                                 constant_action=args.constant_reward_action)  # fmt: skip
    callbacks: list[TrainerCallback] = [
        health,
        CurriculumCallback(data, rule, measure),
        run_dir.AdapterCheckpoint(model, EVALUATOR, CURRICULUM_FILE, lambda state: data.state.to_dict()),
        ProgressCallback(out / METRICS_FILE, tap, sample_every=args.curriculum_eval_steps),
    ]
    # The tap records whole answers (prefix included): the health checks and printed samples read those.
    reward_funcs = after_response_prefix(args.response_prefix, tap.wrap(funcs))
    trainer = build_trainer(model, args, data.dataset(args.max_steps), reward_funcs, weights, callbacks)
    train_start = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    train_seconds = time.perf_counter() - train_start

    stop_message = health.stop_message or trainer.nonfinite.stop_message
    results: dict[str, Any] = {
        "status": "stopped" if stop_message else "completed",
        "steps": trainer.state.global_step,
        "pairs": {"train": train_pairs.summary, "heldout": heldout_pairs.summary if heldout_pairs else None},
        "curriculum": data.state.to_dict(),
        "seconds": {"pairs": round(pairs_seconds, 1), "training": round(train_seconds, 1)},
    }
    main_process = trainer.is_world_process_zero()
    if stop_message:
        if main_process:
            run_dir.write_json_atomic(out / RESULTS_FILE, {**results, "message": stop_message})
        print(stop_message, file=sys.stderr)
        return 1
    if heldout_pairs is not None:
        results["heldout_accuracy"] = measure()[0]
    results["seconds"]["total"] = round(time.perf_counter() - start, 1)
    if main_process:
        model.save_adapter(EVALUATOR, out / EVALUATOR)
        run_dir.write_json_atomic(out / RESULTS_FILE, results)
        print(f"evaluator adapter: {out / EVALUATOR}; results: {out / RESULTS_FILE} ({results['seconds']['total']} s)")
    return 0
