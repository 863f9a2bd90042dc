"""`seer eval`: measure a model on ShapeWorld, judged by the oracle (never by the model itself).

    seer eval --suite base                                     # the embedded model, default sizes
    seer eval --suite base --model runs/pretrain --output_dir runs/eval-base --n_t2i 50 --n_vie 48
    seer eval --suite evaluator --rlvr_dir runs/rlvr --output_dir runs/eval-evaluator  # seer.eval.evaluator_suite
    seer eval --suite reprompt --rlmt_dir runs/rlmt --output_dir runs/eval-reprompt    # seer.eval.reprompt_suite

Suite `base` measures the figures of `seer.eval.base` (generation, captions, concept knowledge, the cognitive gap
and the image tokenizer) with every adapter disabled. It writes into `--output_dir`:

- config.yaml: the resolved arguments, written first; `seer eval --config <it>` repeats the run;
- results.json: every figure beside its target with pass/fail, its N, settings, diagnostics and wall time;
- samples.jsonl: one line per sample of every figure (inputs, generator seed, what the oracle read, the verdict);
- samples.png: the first images of each image figure, one row per figure (`GRID_ROWS` says which row is which).

It prints the figures as a table and the first samples of each, since exploits and bugs show in raw samples first.
A figure whose N is 0 is skipped.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TypeVar

from PIL import Image

from seer import __version__
from seer.config import save_config
from seer.data.build import derive_eval_seed
from seer.data.vie import VIEItem, load_vie
from seer.errors import SeerError
from seer.eval.base import (
    TARGETS,
    YES_NO_TOKENS,
    BaseSuiteModel,
    Measurement,
    caption_accuracy,
    cognitive_gap,
    eval_scenes,
    knowledge_accuracy,
    knowledge_questions,
    sample_seed,
    t2i_accuracy,
    take_stratified,
    vie_cell,
    vie_eval_items,
    vq_fidelity,
    yes_no_accuracy,
    yes_no_questions,
)


@dataclass
class EvalArgs:
    """Arguments of `seer eval`."""

    model: str | None = field(
        default=None,
        metadata={"help": "Model directory (a `seer pretrain` output or a Janus checkpoint); default: embedded."},
    )
    suite: Literal["base", "evaluator", "reprompt"] = field(
        default="base",
        metadata={"help": "base: seer.eval.base; evaluator: an RLVR run's evaluator (seer.eval.evaluator_suite); "
                  "reprompt: an RLMT run's reprompter (seer.eval.reprompt_suite)."},
    )
    rlvr_dir: str | None = field(
        default=None, metadata={"help": "Evaluator suite: the RLVR run directory (its config.yaml and evaluator/)."}
    )
    rlmt_dir: str | None = field(
        default=None, metadata={"help": "Reprompt suite: the RLMT run directory (its config.yaml and reprompter/)."}
    )
    n_pair_items: int = field(
        default=96, metadata={"help": "Evaluator suite: evaluation items to build pairs of both stages from."}
    )
    output_dir: str = field(default="runs/eval-base", metadata={"help": "Where results.json, samples and config go."})
    seed: int = field(
        default=0,
        metadata={"help": "Suite seed: held-out scenes, VIE items (seer data's eval seed) and generator seeds."},
    )
    n_t2i: int = field(default=200, metadata={"help": "Prompts per t2i figure (1-object and 3-object); 0 skips."})
    n_caption: int = field(default=200, metadata={"help": "Rendered scenes (1-4 objects) to caption; 0 skips."})
    n_qa: int | None = field(
        default=None, metadata={"help": "Concept questions, round robin over concepts; default: all of them; 0 skips."}
    )
    n_vqa: int = field(default=200, metadata={"help": "Yes/no questions about rendered scenes; 0 skips."})
    n_vie: int = field(default=240, metadata={"help": "VIE items, spread over category/difficulty/split; 0 skips."})
    vie_file: str | None = field(
        default=None,
        metadata={"help": "VIE JSONL with spec and gold (e.g. seer data's eval.jsonl) instead of generated items."},
    )
    n_vq: int = field(default=500, metadata={"help": "Rendered scenes (1-4 objects) for the tokenizer round trip."})
    guidance_scale: float | None = field(
        default=None,
        metadata={"help": "Classifier-free guidance of image generation (default: the model's own default)."},
    )
    temperature: float = field(default=1.0, metadata={"help": "Image sampling temperature; 0 = greedy decoding."})
    max_new_tokens: int = field(default=64, metadata={"help": "Token budget of captions and answers (greedy)."})
    batch_size: int = field(default=32, metadata={"help": "Prompts per generation call."})
    device: str = field(default="cpu", metadata={"help": "Device to run the model on (cpu, cuda, cuda:1, ...)."})

    def __post_init__(self) -> None:
        counts = {
            "n_t2i": self.n_t2i, "n_caption": self.n_caption, "n_vqa": self.n_vqa, "n_vie": self.n_vie,
            "n_vq": self.n_vq, "n_pair_items": self.n_pair_items,
        }  # fmt: skip
        if self.n_qa is not None:
            counts["n_qa"] = self.n_qa
        for name, value in counts.items():
            if value < 0:
                raise ValueError(f"{name}: expected an integer >= 0 (0 skips the figure), got {value}")
        for name, value, low in (("batch_size", self.batch_size, 1), ("max_new_tokens", self.max_new_tokens, 1)):
            if value < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {value}")
        if self.guidance_scale is not None and self.guidance_scale < 0:
            raise ValueError(f"guidance_scale: expected >= 0 (1.0 = no guidance), got {self.guidance_scale}")
        if self.temperature < 0:
            raise ValueError(f"temperature: expected >= 0 (0 = greedy), got {self.temperature}")


ARG_TYPES = (EvalArgs,)
T = TypeVar("T")

# The rows of samples.png, top to bottom: (row label, figure whose images it shows).
GRID_ROWS: tuple[tuple[str, str], ...] = (
    ("t2i 1 object", "t2i_1_object"),
    ("t2i 3 objects", "t2i_3_objects"),
    ("vie naive", "vie_naive_satisfied"),
    ("vie gold", "vie_gold_passed"),
    ("vq round trip", "vq_fidelity"),
)
GRID_COLUMNS = 8
SHOWN_SAMPLES = 2  # printed per figure


# ---------------------------------------------------------------------------------------------------------------
# The suite


@dataclass
class FigureResult:
    """A measured figure with how it was measured."""

    measurement: Measurement
    settings: dict[str, Any]
    wall_s: float

    def to_json(self, name: str) -> dict[str, Any]:
        """The figure's entry in results.json."""
        target = TARGETS[name]
        m = self.measurement
        return {
            "value": m.value,
            "target": str(target),
            "passed": target.met_by(m.value),
            "n": m.n,
            **self.settings,
            "wall_s": round(self.wall_s, 2),
            "extras": m.extras,
            **({"breakdown": m.breakdown} if m.breakdown else {}),
        }


