"""`seer run`: the whole SEER method in one command — data, RLVR, RLMT, evaluation, report.

    seer run                                      # the embedded ShapeWorld default, into runs/shapeworld-tiny
    seer run --name s1 --seed 1                   # another seed, into runs/s1
    seer run --rlvr_config recipes/rlvr/janus-pro-1b.yaml --rlmt_config recipes/rlmt/janus-pro-1b.yaml --name jp1b
    seer run --resume                             # after an interruption: finished stages are kept, the rest resume

Stages, each in its own folder of ``runs/<name>/`` and each the same code as its own command:

1. data/           `seer data`: the 300 training and 600 evaluation VIE items for ``seed``;
2. rlvr/           `seer rlvr`: the evaluator adapter (recipe: ``rlvr_config``, or the embedded defaults);
3. rlmt/           `seer rlmt`: the reprompter adapter, rewarded by that evaluator (``rlmt_config``);
4. eval-evaluator/ `seer eval --suite evaluator` and eval-reprompt/ `seer eval --suite reprompt`.

Then ``runs/<name>/results.json`` (every figure beside its target, the stage timings and where each output is) and
``runs/<name>/report.html`` (the tables and image grids of the reprompt suite, with the evaluator's figures). A
recipe's own ``output_dir``, ``train_file``, ``seed``, ``device``, ``evaluator`` keys are replaced by the run's.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from seer.config import read_recipe, save_config
from seer.errors import SeerError


@dataclass
class RunArgs:
    """Arguments of `seer run` (flat keys)."""

    name: str = field(default="shapeworld-tiny", metadata={"help": "Run name: outputs go to <runs_dir>/<name>/."})
    runs_dir: str = field(default="runs", metadata={"help": "Folder that holds every run."})
    seed: int = field(default=0, metadata={"help": "Seed of the data, both RL stages and the evaluation."})
    device: str = field(default="cpu", metadata={"help": "Device of every stage (cpu, cuda, ...)."})
    rlvr_config: str | None = field(
        default=None, metadata={"help": "RLVR recipe (YAML) whose keys replace the embedded defaults."}
    )
    rlmt_config: str | None = field(
        default=None, metadata={"help": "RLMT recipe (YAML) whose keys replace the embedded defaults."}
    )
    n_eval_items: int = field(default=240, metadata={"help": "Evaluation items the reprompt suite judges."})
    n_pair_items: int = field(default=96, metadata={"help": "Evaluation items the evaluator suite builds pairs of."})
    n_retention: int = field(
        default=100, metadata={"help": "Captions and yes/no questions for understanding retained (each; 0 skips)."}
    )
    resume: bool = field(default=False, metadata={"help": "Keep finished stages of an earlier run; resume the rest."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an earlier run of the same name."})

    def __post_init__(self) -> None:
        if self.resume and self.overwrite:
            raise ValueError("resume and overwrite: expected at most one")
        for name in ("n_eval_items", "n_pair_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if self.n_retention < 0:
            raise ValueError(f"n_retention: expected an integer >= 0 (0 skips), got {self.n_retention}")


ARG_TYPES = (RunArgs,)


def stage_args(dtype: type, recipe: str | None, **fixed: Any) -> Any:
    """An instance of a stage's argument dataclass: its defaults, then `recipe`'s keys, then the run's `fixed` keys."""
    values = read_recipe(recipe, (dtype,)) if recipe is not None else {}
    try:
        return dtype(**{**values, **fixed})
    except ValueError as error:
        raise SeerError(f"{recipe or dtype.__name__}: {error}") from None


def finished(directory: Path) -> bool:
    """Whether a training stage's folder holds a completed run (its results.json says so)."""
    path = directory / "results.json"
    return path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("status") == "completed"


def prepare(out: Path, args: RunArgs) -> None:
    """Refuse to mix runs: an existing run folder needs --resume (keep it) or --overwrite (replace it)."""
    if out.exists() and not out.is_dir():
        raise SeerError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if args.overwrite:
            shutil.rmtree(out)
        elif not args.resume:
            raise SeerError(f"{out}: run folder is not empty; pass --resume to continue it or --overwrite to replace it")


def train_stage(name: str, module: Any, stage: Any, args: RunArgs) -> float:
    """Run one RL stage (`module.main(stage)`) unless it already finished; returns its wall time (0 when skipped)."""
    directory = Path(stage.output_dir)
    if finished(directory):
        print(f"{name}: finished earlier in {directory}; kept")
        return 0.0
    resumable = args.resume and module.latest_checkpoint(directory) is not None
    stage = replace(stage, resume=resumable, overwrite=not resumable and directory.exists())
    start = time.perf_counter()
    status = module.main(stage)
    if status != 0:
        raise SeerError(f"{name}: stopped (exit status {status}); see {directory}/results.json; fix and --resume")
    return time.perf_counter() - start


