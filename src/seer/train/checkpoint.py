"""Atomic training checkpoints: write everything to a staging folder, then rename it into place.

    root/
      checkpoint-000200/          # complete: renamed into place after every file was written
        model.safetensors         # the whole model's state (safetensors)
        optimizer.pt              # optimizer state_dict (tensors and numbers only: read with weights_only=True)
        scheduler.pt              # learning-rate scheduler state_dict
        rng_state_<rank>.pt       # python, numpy, torch (and CUDA) RNG states of each process
        trainer_state.json        # {"step": 200, ...}: written last
      .staging-checkpoint-000300/ # a save in progress, or one a crash tore: never read, cleared by the next save

A rename is atomic, so a folder named ``checkpoint-<step>`` is either complete or absent; `latest_checkpoint`
also checks that the files are there, so a checkpoint someone emptied by hand is skipped, not half-loaded.
Only the last `keep_last` checkpoints are kept.

Several processes (DDP): every process calls `save_checkpoint` with its rank and a `barrier` (e.g.
``accelerator.wait_for_everyone``); the main process writes the shared files and renames, each process writes
its own RNG state. Loading reads the same files on every process.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from seer.errors import SeerError
from seer.models.base import safetensors_shapes

PREFIX = "checkpoint-"
STAGING_PREFIX = ".staging-"
STATE_FILE = "trainer_state.json"
REQUIRED_FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", STATE_FILE)
_NAME = re.compile(rf"^{PREFIX}(\d+)$")


def checkpoint_name(step: int) -> str:
    """Folder name of the checkpoint at `step` (zero-padded, so names sort like steps)."""
    return f"{PREFIX}{step:06d}"


def rng_state() -> dict[str, Any]:
    """The RNG states of python, numpy, torch and (if present) CUDA, as tensors/lists that weights_only can read."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    root: str | os.PathLike,
    step: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any] | None = None,
    keep_last: int = 2,
    rank: int = 0,
    is_main: bool = True,
    barrier: Callable[[], None] = lambda: None,
) -> Path:
    """Write the checkpoint of `step` atomically under `root`; returns its folder.

    Args:
        model: the unwrapped model; its state goes to model.safetensors (shared tensors are handled).
        optimizer, scheduler: anything with ``state_dict()``.
        state: JSON-serialisable extras (stage, data position, ...) stored with the step in trainer_state.json.
        keep_last: how many checkpoints to keep (older ones are deleted after the new one is in place).
        rank, is_main, barrier: for several processes; the defaults are one process.
    """
    root = Path(root)
    staging = root / f"{STAGING_PREFIX}{checkpoint_name(step)}"
    final = root / checkpoint_name(step)
    if is_main:
        shutil.rmtree(staging, ignore_errors=True)  # a torn save of the same step
        staging.mkdir(parents=True)
    barrier()
    torch.save(rng_state(), staging / f"rng_state_{rank}.pt")
    if is_main:
        save_model(model, str(staging / "model.safetensors"))
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        (staging / STATE_FILE).write_text(json.dumps({"step": step, **(state or {})}, indent=2))
    barrier()  # every process's RNG file is in the staging folder
    if is_main:
        if final.exists():  # the same step saved again (a resumed run): swap, then drop the old one
            old = root / f"{STAGING_PREFIX}old-{checkpoint_name(step)}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(staging, final)
            shutil.rmtree(old)
        else:
            os.replace(staging, final)
        for stale in list_checkpoints(root)[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(stale)
    barrier()
    return final


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """The complete checkpoints under `root`, oldest first (staging folders and incomplete ones are skipped)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_dir() and all((path / f).is_file() for f in REQUIRED_FILES):
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    """The complete checkpoint with the highest step under `root`, or None."""
    found = list_checkpoints(root)
    return found[-1] if found else None


def read_trainer_state(checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The trainer_state.json of a checkpoint (with at least an integer "step")."""
    file = Path(checkpoint) / STATE_FILE
    try:
        state = json.loads(file.read_text())
    except (OSError, ValueError) as error:
        raise SeerError(f"{file}: cannot read the trainer state ({error})") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise SeerError(f"{file}: expected a JSON object with an integer 'step'")
    return state


def load_checkpoint(
    checkpoint: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    rank: int = 0,
) -> dict[str, Any]:
    """Load a checkpoint into `model` (and `optimizer`, `scheduler`, this process's RNG); returns its trainer state.

    Everything but the safetensors weights is read with ``torch.load(weights_only=True)``; optimizer state lands on
    the device of the parameters it belongs to.
    """
    checkpoint = Path(checkpoint)
    state = read_trainer_state(checkpoint)
    weights = checkpoint / "model.safetensors"
    # Shapes first, from the header (a truncated file fails here too): torch's own size-mismatch error is a
    # many-line dump that names neither the file nor what to do.
    ours = model.state_dict()
    for name, shape in safetensors_shapes(weights).items():
        if name in ours and tuple(ours[name].shape) != shape:
            raise SeerError(
                f"{weights}: tensor {name!r} has shape {list(shape)}, this model's has {list(ours[name].shape)} "
                "(a checkpoint of another model_shape?)"
            )
    missing, unexpected = load_model(model, str(weights), strict=False)
    if missing or unexpected:
        first = (missing or unexpected)[0]
        kind = "missing" if missing else "unexpected"
        raise SeerError(f"{weights}: {kind} tensor {first!r} for this model")
    for obj, name in ((optimizer, "optimizer.pt"), (scheduler, "scheduler.pt")):
        if obj is None:
            continue
        try:
            obj.load_state_dict(_load(checkpoint / name))
        except (ValueError, KeyError, TypeError, IndexError) as error:  # another run's optimizer or schedule
            raise SeerError(f"{checkpoint / name}: does not fit this run ({_first_line(error)})") from None
    rng_file = checkpoint / f"rng_state_{rank}.pt"
    if rng_file.is_file():  # absent when resuming on more processes than saved: those keep their fresh RNG
        set_rng_state(_load(rng_file))
    return state


def _load(file: Path) -> Any:
    """torch.load with weights_only=True: tensors, numbers and containers only; a pickle that would run code or
    build arbitrary objects is refused (pickle.UnpicklingError), never executed."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise SeerError(f"{file}: cannot read this checkpoint file ({_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
