"""`seer eval --suite evaluator`: the RLVR evaluator judged on pairs built from evaluation items only.

    seer eval --suite evaluator --rlvr_dir runs/rlvr --output_dir runs/eval-evaluator

It reads the RLVR run's config.yaml (model, question wording, pair settings) and its ``evaluator/`` adapter, builds
verified pairs of both stages from `seer data`'s evaluation items for the run's ``data_seed`` (never a training
item) with the same frozen generator and settings, and asks every pair in both orders, zero-shot (every adapter off)
and trained (`seer.eval.evaluator`). The figures, beside their targets (issue 4):

    evaluator_accuracy_id    trained accuracy on in-distribution pairs (both orders)            >= 0.95
    evaluator_accuracy_ood   trained accuracy on out-of-distribution pairs                      >= 0.90
    position_consistency     pairs answered right in both orders (the verdict flips with them)  >= 0.95
    retained_<figure>        captions, yes/no VQA and knowledge QA with the adapter on, minus off  >= -0.01

Outputs in ``--output_dir``: config.yaml, results.json (every figure, the full zero-shot and trained breakdowns by
category, difficulty, split, question type and failure kind, raw samples), and pairs/ (the cached pairs).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from seer.config import read_recipe, save_config
from seer.data.build import generate_sets
from seer.data.pairs import build_or_load_pairs, summary_lines
from seer.data.vie import VIEItem
from seer.errors import SeerError
from seer.eval.base import (
    VIE_CELLS,
    YES_NO_TOKENS,
    Target,
    caption_accuracy,
    eval_scenes,
    knowledge_accuracy,
    knowledge_questions,
    take_stratified,
    vie_cell,
    yes_no_accuracy,
    yes_no_questions,
)
from seer.eval.evaluator import evaluate_evaluator
from seer.models.adapters import EVALUATOR
from seer.train.rlvr import KEYS_BEFORE_THEY_EXISTED, RLVRArgs, load_model, pair_source

TARGETS: dict[str, Target] = {
    "evaluator_accuracy_id": Target(">=", 0.95),
    "evaluator_accuracy_ood": Target(">=", 0.90),
    "position_consistency": Target(">=", 0.95),
}
RETENTION_BOUND = -0.01  # understanding with the adapter on may fall at most one point below the base model's


def load_rlvr_run(rlvr_dir: str | None) -> tuple[RLVRArgs, Path]:
    """The arguments of a finished RLVR run and its evaluator adapter directory."""
    if rlvr_dir is None:
        raise SeerError("--rlvr_dir: the evaluator suite needs an RLVR run directory (e.g. runs/rlvr)")
    run = Path(rlvr_dir)
    config, adapter = run / "config.yaml", run / EVALUATOR
    if not config.is_file():
        raise SeerError(f"{config}: file not found; expected the config.yaml that `seer rlvr` writes")
    if not (adapter / "adapter_config.json").is_file():
        raise SeerError(f"{adapter}: no evaluator adapter (adapter_config.json); has the RLVR run finished?")
    try:
        return RLVRArgs(**{**KEYS_BEFORE_THEY_EXISTED, **read_recipe(config, (RLVRArgs,))}), adapter
    except ValueError as error:
        raise SeerError(f"{config}: {error}") from None


def evaluation_items(data_seed: int, n: int, vie_file: str | None) -> list[VIEItem]:
    """`n` evaluation items spread over (category, difficulty, split): from `vie_file`, or `seer data`'s
    evaluation set for `data_seed` (items that repeat a training pair are already left out there)."""
    if vie_file is not None:
        from seer.eval.command import load_vie_items

        return load_vie_items(vie_file, n)
    per_cell = max(1, math.ceil(n / VIE_CELLS))
    return take_stratified(generate_sets(data_seed, 25, per_cell)[1], n, key=vie_cell)


def retention(
    model: Any, args: Any, role: str = EVALUATOR, base: dict[str, float] | None = None
) -> dict[str, dict[str, float | bool]]:
    """Captions, yes/no VQA and knowledge QA with every adapter off and with adapter `role` on; the drop is checked.

    `args` gives the sizes (n_caption, n_vqa, n_qa: 0 skips one) and seed, batch_size, max_new_tokens (`EvalArgs`).
    `base` (``{"caption_exact": value, ...}``) gives figures already measured with every adapter off, by another
    suite on the same base model with the same `args`: greedy decoding makes them the same, so they are reused.
    """
    measures = {
        "caption_exact": lambda: caption_accuracy(
            model, eval_scenes(args.seed, "caption_exact", args.n_caption), image_size=model.image_size,
            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        ),
        "vqa_yes_no": lambda: yes_no_accuracy(
            model, yes_no_questions(args.seed, args.n_vqa), image_size=model.image_size,
            max_new_tokens=max(args.max_new_tokens, YES_NO_TOKENS), batch_size=args.batch_size,
        ),
        "knowledge_qa": lambda: knowledge_accuracy(
            model, knowledge_questions(args.n_qa), max_new_tokens=args.max_new_tokens, batch_size=args.batch_size
        ),
    }  # fmt: skip
    counts = {"caption_exact": args.n_caption, "vqa_yes_no": args.n_vqa, "knowledge_qa": args.n_qa}
    out: dict[str, dict[str, float | bool]] = {}
    for name, measure in measures.items():
        if counts[name] == 0:
            continue
        if base is not None and name in base:
            before = base[name]
        else:
            with model.no_adapter():
                before = measure().value
        with model.use_adapter(role):
            trained = measure().value
        out[f"retained_{name}"] = {
            "base": before, "trained": trained, "delta": trained - before, "passed": retained(before, trained)
        }  # fmt: skip
    return out


def base_retention(figures: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The base model's understanding figures in a suite's `figures` (``retained_<name>`` -> its ``base``), in the
    form `retention` takes them back."""
    prefix = "retained_"
    return {name[len(prefix):]: fig["base"] for name, fig in figures.items() if name.startswith(prefix)}