def main(args: RunArgs) -> int:
    """Run every stage; 0 when all ran (whether or not the figures meet their targets)."""
    from seer.data.build import build_vie_sets
    from seer.eval.command import EvalArgs
    from seer.eval.evaluator_suite import base_retention, run_evaluator_suite, summary_lines_of
    from seer.eval.reprompt_suite import run_reprompt_suite
    from seer.train import rlmt, rlvr, run_dir

    start = time.perf_counter()
    out = Path(args.runs_dir) / args.name
    # Every stage's arguments are checked before anything is written or trained.
    rlvr_args = stage_args(
        rlvr.RLVRArgs, args.rlvr_config, output_dir=str(out / "rlvr"), train_file=str(out / "data" / "train.jsonl"),
        seed=args.seed, device=args.device,
    )  # fmt: skip
    rlmt_args = stage_args(
        rlmt.RLMTArgs, args.rlmt_config, output_dir=str(out / "rlmt"), evaluator=str(out / "rlvr"),
        train_file=str(out / "data" / "train.jsonl"), seed=args.seed, device=args.device,
    )  # fmt: skip
    prepare(out, args)
    save_config(out, args)
    seconds: dict[str, float] = {}

    print(f"[1/4] data -> {out / 'data'}")
    t = time.perf_counter()
    if not (out / "data" / "eval.jsonl").is_file():
        counts = build_vie_sets(out / "data", seed=args.seed, overwrite=True)
        print(f"data: {counts['train']} training and {counts['eval']} evaluation items")
    seconds["data"] = time.perf_counter() - t
    print(f"[2/4] rlvr -> {out / 'rlvr'}")
    seconds["rlvr"] = train_stage("rlvr", rlvr, rlvr_args, args)
    print(f"[3/4] rlmt -> {out / 'rlmt'}")
    seconds["rlmt"] = train_stage("rlmt", rlmt, rlmt_args, args)

    print(f"[4/4] evaluation -> {out / 'eval-evaluator'}, {out / 'eval-reprompt'}")
    t = time.perf_counter()
    sizes = {"n_caption": args.n_retention, "n_vqa": args.n_retention, "n_qa": None if args.n_retention else 0}
    evaluator = run_evaluator_suite(EvalArgs(
        suite="evaluator", rlvr_dir=str(out / "rlvr"), output_dir=str(out / "eval-evaluator"), seed=args.seed,
        n_pair_items=args.n_pair_items, vie_file=str(out / "data" / "eval.jsonl"), device=args.device, **sizes,
    ))  # fmt: skip
    # Both suites measure understanding on RLVR's base model with the same sizes and seed: the base figures are
    # measured once, and the reprompt suite measures only its adapter's.
    reprompt = run_reprompt_suite(EvalArgs(
        suite="reprompt", rlmt_dir=str(out / "rlmt"), output_dir=str(out / "eval-reprompt"), seed=args.seed,
        n_vie=args.n_eval_items, vie_file=str(out / "data" / "eval.jsonl"), device=args.device, **sizes,
    ), extra_figures={f"evaluator: {k}": v for k, v in evaluator["figures"].items()},
        base_retention=base_retention(evaluator["figures"]))  # fmt: skip
    seconds["eval"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - start

    figures = {**{f"evaluator/{k}": v for k, v in evaluator["figures"].items()},
               **{f"reprompt/{k}": v for k, v in reprompt["figures"].items()}}  # fmt: skip
    results = {
        "name": args.name, "seed": args.seed, "all_passed": all(f["passed"] for f in figures.values()),
        "figures": figures, "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "outputs": {stage: str(out / stage) for stage in ("data", "rlvr", "rlmt", "eval-evaluator", "eval-reprompt")},
        "win_ratio": {k: v["value"] for k, v in reprompt["win_ratio"].items()},
        "pass_rate": {k: v["value"] for k, v in reprompt["pass_rate"].items()},
        "taxonomy": reprompt["taxonomy"],
    }  # fmt: skip
    run_dir.write_json_atomic(out / "results.json", results)
    shutil.copyfile(out / "eval-reprompt" / "report.html", out / "report.html")
    print("\n".join(summary_lines_of({"figures": figures})))
    print(f"\nresults: {out / 'results.json'}  report: {out / 'report.html'}  wall: {seconds['total'] / 60:.1f} min")
    return 0
