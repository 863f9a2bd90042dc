"""`seer eval --suite reprompt`: an RLMT run's reprompter judged by the oracle on evaluation items.

    seer eval --suite reprompt --rlmt_dir runs/rlmt --output_dir runs/eval-reprompt

It reads the RLMT run's config.yaml (model, reprompt template, descriptor grammar), its ``reprompter/`` adapter and,
through it, the RLVR run. Every evaluation item (never a training item) is reprompted greedily by the trained
reprompter and by the base model (zero-shot), and the frozen generator draws each system's text with the item's
seed (`eval.reprompt`). The figures, beside their targets (issue 5):

    win_simple      SEER over naive concatenation, simple items              >= 0.90
    win_hard        SEER over naive concatenation, hard items                >= 0.80
    win_ood         SEER over naive concatenation, out-of-distribution items >= 0.75
    retained_*      captions, yes/no VQA, knowledge QA with the reprompter on, minus off   >= -0.01

Each win figure has the zero-shot reprompter's win over naive beside it ("before"). results.json also holds the
pass rates and win ratios of every system by category, difficulty and split, the failure taxonomy before and after
RLMT, and one record per item; report.html shows them with image grids.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from seer.config import read_recipe, save_config
from seer.errors import SeerError
from seer.eval.base import Target, sample_seed
from seer.eval.evaluator_suite import evaluation_items, retention
from seer.eval.report import render_report, table
from seer.eval.reprompt import compare_systems
from seer.models.adapters import REPROMPTER
from seer.rl.reprompt import generate_reprompts

TARGETS: dict[str, tuple[Target, str, str]] = {  # figure: (target, group field, group)
    "win_simple": (Target(">=", 0.90), "difficulty", "simple"),
    "win_hard": (Target(">=", 0.80), "difficulty", "hard"),
    "win_ood": (Target(">=", 0.75), "split", "ood"),
}
SHOWN_EXAMPLES = 24


def load_rlmt_run(rlmt_dir: str | None) -> tuple[Any, Path]:
    """The arguments of a finished RLMT run (an `RLMTArgs`) and its reprompter adapter directory."""
    from seer.train.rlmt import RLMTArgs

    if rlmt_dir is None:
        raise SeerError("--rlmt_dir: the reprompt suite needs an RLMT run directory (e.g. runs/rlmt)")
    run = Path(rlmt_dir)
    config, adapter = run / "config.yaml", run / REPROMPTER
    if not config.is_file():
        raise SeerError(f"{config}: file not found; expected the config.yaml that `seer rlmt` writes")
    if not (adapter / "adapter_config.json").is_file():
        raise SeerError(f"{adapter}: no reprompter adapter (adapter_config.json); has the RLMT run finished?")
    try:
        return RLMTArgs(**read_recipe(config, (RLMTArgs,))), adapter
    except ValueError as error:
        raise SeerError(f"{config}: {error}") from None


def win_figures(comparison: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The targeted win ratios of SEER over naive, with the zero-shot reprompter's beside them."""
    out = {}
    for name, (target, key, group) in TARGETS.items():
        ours = comparison["win_ratio"]["seer_vs_naive"]["by"][key].get(group)
        before = comparison["win_ratio"].get("zero_shot_vs_naive", {}).get("by", {}).get(key, {}).get(group)
        value = None if ours is None else ours["value"]
        out[name] = {
            "value": value, "before": None if before is None else before["value"], "target": str(target),
            "passed": value is not None and target.met_by(value), "n": 0 if ours is None else ours["n"],
        }  # fmt: skip
    return out