def retained(base: float, trained: float) -> bool:
    """Whether `trained` is at most one point below `base` (`RETENTION_BOUND`). Rounded to 1e-9 first: 0.98 - 0.99 is
    -0.010000000000000009 in floating point, which is one point, not more."""
    return round(trained - base, 9) >= RETENTION_BOUND


def figures_of(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The targeted figures from `evaluate_evaluator`'s results (trained, with the zero-shot value beside)."""
    out = {}
    for name, (field, group) in {
        "evaluator_accuracy_id": ("accuracy", "id"),
        "evaluator_accuracy_ood": ("accuracy", "ood"),
        "position_consistency": ("position_consistency", None),
    }.items():
        values = {}
        for mode in ("zero_shot", "trained"):
            block = results[mode] if group is None else results[mode]["by"]["split"].get(group)
            values[mode] = None if block is None else block[field]
        value = values["trained"]
        out[name] = {
            "value": value, "zero_shot": values["zero_shot"], "target": str(TARGETS[name]),
            "passed": value is not None and TARGETS[name].met_by(value),
        }  # fmt: skip
    return out


def run_evaluator_suite(args: Any) -> dict[str, Any]:
    """Measure the evaluator suite as `args` (an `EvalArgs`) say; writes the outputs and returns results.json."""
    from seer.eval.command import _write_atomic

    start = time.perf_counter()
    rlvr_args, adapter = load_rlvr_run(args.rlvr_dir)
    out_dir = Path(args.output_dir)
    model, model_id = load_model(rlvr_args)
    model.load_adapter(EVALUATOR, adapter)
    save_config(out_dir, args)
    items = evaluation_items(rlvr_args.data_seed, args.n_pair_items, args.vie_file)
    generator, settings = pair_source(rlvr_args, model, model_id)
    where = args.vie_file or f"seer data --seed {rlvr_args.data_seed} (eval)"
    pairs = build_or_load_pairs(generator, items, out_dir / "pairs", "eval", settings, where=where)
    for line in summary_lines(pairs, "evaluation"):
        print(line)
    results = evaluate_evaluator(
        model, pairs, rlvr_args.templates(), batch_size=args.batch_size,
        max_new_tokens=rlvr_args.max_completion_length,
    )  # fmt: skip
    figures = {**figures_of(results), **retention(model, args)}
    report = {
        "suite": "evaluator",
        "rlvr_dir": str(args.rlvr_dir),
        "adapter": str(adapter),
        "model": rlvr_args.model or "embedded",
        "eval_items": len(items),
        "pairs": pairs.summary,
        "all_passed": all(fig["passed"] for fig in figures.values()),
        "figures": figures,
        **results,
        "wall_s": round(time.perf_counter() - start, 2),
    }
    _write_atomic(out_dir / "results.json", json.dumps(report, indent=2) + "\n")
    return report


def summary_lines_of(report: dict[str, Any]) -> list[str]:
    """The figures as an aligned table (trained value, zero-shot or base value, target, PASS/FAIL)."""
    lines = [f"{'figure':<32}{'value':>7}{'before':>8}  {'target':<9}"]
    for name, fig in report["figures"].items():
        value = fig.get("value", fig.get("trained"))
        before = fig.get("zero_shot", fig.get("base", fig.get("before")))
        target = fig.get("target", f">= {RETENTION_BOUND:+.2f} (delta)")
        shown = [f"{v:>7.3f}" if v is not None else f"{'-':>7}" for v in (value, before)]
        lines.append(f"{name:<32}{shown[0]}{' ' + shown[1]}  {target:<9} {'PASS' if fig['passed'] else 'FAIL'}")
    return lines
