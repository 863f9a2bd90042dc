"""Output directories of the GRPO stages (`seer rlvr`, `seer rlmt`): the --resume / --overwrite rules, and the
checkpoint markers, metrics.jsonl and progress bar both stages write through TRL callbacks.

A stage's directory holds its config.yaml, metrics.jsonl, results.json, its final adapter and TRL's
checkpoint-<step>/ folders. A checkpoint is complete only when TRL's trainer_state.json and the stage's own marker
file (written last by the stage's checkpoint callback) are both there, so a run killed while writing one resumes
from the one before. A non-empty directory is never reused silently: --resume continues its run (with the same
configuration, apart from keys that do not change what is trained), --overwrite removes the stage's own outputs.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from seer.errors import SeerError

CONFIG_FILE = "config.yaml"


def latest_checkpoint(out: Path, marker: str) -> Path | None:
    """The newest complete checkpoint-<step> in `out` (TRL's trainer_state.json and `marker` both written)."""
    steps = {}
    for directory in out.glob("checkpoint-*"):
        step = directory.name.removeprefix("checkpoint-")
        if step.isdigit() and (directory / "trainer_state.json").is_file() and (directory / marker).is_file():
            steps[int(step)] = directory
    return steps[max(steps)] if steps else None


def check_same_config(path: Path, now: Mapping[str, Any], resumable: Sequence[str]) -> None:
    """A resumed run must train what the interrupted one trained: every key of `now` but `resumable` agrees."""
    if not path.is_file():
        raise SeerError(f"{path}: file not found; --resume needs the config.yaml of the interrupted run")
    before = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for key, value in now.items():
        if key not in resumable and before.get(key) != value:
            raise SeerError(
                f"{path}: key '{key}': the interrupted run used {before.get(key)!r}, this one {value!r}; "
                "a resumed run must use the same configuration"
            )


def prepare_output_dir(
    out: Path, *, resume: bool, overwrite: bool, marker: str, config: Mapping[str, Any], resumable: Sequence[str],
    outputs: Sequence[str],
) -> Path | None:  # fmt: skip
    """Check `out` against --resume/--overwrite; returns the checkpoint to resume from (or None).

    Args:
        marker: the stage's checkpoint completeness file (see `latest_checkpoint`).
        config: the run's resolved configuration (`config.config_dict`), compared on --resume.
        resumable: keys that may differ on --resume.
        outputs: the stage's own files and folders besides its checkpoints, removed by --overwrite (anything else
            in `out`, such as RLVR's pair cache, stays).
    """
    if out.exists() and not out.is_dir():
        raise SeerError(f"{out}: output_dir is a file; expected a directory")
    if resume:
        checkpoint = latest_checkpoint(out, marker)
        if checkpoint is None:
            raise SeerError(f"{out}: no complete checkpoint-<step> to --resume from (start without --resume)")
        check_same_config(out / CONFIG_FILE, config, resumable)
        return checkpoint
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise SeerError(
                f"{out}: output_dir is not empty; pass --resume to continue its run or --overwrite to replace it"
            )
        # A stale checkpoint left behind would be what a later --resume picks up.
        for path in [*out.glob("checkpoint-*"), *(out / name for name in outputs)]:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return None


# ---------------------------------------------------------------------------------------------------------------
# What a stage writes while it trains: checkpoint completeness markers, metrics.jsonl, the progress bar


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to `path` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def truncate_metrics(path: Path, after_step: int) -> None:
    """Drop the metrics.jsonl lines of steps after `after_step` (a resumed run writes them again)."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(line for line in lines if json.loads(line)["step"] <= after_step), encoding="utf-8")


class AdapterCheckpoint(TrainerCallback):
    """Adds adapter `role` (``save_adapter``) and the stage's marker file to every checkpoint TRL writes.

    TRL has already saved the PEFT adapter there (a named adapter goes into a sub-folder); ours replaces it atomically
    with exactly the adapter files. The marker (`marker_data(state)` as JSON) is written last: a checkpoint without
    it is incomplete, and --resume skips it (`latest_checkpoint`).
    """

    def __init__(self, model: Any, role: str, marker: str, marker_data: Callable[[TrainerState], Any]) -> None:
        self.model, self.role, self.marker, self.marker_data = model, role, marker, marker_data

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not state.is_world_process_zero:  # one writer per checkpoint
            return
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.model.save_adapter(self.role, checkpoint / self.role)
        write_json_atomic(checkpoint / self.marker, self.marker_data(state))


def add_step_fields(state: TrainerState, logs: dict[str, float] | None, fields: Mapping[str, float]) -> None:
    """Add a callback's `fields` to a training step's `logs` (``on_log``; logs without a loss are not a step's).

    The Trainer appended its copy of `logs` to ``state.log_history`` before calling the callbacks, so the fields go
    there too: `StageProgress` writes metrics.jsonl from the logs, checkpoints save the history.
    """
    if logs is None or "loss" not in logs:
        return
    logs.update(fields)
    if state.log_history:
        state.log_history[-1].update(fields)


class StageProgress(TrainerCallback):
    """A progress bar with a stage's key metrics, metrics.jsonl (one line per step), and raw samples every
    `sample_every` steps; a subclass says which metrics the bar shows (`postfix`) and prints the samples."""

    desc = "train"
    sample_first_step = False  # also print the samples of step 1 (the policy before any update)

    def __init__(self, metrics_path: Path, sample_every: int) -> None:
        self.metrics_path = metrics_path
        self.sample_every = sample_every
        self.bar: tqdm | None = None

    def postfix(self, logs: dict[str, float]) -> dict[str, Any]:
        """The metrics the bar shows, from one step's logs."""
        return {"reward": logs.get("reward"), "kl": logs.get("kl")}

    def print_samples(self, step: int, args: TrainingArguments) -> None:
        """Print a few raw completions of the step that just ended (exploits and bugs show there first)."""

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero:  # one bar and one metrics file per run
            return
        self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc=self.desc, unit="step")
        truncate_metrics(self.metrics_path, after_step=state.global_step)  # a resumed run redoes later steps

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
        logs: dict[str, float] | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        if logs is None or "loss" not in logs or not state.is_world_process_zero:
            return
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": state.global_step, **logs}) + "\n")
        if self.bar is not None:
            self.bar.set_postfix(self.postfix(logs), refresh=False)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.bar is None:  # not the main process
            return
        self.bar.update(state.global_step - self.bar.n)
        step = state.global_step
        if step % self.sample_every == 0 or (self.sample_first_step and step == 1):
            self.print_samples(step, args)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.bar is not None:
            self.bar.close()
