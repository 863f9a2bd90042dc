"""`seer pretrain`: pre-train the embedded ShapeWorld UMM from scratch, the image tokenizer first, then the LM.

    seer pretrain --config recipes/pretrain/debug_cpu.yaml --output_dir runs/debug          # seconds, on a CPU
    seer pretrain --config recipes/pretrain/shapeworld-tiny.yaml --output_dir runs/tiny     # the shipped model, 1 GPU
    accelerate launch --multi_gpu --num_processes 4 -m seer.cli pretrain --config ...       # DDP on 4 GPUs
    seer pretrain --config runs/tiny/config.yaml --resume                                   # continue a killed run
    seer pretrain --config ... --init_from runs/tiny/model --vq_steps 0 --lm_steps N --lr L # continued pre-training

Stage A trains the VQ tokenizer (`seer.train.vq`) on random rendered scenes and measures it with the oracle
(encode -> decode -> parse = the same scene). Stage B freezes it and trains everything else on the corpus
(`seer.worlds.shapeworld.corpus`, losses in `seer.train.lm_losses`): every step holds a fixed number of examples
of each task, in the proportions of TASK_WEIGHTS (stratified, so no step lacks a task and DDP never sees an
unused parameter); t2i examples go through the generation head, the rest (image questions, packed text documents)
through the text head, and the two losses are summed.

Determinism: the batch of step s is a pure function of (seed, stage, s, process rank), built in DataLoader worker
processes, so `--resume` needs no data state and ends with the weights an uninterrupted run ends with.
Evaluation holds out a hashed fraction of scenes from the t2i and caption training examples; the t2i and caption
figures are measured on those scenes, by the oracle and the literal grammar, never by the model.

Outputs in `output_dir`: config.yaml (the resolved configuration: `--config` on it re-runs the job),
metrics.jsonl (one flat dict per log or eval step), samples/ (t2i image grids at each evaluation),
checkpoints/ (atomic, the last `save_total_limit` kept) and model/ (the final `save_pretrained` directory,
loadable with `JanusUMM.from_pretrained`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast
from PIL import Image
from torch import nn
from tqdm.auto import tqdm
from transformers import JanusProcessor
from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup

from seer.config import config_dict, save_config
from seer.errors import SeerError
from seer.formats import VERDICTS, parse_answer
from seer.models.janus import JanusUMM
from seer.train import checkpoint as ckpt
from seer.train.lm_losses import (
    drop_prompts,
    image_tokens,
    t2i_loss,
    t2i_prompt_batch,
    text_batch,
    text_loss,
    verdict_weights,
)
from seer.train.vq import VQBatches, VQObjective, eval_scenes, reconstruction_exact_rate, scene_pixels
from seer.worlds.shapeworld.concepts import LEXICON
from seer.worlds.shapeworld.corpus import (
    CAPTION_QUESTIONS,
    CORPUS_VERSIONS,
    TASK_WEIGHTS,
    Example,
    corpus_words,
    sample_example,
    sample_yes_no,
    use_corpus,
)
from seer.worlds.shapeworld.grammar import describe, try_parse
from seer.worlds.shapeworld.oracle import parse_image
from seer.worlds.shapeworld.render import render
from seer.worlds.shapeworld.scene import MAX_OBJECTS, Scene, random_scene

YES_NO_MAX_TOKENS = 192  # a yes/no think restates the question: 4-object scenes need ~120 tokens


@dataclass
class PretrainArgs:
    """Arguments of `seer pretrain`. Batch sizes are per process (the global batch is times the process count)."""

    # Run
    output_dir: str | None = field(
        default=None, metadata={"help": "Directory for config, metrics, checkpoints, model."}
    )
    overwrite: bool = field(
        default=False, metadata={"help": "Start over in a non-empty output_dir (deletes our files)."}
    )
    resume: bool = field(
        default=False, metadata={"help": "Continue from the latest complete checkpoint in output_dir."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the initial weights and of every batch."})
    model_shape: str = field(default="shapeworld-tiny", metadata={"help": "Model shape (seer.models.janus.SHAPES)."})
    corpus: str = field(
        default="run33",
        metadata={"help": "Corpus version (corpus.CORPUS_VERSIONS; run33: the shipped model's; others: other runs' "
                          "in benchmarks/RESULTS.md)."},
    )
    init_from: str | None = field(
        default=None,
        metadata={"help": "Continue pre-training this model directory (a `seer pretrain` model/) instead of random "
                  "weights (model_shape is then unused); with vq_steps 0 its image tokenizer is kept as it is."},
    )  # fmt: skip
    mixed_precision: Literal["no", "bf16"] = field(
        default="no", metadata={"help": "bf16 autocast for training forwards (GPU); 'no' is fp32 (CPU, tests)."}
    )
    num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes building batches (0: inline)."})
    log_steps: int = field(default=10, metadata={"help": "Log losses to metrics.jsonl and the bar every N steps."})
    save_steps: int = field(default=500, metadata={"help": "Checkpoint every N steps of each stage (and at its end)."})
    save_total_limit: int = field(default=2, metadata={"help": "Checkpoints kept (older ones are deleted)."})
    time_limit_minutes: float = field(
        default=0.0,
        metadata={
            "help": "Stop training cleanly after this much wall time (0: no limit): checkpoint, final eval and save; "
            "`--resume` then finishes the run exactly as an uninterrupted one would."
        },
    )
    # Optimisation (both stages)
    warmup_ratio: float = field(default=0.03, metadata={"help": "Linear warm-up, as a fraction of a stage's steps."})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "Cosine decay floor, as a fraction of the peak lr."})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay of matrices (not norms/biases)."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    max_nonfinite_steps: int = field(
        default=5,
        metadata={
            "help": "A step whose gradient is NaN or infinite is skipped (no update) and logged; this many such "
            "steps in a row stop the run (exit 1), its last checkpoint intact."
        },
    )
    # Stage A: VQ image tokenizer
    vq_steps: int = field(default=1000, metadata={"help": "Optimiser steps of the VQ stage (0: skip it)."})
    vq_batch_size: int = field(default=64, metadata={"help": "Images per VQ step and process."})
    vq_lr: float = field(default=1e-3, metadata={"help": "Peak learning rate of the VQ stage."})
    vq_commitment: float = field(default=0.25, metadata={"help": "Weight of the VQ commitment loss."})
    vq_restart_steps: int = field(
        default=0,
        metadata={
            "help": "Every N VQ steps of the first half, move codes that no image of the batch used onto latents "
            "(against codebook collapse; 0: off)."
        },
    )
    vq_eval_steps: int = field(default=0, metadata={"help": "Oracle round-trip eval every N VQ steps (0: at end)."})
    vq_eval_scenes: int = field(default=500, metadata={"help": "Random scenes in the VQ oracle evaluation."})
    # Stage B: language model
    lm_steps: int = field(default=2000, metadata={"help": "Optimiser steps of the LM stage (0: skip it)."})
    batch_size: int = field(
        default=64, metadata={"help": "Examples per LM step and process, split over the tasks by TASK_WEIGHTS."}
    )
    lr: float = field(default=1e-3, metadata={"help": "Peak learning rate of the LM stage."})
    cfg_drop: float = field(
        default=0.1, metadata={"help": "Fraction of t2i prompts replaced by the unconditional CFG prompt."}
    )
    t2i_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the t2i loss (the text loss has 1)."})
    verdict_loss_weight: float = field(
        default=1.0, metadata={"help": "Weight of the Yes/No verdict tokens in the text loss (other tokens have 1)."}
    )
    held_out_fraction: float = field(
        default=0.02, metadata={"help": "Fraction of scenes (by hash) never used as t2i/caption training examples."}
    )
    # Evaluation (stage B)
    eval_steps: int = field(default=0, metadata={"help": "Evaluate every N LM steps (0: only at the end)."})
    eval_samples: int = field(default=100, metadata={"help": "Prompts per t2i group, captions, and knowledge QAs."})
    eval_batch_size: int = field(default=128, metadata={"help": "Batch size of evaluation generation."})
    eval_guidance_scale: float = field(
        default=5.0,
        metadata={
            "help": "CFG scale of the t2i evaluation; also saved as the model's own default (generation_config.json "
            "guidance_scale), which `generate_images` uses when not given one."
        },
    )
    eval_do_sample: bool = field(
        default=True, metadata={"help": "t2i evaluation samples (seeded) with CFG; false: greedy with CFG."}
    )
    eval_max_new_tokens: int = field(default=96, metadata={"help": "Token limit of caption and knowledge answers."})
    eval_print_samples: int = field(default=4, metadata={"help": "Raw samples printed per evaluation group."})

    def __post_init__(self) -> None:
        if self.output_dir is None:
            raise ValueError("output_dir: required (a directory for the run's outputs)")
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite: pass one of them, not both")
        if self.corpus not in CORPUS_VERSIONS:
            raise ValueError(f"corpus: expected one of {sorted(CORPUS_VERSIONS)}, got {self.corpus!r}")
        if self.batch_size < len(TASK_WEIGHTS):
            raise ValueError(
                f"batch_size: expected at least {len(TASK_WEIGHTS)} (one example per task), got {self.batch_size}"
            )
        for name in ("vq_steps", "lm_steps", "num_workers", "eval_steps", "vq_eval_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)}")
        for name in ("log_steps", "save_steps", "vq_batch_size", "eval_batch_size", "vq_eval_scenes",
                     "max_nonfinite_steps"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        for name in ("cfg_drop", "held_out_fraction", "warmup_ratio", "min_lr_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a number in [0, 1], got {getattr(self, name)}")


ARG_TYPES = (PretrainArgs,)
OWNED = ("config.yaml", "metrics.jsonl", "checkpoints", "samples", "model")  # what --overwrite deletes
# Settings that do not change the trained weights: a resumed run may differ in these without a warning.
RUN_KEYS = frozenset(
    {"output_dir", "overwrite", "resume", "num_workers", "log_steps", "save_steps", "save_total_limit"}
    | {"time_limit_minutes", "vq_eval_steps", "vq_eval_scenes", "max_nonfinite_steps"}
    | {name for name in PretrainArgs.__dataclass_fields__ if name.startswith("eval_")}
)


# ---- data ----


def task_counts(batch_size: int, weights: dict[str, float] = TASK_WEIGHTS) -> dict[str, int]:
    """Examples per task in a batch: one each, the rest in proportion to `weights` (largest remainders)."""
    total = sum(weights.values())
    spare = batch_size - len(weights)
    shares = {task: spare * w / total for task, w in weights.items()}
    counts = {task: 1 + int(s) for task, s in shares.items()}
    by_remainder = sorted(weights, key=lambda t: shares[t] - int(shares[t]), reverse=True)
    for task in by_remainder[: batch_size - sum(counts.values())]:
        counts[task] += 1
    return counts


def is_held_out(scene: Scene, fraction: float) -> bool:
    """Whether `scene` belongs to the evaluation-only part of the world (a stable hash of its literal prompt)."""
    digest = hashlib.sha256(describe(scene).encode()).digest()
    return int.from_bytes(digest[:8], "big") < fraction * 2**64


def training_example(task: str, rng: random.Random, held_out_fraction: float) -> Example:
    """A corpus example of `task`; t2i and caption examples never show a held-out scene."""
    while True:
        example = sample_example(task, rng)
        if task not in ("t2i", "caption") or not is_held_out(example.scenes[0], held_out_fraction):
            return example


def held_out_scenes(seed: int, n_objects: int | None, count: int, fraction: float) -> list[Scene]:
    """Up to `count` distinct held-out scenes with `n_objects` objects (None: 1-4), for evaluation."""
    rng = random.Random(f"eval-{seed}-{n_objects}")
    found: dict[Scene, None] = {}
    for _ in range(count * 2000):  # 1-object scenes are few: stop when the held-out pool runs dry
        scene = random_scene(rng, n_objects=n_objects or rng.randint(1, MAX_OBJECTS))
        if fraction == 0 or is_held_out(scene, fraction):
            found[scene] = None
            if len(found) == count:
                break
    return list(found)


class LMBatches(torch.utils.data.Dataset):
    """Batch of LM step `s` as tensors, a pure function of (seed, s, rank); indexed by step (see VQBatches)."""

    def __init__(self, processor: JanusProcessor, args: PretrainArgs, rank: int, image_size: int) -> None:
        self.processor, self.rank, self.image_size = processor, rank, image_size
        self.seed, self.cfg_drop, self.held_out = args.seed, args.cfg_drop, args.held_out_fraction
        self.corpus = args.corpus
        self.counts = task_counts(args.batch_size)
        image_processor = processor.image_processor
        self.mean, self.std = image_processor.image_mean, image_processor.image_std

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        use_corpus(self.corpus)  # here, not in __init__: a worker process may start without the parent's setting
        rng = random.Random(f"lm-{self.seed}-{step}-{self.rank}")
        examples = {t: [training_example(t, rng, self.held_out) for _ in range(n)] for t, n in self.counts.items()}
        t2i = examples.pop("t2i")
        t2i_ids, t2i_mask = t2i_prompt_batch(self.processor, [e.prompt for e in t2i])
        drop = torch.tensor([rng.random() < self.cfg_drop for _ in t2i])
        texts = [e for group in examples.values() for e in group]  # image questions and packed text documents
        documents = [[*e.context, (e.prompt, e.target)] for e in texts]
        text = text_batch(self.processor, documents, [len(e.scenes) for e in texts], [e.given for e in texts])
        return {
            "t2i_ids": drop_prompts(t2i_ids, drop, self.processor),
            "t2i_mask": t2i_mask,
            "t2i_pixels": scene_pixels([e.scenes[0] for e in t2i], self.mean, self.std, self.image_size),
            "text_ids": text["input_ids"],
            "text_mask": text["attention_mask"],
            "answer_mask": text["answer_mask"],
            "text_pixels": scene_pixels([s for e in texts for s in e.scenes], self.mean, self.std, self.image_size),
        }


class LMObjective(nn.Module):
    """Stage B's losses in one forward (what DDP wraps): t2i on the frozen VQ's tokens, plus the answer loss."""

    def __init__(self, umm: JanusUMM, t2i_loss_weight: float, verdict_loss_weight: float = 1.0) -> None:
        super().__init__()
        self.janus = umm.janus  # registered, so DDP and the optimizer see its parameters
        self.verdict_ids = umm.processor.tokenizer.convert_tokens_to_ids(list(VERDICTS))
        self.verdict_loss_weight = verdict_loss_weight
        self.umm = umm  # not a module: its methods run on the same weights
        self.t2i_loss_weight = t2i_loss_weight

    def forward(
        self,
        t2i_ids: torch.Tensor,  # (B1, T1) left-padded prompts ending in BOI (some dropped to unconditional)
        t2i_mask: torch.Tensor,  # (B1, T1)
        t2i_pixels: torch.Tensor,  # (B1, 3, H, W) the images to generate, normalised
        text_ids: torch.Tensor,  # (B2, T2) right-padded documents
        text_mask: torch.Tensor,  # (B2, T2)
        answer_mask: torch.Tensor,  # (B2, T2) True at trained tokens
        text_pixels: torch.Tensor,  # (N, 3, H, W) the images of the documents, in reading order
    ) -> dict[str, torch.Tensor]:
        t2i = t2i_loss(self.umm, t2i_ids, t2i_mask, image_tokens(self.janus, t2i_pixels))
        weights = verdict_weights(text_ids, self.verdict_ids, self.verdict_loss_weight)
        text = text_loss(self.janus, text_ids, text_mask, answer_mask, text_pixels, weights)
        return {"loss": self.t2i_loss_weight * t2i + text, "t2i_loss": t2i, "text_loss": text}


# ---- evaluation ----


def _verdicts(title: str, rows: list[tuple[bool, str]], limit: int) -> float:
    """Print `title` with the exact rate and the first `limit` raw samples (misses first); returns the rate."""
    rate = sum(ok for ok, _ in rows) / max(1, len(rows))
    tqdm.write(f"  {title}: {rate:.3f} ({sum(ok for ok, _ in rows)}/{len(rows)})")
    for ok, line in sorted(rows, key=lambda r: r[0])[:limit]:
        tqdm.write(f"    {'ok  ' if ok else 'MISS'} {line}")
    return rate


def evaluate_tokenizer(umm: JanusUMM, args: PretrainArgs) -> dict[str, float]:
    """The VQ's oracle round-trip exact rate on random scenes."""
    report = reconstruction_exact_rate(umm, eval_scenes(args.seed, args.vq_eval_scenes), args.eval_batch_size)
    rows = [
        (read == scene, f"{describe(scene)} -> {describe(read) if read else 'unreadable'}")
        for scene, read in zip(report.scenes, report.readings)
    ]
    return {"eval/vq_exact": _verdicts("VQ encode->decode, oracle exact", rows, args.eval_print_samples)}


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _normalise(umm: JanusUMM, text: str) -> str:
    """Text as the word tokenizer decodes it (punctuation split off, single spaces)."""
    return umm.tokenizer.decode(umm.tokenizer(text, add_special_tokens=False)["input_ids"])