def load_vie_items(path: str, n: int) -> list[VIEItem]:
    """`n` items of a VIE file, spread over its cells; every one must have the `spec` and `gold` the oracle needs."""
    items = load_vie(path)
    for item in items:
        if item.spec is None or item.gold is None:
            missing = "spec" if item.spec is None else "gold"
            raise SeerError(f"{path}: item {item.id!r}: field '{missing}' is missing (the base suite needs both)")
    return take_stratified(items, n, key=vie_cell)


def _timed(measure: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """`measure(*args, **kwargs)` and its wall time in seconds."""
    start = time.perf_counter()
    return measure(*args, **kwargs), time.perf_counter() - start


def run_base_suite(model: BaseSuiteModel, args: EvalArgs) -> dict[str, FigureResult]:
    """Measure every figure whose N is not 0, with every adapter disabled; {figure: result} in TARGETS order."""
    guidance = model.default_guidance_scale if args.guidance_scale is None else args.guidance_scale
    image = {"guidance_scale": guidance, "temperature": args.temperature}
    text = {"decoding": "greedy", "max_new_tokens": args.max_new_tokens}
    batch = args.batch_size
    n_qa = len(knowledge_questions()) if args.n_qa is None else args.n_qa
    results: dict[str, FigureResult] = {}

    def seeds(figure: str, n: int) -> list[int]:
        return [sample_seed(args.seed, figure, i) for i in range(n)]

    with model.no_adapter():  # the base model: the generator SEER keeps frozen, and the understanding it starts from
        for name, objects in (("t2i_1_object", 1), ("t2i_3_objects", 3)):
            if args.n_t2i:
                scenes = eval_scenes(args.seed, name, args.n_t2i, n_objects=objects)
                measured, wall = _timed(
                    t2i_accuracy, model, scenes, seeds(name, len(scenes)), **image, batch_size=batch, desc=name
                )
                results[name] = FigureResult(measured, {**image, "objects": objects}, wall)
        if args.n_caption:
            scenes = eval_scenes(args.seed, "caption_exact", args.n_caption)
            measured, wall = _timed(
                caption_accuracy, model, scenes, image_size=model.image_size, max_new_tokens=args.max_new_tokens,
                batch_size=batch,
            )  # fmt: skip
            results["caption_exact"] = FigureResult(measured, text, wall)
        if n_qa:
            questions = knowledge_questions(n_qa)
            measured, wall = _timed(
                knowledge_accuracy, model, questions, max_new_tokens=args.max_new_tokens, batch_size=batch
            )
            results["knowledge_qa"] = FigureResult(measured, text, wall)
        if args.n_vqa:
            long_text = {**text, "max_new_tokens": max(args.max_new_tokens, YES_NO_TOKENS)}
            measured, wall = _timed(
                yes_no_accuracy, model, yes_no_questions(args.seed, args.n_vqa), image_size=model.image_size,
                max_new_tokens=long_text["max_new_tokens"], batch_size=batch,
            )  # fmt: skip
            results["vqa_yes_no"] = FigureResult(measured, long_text, wall)
        if args.n_vie:
            if args.vie_file:
                items = load_vie_items(args.vie_file, args.n_vie)
            else:
                items = vie_eval_items(args.seed, args.n_vie)
            (naive, gold), wall = _timed(
                cognitive_gap, model, items, seeds("vie", len(items)), **image, batch_size=batch
            )
            # One generation pass makes both figures, so they share its wall time.
            results["vie_naive_satisfied"] = FigureResult(naive, image, wall)
            results["vie_gold_passed"] = FigureResult(gold, image, wall)
        if args.n_vq:
            scenes = eval_scenes(args.seed, "vq_fidelity", args.n_vq)
            measured, wall = _timed(vq_fidelity, model, scenes, image_size=model.image_size, batch_size=batch)
            results["vq_fidelity"] = FigureResult(measured, {}, wall)
    return {name: results[name] for name in TARGETS if name in results}


# ---------------------------------------------------------------------------------------------------------------
# Outputs


def image_grid(rows: Sequence[Sequence[Image.Image]], scale: int = 2, pad: int = 2) -> Image.Image:
    """The images laid out row by row, each scaled up `scale` times (nearest neighbour) with `pad` white pixels
    between and around them; cells are the size of the largest image, empty cells stay white."""
    cell = max((max(im.size) for row in rows for im in row), default=1) * scale
    width = max((len(row) for row in rows), default=0)
    grid = Image.new("RGB", (pad + width * (cell + pad), pad + len(rows) * (cell + pad)), "white")
    for r, row in enumerate(rows):
        for c, im in enumerate(row):
            scaled = im.convert("RGB").resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
            grid.paste(scaled, (pad + c * (cell + pad), pad + r * (cell + pad)))
    return grid


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def summary_table(figures: dict[str, dict[str, Any]]) -> str:
    """The figures as an aligned text table: value, target, PASS/FAIL, N and wall time."""
    lines = [f"{'figure':<22}{'value':>7}  {'target':<9}{'':<6}{'N':>6}{'wall_s':>9}"]
    for name, fig in figures.items():
        verdict = "PASS" if fig["passed"] else "FAIL"
        lines.append(
            f"{name:<22}{fig['value']:>7.3f}  {fig['target']:<9}{verdict:<6}{fig['n']:>6}{fig['wall_s']:>9.1f}"
        )
    return "\n".join(lines)


def write_outputs(out_dir: Path, results: dict[str, FigureResult], header: dict[str, Any]) -> dict[str, Any]:
    """Write results.json, samples.jsonl and samples.png into `out_dir`; returns what results.json holds."""
    figures = {name: result.to_json(name) for name, result in results.items()}
    report = {
        **header,
        "all_passed": bool(figures) and all(fig["passed"] for fig in figures.values()),
        "skipped": [name for name in TARGETS if name not in figures],
        "samples_png_rows": [label for label, name in GRID_ROWS if name in results],
        "figures": figures,
    }
    lines = [
        json.dumps({"figure": name, "index": i, **sample})
        for name, result in results.items()
        for i, sample in enumerate(result.measurement.samples)
    ]
    _write_atomic(out_dir / "samples.jsonl", "".join(line + "\n" for line in lines))
    rows = [results[name].measurement.images[:GRID_COLUMNS] for _, name in GRID_ROWS if name in results]
    if rows:
        image_grid(rows).save(out_dir / "samples.png")
    _write_atomic(out_dir / "results.json", json.dumps(report, indent=2) + "\n")
    return report


def _print_samples(results: dict[str, FigureResult]) -> None:
    for name, result in results.items():
        for i, sample in enumerate(result.measurement.samples[:SHOWN_SAMPLES]):
            shown = {k: v for k, v in sample.items() if k not in ("failures",)}
            print(f"  {name} #{i}: {json.dumps(shown)}")


def load_model(path: str | None, device: str) -> BaseSuiteModel:
    """The model at `path` (a Janus directory), or the embedded model when `path` is None."""
    if path is None:
        from seer.embedded import load_embedded_model

        return load_embedded_model(device)
    if not Path(path).is_dir():
        raise SeerError(f"--model {path}: directory not found (expected a `seer pretrain` output or Janus checkpoint)")
    from seer.models.janus import JanusUMM

    return JanusUMM.from_pretrained(path, device=device)


def main(args: EvalArgs) -> int:
    """Run `seer eval`: measure the suite, write the outputs, print the table; exit 0 whether or not targets pass."""
    start = time.perf_counter()
    out_dir = Path(args.output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SeerError(f"--output_dir {out_dir}: expected a directory, got an existing file")
    if args.suite in ("evaluator", "reprompt"):
        from seer.eval.evaluator_suite import run_evaluator_suite, summary_lines_of
        from seer.eval.reprompt_suite import run_reprompt_suite

        report = (run_evaluator_suite if args.suite == "evaluator" else run_reprompt_suite)(args)
        print("\n".join(summary_lines_of(report)))
        print(f"\nresults: {out_dir / 'results.json'}  wall: {report['wall_s']:.1f}s  all passed: {report['all_passed']}")
        return 0
    model = load_model(args.model, args.device)
    save_config(out_dir, args)
    results = run_base_suite(model, args)
    header = {
        "suite": args.suite,
        "model": args.model or "embedded",
        "seed": args.seed,
        "seeds": {
            "scenes": f"random.Random('seer-eval/{args.seed}/<figure>')",
            "vie_items": f"generate_items({derive_eval_seed(args.seed)}) (seer data's eval seed)"
            if not args.vie_file
            else args.vie_file,
            "generator": "sample_seed(seed, figure, index); per sample in samples.jsonl",
        },
        "device": args.device,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seer_version": __version__,
        "wall_s": round(time.perf_counter() - start, 2),
    }
    report = write_outputs(out_dir, results, header)
    print(summary_table(report["figures"]))
    print(f"\nsamples (first {SHOWN_SAMPLES} of each figure; all in {out_dir / 'samples.jsonl'}):")
    _print_samples(results)
    print(f"\nresults: {out_dir / 'results.json'}  wall: {report['wall_s']:.1f}s  all passed: {report['all_passed']}")
    return 0