def measure_reprompting(model: Any, rlmt_args: Any, items: list[Any], args: Any) -> dict[str, Any]:
    """Reprompt `items` with the trained and the base reprompter, render and judge every system (`compare_systems`)."""
    settings = {
        "template": rlmt_args.reprompt_template, "max_new_tokens": rlmt_args.max_completion_length,
        "batch_size": args.batch_size, "grammar": rlmt_args.descriptor_grammar,
        "max_words": rlmt_args.max_descriptor_words,
    }  # fmt: skip
    prompts = [item.prompt for item in items]
    instructions = [item.instruction for item in items]
    trained = generate_reprompts(model, prompts, instructions, role=REPROMPTER, **settings)
    zero_shot = generate_reprompts(model, prompts, instructions, role=None, **settings)
    seeds = [sample_seed(args.seed, "reprompt", i) for i in range(len(items))]
    guidance = model.default_guidance_scale if rlmt_args.guidance_scale is None else rlmt_args.guidance_scale
    comparison = compare_systems(
        model, items, {"seer": [r.descriptor for r in trained], "zero_shot": [r.descriptor for r in zero_shot]},
        seeds, guidance_scale=guidance, batch_size=args.batch_size,
    )  # fmt: skip
    for record, ours, base in zip(comparison["records"], trained, zero_shot):
        record["seer"]["reasoning"], record["seer"]["raw"] = ours.reasoning, ours.text
        record["zero_shot"]["raw"] = base.text
    comparison["guidance_scale"] = guidance
    return comparison


def report_sections(comparison: dict[str, Any]) -> list[tuple[str, str]]:
    """Tables for report.html: win ratios and pass rates by group, and the failure taxonomy."""
    wins = [(name, w["value"], *[w["by"][k].get(g, {}).get("value") for k, g in
             (("difficulty", "simple"), ("difficulty", "hard"), ("split", "id"), ("split", "ood"))])
            for name, w in comparison["win_ratio"].items()]  # fmt: skip
    passes = [(name, p["value"], p["parsed"]) for name, p in comparison["pass_rate"].items()]
    outcomes = sorted({o for t in comparison["taxonomy"].values() for o in t})
    taxonomy = [(name, *[t.get(o, 0.0) for o in outcomes]) for name, t in comparison["taxonomy"].items()]
    return [
        ("Win ratios (oracle)", table(["comparison", "all", "simple", "hard", "id", "ood"], wins)),
        ("Pass rates (oracle: instruction satisfied and prompt kept)", table(["system", "pass", "parsed"], passes)),
        ("Failure taxonomy of the reprompts", table(["reprompter", *outcomes], taxonomy)),
    ]


def shown_examples(records: list[dict[str, Any]], n: int = SHOWN_EXAMPLES) -> list[int]:
    """Up to `n` items for the report's grid, spread over the records (every category and split shows)."""
    step = max(1, len(records) // n)
    return list(range(0, len(records), step))[:n]


def run_reprompt_suite(
    args: Any, extra_figures: dict[str, dict[str, Any]] | None = None, base_retention: dict[str, float] | None = None
) -> dict[str, Any]:
    """Measure the reprompt suite as `args` (an `EvalArgs`) say; writes results.json and report.html.

    `extra_figures` (e.g. the evaluator suite's, from `seer run`) are shown first in report.html. `base_retention`:
    the base model's understanding figures when another suite measured them with the same `args` (`retention`).
    """
    from seer.eval.command import _write_atomic
    from seer.train.rlmt import load_model, read_evaluator_run, resolve_model_keys

    start = time.perf_counter()
    rlmt_args, adapter = load_rlmt_run(args.rlmt_dir)
    judge_run = read_evaluator_run(rlmt_args.evaluator)
    resolve_model_keys(rlmt_args, judge_run)
    model, _ = load_model(rlmt_args, shape_seed=int(judge_run.config.get("seed", 0)))
    model.load_adapter(REPROMPTER, adapter)
    out_dir = Path(args.output_dir)
    save_config(out_dir, args)
    items = evaluation_items(rlmt_args.data_seed, args.n_vie, args.vie_file)
    comparison = measure_reprompting(model, rlmt_args, items, args)
    figures = {**win_figures(comparison), **retention(model, args, role=REPROMPTER, base=base_retention)}
    images = comparison.pop("images")
    report = {
        "suite": "reprompt", "rlmt_dir": str(args.rlmt_dir), "adapter": str(adapter), "eval_items": len(items),
        "all_passed": all(f["passed"] for f in figures.values()), "figures": figures, **comparison,
        "wall_s": round(time.perf_counter() - start, 2),
    }  # fmt: skip
    _write_atomic(out_dir / "results.json", json.dumps(report, indent=2) + "\n")
    page = render_report(
        f"SEER reprompting: {args.rlmt_dir}", {**(extra_figures or {}), **figures}, report_sections(comparison), comparison["records"], images,
        shown_examples(comparison["records"]),
    )  # fmt: skip
    _write_atomic(out_dir / "report.html", page)
    return report