def evaluate_lm(umm: JanusUMM, args: PretrainArgs, grid_path: Path) -> dict[str, Any]:
    """Held-out t2i exact rates (oracle), caption exact rate (grammar) and knowledge-QA accuracy, with raw samples."""
    metrics: dict[str, Any] = {}
    mode = f"{'sampled' if args.eval_do_sample else 'greedy'}, CFG {args.eval_guidance_scale}"
    grid: list[Image.Image] = []
    for n in (1, 3):
        scenes = held_out_scenes(args.seed, n, args.eval_samples, args.held_out_fraction)
        prompts = [describe(s) for s in scenes]
        images: list[Image.Image] = []
        for i, chunk in enumerate(_chunks(prompts, args.eval_batch_size)):
            seeds = [args.seed * 1_000_003 + i * args.eval_batch_size + j for j in range(len(chunk))]
            out = umm.generate_images(
                chunk, seeds=seeds, guidance_scale=args.eval_guidance_scale, do_sample=args.eval_do_sample
            )
            images += out.images
        reads = [parse_image(img) for img in images]
        rows = [(r == s, f"{p!r} -> {describe(r) if r else 'unreadable'}") for p, s, r in zip(prompts, scenes, reads)]
        metrics[f"eval/t2i_exact_{n}obj"] = _verdicts(
            f"t2i {n}-object ({mode}), oracle exact", rows, args.eval_print_samples
        )
        grid += images[:16]
    metrics["eval/t2i_mode"] = mode
    _save_grid(grid, grid_path, columns=16)

    scenes = held_out_scenes(args.seed + 1, None, args.eval_samples, args.held_out_fraction)
    question = CAPTION_QUESTIONS[0]
    rows = []
    for chunk in _chunks(scenes, args.eval_batch_size):
        images = [[render(s, umm.image_size)] for s in chunk]
        out = umm.generate_text(
            [question] * len(chunk), images, max_new_tokens=args.eval_max_new_tokens, do_sample=False
        )
        rows += [(try_parse(t) == s, f"{describe(s)!r} -> {t!r}") for s, t in zip(chunk, out.texts)]
    metrics["eval/caption_exact"] = _verdicts("caption (greedy), grammar exact", rows, args.eval_print_samples)

    pairs = [(q, a) for concept in LEXICON for q, a in concept.qa]
    random.Random(f"eval-qa-{args.seed}").shuffle(pairs)
    pairs = pairs[: args.eval_samples]
    rows = []
    for chunk in _chunks(pairs, args.eval_batch_size):
        out = umm.generate_text([q for q, _ in chunk], max_new_tokens=args.eval_max_new_tokens, do_sample=False)
        for (q, a), text in zip(chunk, out.texts):
            parsed = parse_answer(text)
            ok = parsed is not None and parsed[1] == _normalise(umm, a)
            rows.append((ok, f"{q!r} -> {text!r}" + ("" if ok else f" (expected answer {a!r})")))
    metrics["eval/knowledge_acc"] = _verdicts("knowledge QA (greedy), answer exact", rows, args.eval_print_samples)

    # Yes/no questions about one image or one of two: the skill the evaluator's pairwise judging builds on.
    rng = random.Random(f"eval-vqa-{args.seed}")
    examples = [sample_yes_no(task, rng) for task in ("vqa", "two_images") for _ in range(args.eval_samples // 2)]
    rows = []
    for chunk in _chunks(examples, args.eval_batch_size):
        images = [[render(s, umm.image_size) for s in e.scenes] for e in chunk]
        prompts = [e.prompt for e in chunk]
        out = umm.generate_text(prompts, images, max_new_tokens=YES_NO_MAX_TOKENS, do_sample=False)
        for e, text in zip(chunk, out.texts):
            parsed, expected = parse_answer(text), parse_answer(e.target)
            rows.append((parsed is not None and parsed[1] == expected[1], f"{e.prompt!r} -> {text!r}"))
    metrics["eval/yes_no_acc"] = _verdicts("yes/no VQA (greedy), verdict right", rows, args.eval_print_samples)
    return metrics


def _save_grid(images: list[Image.Image], path: Path, columns: int) -> None:
    """Paste images into a grid PNG (scaled 2x for viewing)."""
    if not images:
        return
    w, h = images[0].size
    rows = math.ceil(len(images) / columns)
    grid = Image.new("RGB", (w * min(columns, len(images)), h * rows), "white")
    for i, img in enumerate(images):
        grid.paste(img, ((i % columns) * w, (i // columns) * h))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.resize((grid.width * 2, grid.height * 2), Image.NEAREST).save(path)


# ---- the training loop (one function for both stages) ----


class RunLog:
    """metrics.jsonl of the main process: one flat dict per line, flushed at once (a killed run loses nothing)."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int, stage_finished: bool = False) -> None:
        """Drop records of steps after `step` (what a killed run logged past its last checkpoint). With
        `stage_finished` (the checkpoint is its stage's last), also drop the evaluation at `step`: a stage's final
        evaluation is logged after its last checkpoint, and --resume runs it again."""

        def kept_record(record: dict[str, Any]) -> bool:
            at = record.get("step", 0)
            evaluation = "lr" not in record and "stopped_early" not in record  # neither a step's nor a stop's record
            return at < step or (at == step and not (stage_finished and evaluation))

        if self.enabled and self.path.is_file():
            lines = self.path.read_text(encoding="utf-8").splitlines()
            kept = [line for line in lines if line.strip() and kept_record(json.loads(line))]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
            os.replace(tmp, self.path)


@dataclass
class Stage:
    """What differs between the two stages; `run_stage` does the rest."""

    name: str  # "vq" or "lm": the checkpoint's stage and the metrics' prefix
    objective: nn.Module  # forward(**batch) -> {"loss": ..., other scalars to log}
    batches: torch.utils.data.Dataset  # step -> batch dict
    steps: int
    offset: int  # global step before this stage's first step (checkpoints are numbered globally)
    lr: float
    eval_steps: int  # evaluate every N steps (0: never inside the loop)
    evaluate: Callable[[int], dict[str, Any]]  # global step -> metrics (main process only)
    after_step: Callable[[int], None] | None = None  # stage step -> None, after each optimiser step (all processes)


def _param_groups(params: list[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices and embeddings only; norms and biases are not decayed."""
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


class NonFiniteStop(Exception):
    """Too many steps in a row had a non-finite gradient: the run stops (main returns 1)."""


def run_stage(
    stage: Stage, umm: JanusUMM, accelerator: Accelerator, args: PretrainArgs, out: Path, log: RunLog,
    resume_from: Path | None, deadline: float | None,
) -> int:  # fmt: skip
    """Train one stage from its start (or `resume_from`) to its last step; returns the last step done (fewer than
    `stage.steps` when the deadline stopped it)."""
    params = [p for p in stage.objective.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        _param_groups(params, args.weight_decay), lr=stage.lr, betas=(0.9, 0.95),
        fused=accelerator.device.type == "cuda",  # one kernel per step instead of one per tensor
    )  # fmt: skip
    # Not prepared by accelerate, which would step it once per process: the schedule counts optimiser steps.
    scheduler = get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, round(args.warmup_ratio * stage.steps), stage.steps, min_lr_rate=args.min_lr_ratio
    )
    start = 0
    if resume_from is not None:
        state = ckpt.load_checkpoint(
            resume_from, model=umm.janus, optimizer=optimizer, scheduler=scheduler, rank=accelerator.process_index
        )
        start = state["stage_step"]
    model, optimizer = accelerator.prepare(stage.objective, optimizer)
    loader = torch.utils.data.DataLoader(
        stage.batches, batch_size=None, sampler=range(start + 1, stage.steps + 1),
        num_workers=args.num_workers, pin_memory=accelerator.device.type == "cuda",
        prefetch_factor=4 if args.num_workers else None,
    )  # fmt: skip
    bar = tqdm(total=stage.steps, initial=start, desc=f"{stage.name} stage", disable=not accelerator.is_main_process)
    # Running sums on the device, read only at log steps (one sync per log); "_n" counts the steps summed.
    sums: dict[str, torch.Tensor] = {}
    last_time, last_step, stopped, bad_in_a_row = time.perf_counter(), start, False, 0
    model.train()
    for step, batch in enumerate(loader, start=start + 1):
        batch = {k: v.to(accelerator.device, non_blocking=True) for k, v in batch.items()}
        losses = model(**batch)
        accelerator.backward(losses["loss"])
        grad_norm = accelerator.clip_grad_norm_(params, args.max_grad_norm)
        lr = optimizer.param_groups[0]["lr"]  # the rate this step uses (a python float: no sync)
        # A NaN/inf gradient (or loss: its gradient is then non-finite too) would poison the weights and AdamW's
        # moments for good. The norm is of the all-reduced gradients, so every process takes the same decision.
        # This is the loop's one sync per step.
        finite = bool(torch.isfinite(grad_norm))
        if finite:
            optimizer.step()
        scheduler.step()  # a skipped step still consumes its batch and its place in the schedule
        optimizer.zero_grad(set_to_none=True)
        if finite and stage.after_step is not None:
            stage.after_step(step)
        if finite:
            bad_in_a_row = 0
            one = torch.ones((), device=grad_norm.device)
            for key, value in {**losses, "grad_norm": grad_norm, "_n": one}.items():
                sums[key] = sums.get(key, 0) + value.detach().float()
        else:
            bad_in_a_row += 1
            loss = float(losses["loss"])
            log.write({"stage": stage.name, "step": stage.offset + step, "stage_step": step, "skipped_nonfinite": True,
                       "nonfinite_loss": not math.isfinite(loss), "nonfinite_in_a_row": bad_in_a_row})  # fmt: skip
            accelerator.print(
                f"warning: {stage.name} step {step}: non-finite gradient (loss {loss}); step skipped, no update "
                f"({bad_in_a_row} in a row, max_nonfinite_steps={args.max_nonfinite_steps})"
            )
            if bad_in_a_row >= args.max_nonfinite_steps:
                bar.close()
                raise NonFiniteStop(
                    f"{stage.name} stage: {bad_in_a_row} steps in a row (up to step {step}) had a non-finite "
                    f"gradient, so training stopped; the last checkpoint in {out / 'checkpoints'} holds the last good "
                    "weights. Lower the learning rate or check the data, then --resume (max_nonfinite_steps sets "
                    "the patience)."
                )
        bar.update(1)
        if step % args.log_steps == 0 or step == stage.steps:
            sums = sums or {"_n": torch.zeros((), device=accelerator.device)}  # every step of the window skipped
            keys = sorted(sums)
            over = float(deadline is not None and time.monotonic() > deadline)
            values = torch.stack([sums[k] for k in keys] + [torch.tensor(over, device=sums["_n"].device)])
            values = accelerator.reduce(values, "sum").tolist()  # one collective: losses and the stop vote
            counted = dict(zip(keys, values)).pop("_n")  # steps summed, over all processes
            means = {k: v / counted for k, v in zip(keys, values) if k != "_n"} if counted else {}
            now = time.perf_counter()
            if means:
                record = {"stage": stage.name, "step": stage.offset + step, "stage_step": step, **means,
                          "lr": lr, "steps_per_s": (step - last_step) / (now - last_time)}  # fmt: skip
                log.write(record)
                bar.set_postfix(loss=f"{means['loss']:.4f}", refresh=False)
            sums, last_time, last_step, stopped = {}, now, step, values[-1] > 0
        if stage.eval_steps and step % stage.eval_steps == 0 and step != stage.steps:
            _evaluate(stage, umm, accelerator, log, step)
        if step % args.save_steps == 0 or step == stage.steps or stopped:
            ckpt.save_checkpoint(
                out / "checkpoints", stage.offset + step, model=umm.janus, optimizer=optimizer, scheduler=scheduler,
                # the data position: batches 1..step are consumed; batch s is a pure function of (seed, s, rank)
                state={"stage": stage.name, "stage_step": step, "data_position": step, "config": config_dict(args)},
                keep_last=args.save_total_limit, rank=accelerator.process_index,
                is_main=accelerator.is_main_process, barrier=accelerator.wait_for_everyone,
            )  # fmt: skip
        if stopped:
            accelerator.print(
                f"time limit reached: {stage.name} stopped at step {step}; rerun with --resume to finish"
            )
            log.write({"stage": stage.name, "step": stage.offset + step, "stopped_early": True})
            break
    bar.close()
    accelerator.free_memory()  # drop the DDP wrapper and optimizer before the next stage
    return last_step


def _evaluate(stage: Stage, umm: JanusUMM, accelerator: Accelerator, log: RunLog, step: int) -> None:
    """Run the stage's evaluation on the main process (the others wait); log and print it."""
    if accelerator.is_main_process:
        tqdm.write(f"[eval] {stage.name} stage, step {step}/{stage.steps}")
        umm.janus.eval()
        metrics = stage.evaluate(stage.offset + step)
        umm.janus.train()
        log.write({"stage": stage.name, "step": stage.offset + step, "stage_step": step, **metrics})
    accelerator.wait_for_everyone()


# ---- the command ----


def prepare_output_dir(args: PretrainArgs, is_main: bool) -> Path:
    """The output directory, checked: a non-empty one needs --resume or --overwrite (which deletes our files)."""
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise SeerError(f"{out}: output_dir exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (args.resume or args.overwrite):
        raise SeerError(
            f"{out}: output_dir is not empty; pass --resume to continue its run or --overwrite to start over"
        )
    if is_main and args.overwrite:
        for name in OWNED:
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    return out


def initial_model(args: PretrainArgs) -> JanusUMM:
    """Random weights of `model_shape`, or the model of `init_from` when its vocabulary holds every corpus word (a
    word it lacks would read as <unk> in every example that uses it)."""
    if args.init_from is None:
        return JanusUMM.from_shape(args.model_shape, seed=args.seed, words=corpus_words())
    path = Path(args.init_from)
    if not (path / "config.json").is_file():
        raise SeerError(f"--init_from {path}: no config.json there; expected the model/ folder of a `seer pretrain` run")
    umm = JanusUMM.from_pretrained(path)
    missing = sorted(set(corpus_words()) - set(umm.tokenizer.get_vocab()))
    if missing:
        raise SeerError(
            f"--init_from {path}: its vocabulary lacks {len(missing)} corpus words ({', '.join(missing[:5])}); "
            "pre-train from scratch"
        )
    return umm


def main(args: PretrainArgs) -> int:
    """Run `seer pretrain` (see the module docstring); returns the exit status (1: stopped by non-finite steps)."""
    try:
        return _main(args)
    except NonFiniteStop as stop:  # every process stops at the same step (the decision reads all-reduced norms)
        print(f"stopped: {stop}", file=sys.stderr)
        return 1


def _main(args: PretrainArgs) -> int:
    started = time.monotonic()
    deadline = started + 60 * args.time_limit_minutes if args.time_limit_minutes > 0 else None
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the tokenizer runs in forked DataLoader workers
    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    out = prepare_output_dir(args, accelerator.is_main_process)
    accelerator.wait_for_everyone()
    if accelerator.device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 for the float32 evaluation matmuls
    log = RunLog(out / "metrics.jsonl", accelerator.is_main_process)
    if accelerator.is_main_process:
        # resume/overwrite say how this invocation treats output_dir, not what the run trains: left out, the file of
        # an interrupted run stays byte-identical when its --resume fails on a bad checkpoint.
        save_config(out, replace(args, resume=False, overwrite=False))

    resume_from = ckpt.latest_checkpoint(out / "checkpoints") if args.resume else None
    resumed = ckpt.read_trainer_state(resume_from) if resume_from else {"stage": "vq", "step": 0}
    if args.resume:
        accelerator.print(f"resuming from {resume_from}" if resume_from else "no checkpoint to resume: starting fresh")
        changed = sorted(
            k for k, v in resumed.get("config", {}).items() if k not in RUN_KEYS and getattr(args, k, v) != v
        )
        if changed:  # allowed (e.g. more steps), but the run is then not the one the checkpoint started
            accelerator.print(f"warning: resuming with changed training settings: {', '.join(changed)}")
        stage_steps = args.vq_steps if resumed["stage"] == "vq" else args.lm_steps
        log.truncate_after(resumed["step"], stage_finished=resumed.get("stage_step") == stage_steps)

    umm = initial_model(args)
    umm.janus.to(accelerator.device)
    rank, processor = accelerator.process_index, umm.processor
    mean, std = processor.image_processor.image_mean, processor.image_processor.image_std
    grids = out / "samples"

    vq = umm.janus.model.vqmodel
    vq_objective = VQObjective(vq, args.vq_commitment)

    def restart_codes(step: int) -> None:
        # Only in the first half: "unused in this batch" would later also move codes that are rare but real.
        if args.vq_restart_steps and step % args.vq_restart_steps == 0 and step <= args.vq_steps // 2:
            reduce_sum = partial(accelerator.reduce, reduction="sum")
            vq_objective.restart_dead_codes(reduce_sum, broadcast, seed=args.seed * 1_000_003 + step)

    stage_a = Stage(
        name="vq", objective=vq_objective,
        batches=VQBatches(args.seed, rank, args.vq_batch_size, mean, std, umm.image_size),
        steps=args.vq_steps, offset=0, lr=args.vq_lr, eval_steps=args.vq_eval_steps,
        evaluate=lambda step: evaluate_tokenizer(umm, args), after_step=restart_codes,
    )  # fmt: skip
    finished = True
    if resumed["stage"] == "vq" and args.vq_steps > 0:
        last = run_stage(stage_a, umm, accelerator, args, out, log, resume_from, deadline)
        _evaluate(stage_a, umm, accelerator, log, last)
        finished, resume_from = last == args.vq_steps, None  # stage B starts fresh from stage A's weights

    vq.requires_grad_(False)  # frozen from here on: its codes are the t2i targets
    stage_b = Stage(
        name="lm", objective=LMObjective(umm, args.t2i_loss_weight, args.verdict_loss_weight),
        batches=LMBatches(processor, args, rank, umm.image_size),
        steps=args.lm_steps, offset=args.vq_steps, lr=args.lr, eval_steps=args.eval_steps,
        evaluate=lambda step: evaluate_lm(umm, args, grids / f"t2i-step{step:06d}.png"),
    )  # fmt: skip
    if finished and args.lm_steps > 0:
        last = run_stage(stage_b, umm, accelerator, args, out, log, resume_from, deadline)
        _evaluate(stage_b, umm, accelerator, log, last)
        finished = last == args.lm_steps
    elif resume_from is not None:  # nothing left to train: the final weights are the checkpoint's
        ckpt.load_checkpoint(resume_from, model=umm.janus, rank=rank)

    if accelerator.is_main_process:
        # The scale the model was evaluated at travels with it: the best scale depends on the model (CFG above
        # ~2.5 makes the embedded model add ghost objects to empty cells; benchmarks/RESULTS.md).
        umm.janus.generation_config.guidance_scale = args.eval_guidance_scale
        umm.save_pretrained(out / "model")
        state = "finished" if finished else "stopped at the time limit (--resume finishes it)"
        accelerator.print(f"{state} in {time.monotonic() - started:.0f} s; model saved to {out / 'model'}")
    accelerator.wait_for_everyone()
    return 0
