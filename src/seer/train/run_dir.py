"""Output directories of the GRPO stages (`seer rlvr`, `seer rlmt`): the --resume / --overwrite rules.

A stage's directory holds its config.yaml, metrics.jsonl, results.json, its final adapter and TRL's
checkpoint-<step>/ folders. A checkpoint is complete only when TRL's trainer_state.json and the stage's own marker
file (written last by the stage's checkpoint callback) are both there, so a run killed while writing one resumes
from the one before. A non-empty directory is never reused silently: --resume continues its run (with the same
configuration, apart from keys that do not change what is trained), --overwrite removes the stage's own outputs.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

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
