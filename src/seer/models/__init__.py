"""Unified multimodal model backends behind the `UnifiedModel` protocol (see `seer.models.base`).

Backends are listed as lazy import strings, so choosing one never imports the others' dependencies:

    umm = load_backend("janus", shape="shapeworld-tiny")         # JanusUMM.from_shape
    umm = load_backend("janus", path="checkpoints/janus-pro-1b")  # JanusUMM.from_pretrained

The training commands load their model through `load_umm` (a recipe's ``backend``, ``model``, ``model_shape``,
``dtype`` and ``device`` keys), which also names the weights for caches keyed by them.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any, Literal

import torch

from seer.errors import SeerError
from seer.models.base import ImageGeneration, TextGeneration, TokenLogProbs, UnifiedModel

BACKENDS: dict[str, str] = {
    "janus": "seer.models.janus:JanusUMM",
    "harmon": "seer.models.harmon:HarmonUMM",
}

__all__ = [
    "BACKENDS",
    "ImageGeneration",
    "TextGeneration",
    "TokenLogProbs",
    "UnifiedModel",
    "backend_class",
    "directory_identity",
    "load_backend",
    "load_umm",
]


def backend_class(name: str) -> type:
    """The class of backend ``name``, imported on first use."""
    if name not in BACKENDS:
        raise SeerError(f"backend {name!r}: expected one of {sorted(BACKENDS)}")
    module, _, attribute = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def load_backend(name: str, *, path: str | None = None, **kwargs: Any) -> UnifiedModel:
    """Backend ``name`` loaded from a local checkpoint ``path``, or built at a random-weight shape without one.

    Other keyword arguments go to the backend's ``from_pretrained(path, ...)`` or ``from_shape(...)``.
    """
    cls = backend_class(name)
    return cls.from_pretrained(path, **kwargs) if path is not None else cls.from_shape(**kwargs)


def load_umm(
    backend: str,
    model: str | None,
    model_shape: str | None,
    dtype: Literal["float32", "bfloat16"],
    device: str,
    shape_seed: int = 0,
) -> tuple[UnifiedModel, str]:
    """The model of a training recipe and a string identifying its weights (part of cache keys).

    Args:
        backend: a key of `BACKENDS` (``janus`` or ``harmon``).
        model: a checkpoint directory; with ``model_shape`` also null, the embedded ShapeWorld model (janus only).
        model_shape: a random-weight shape of the backend (e.g. ``shapeworld-tiny``, ``janus-pro-1b``,
            ``harmon-tiny``, ``harmon-1.5b``), whose tokenizer is a word-level one over ShapeWorld's words.
        dtype: weight dtype of a checkpoint or shape (the embedded model keeps its own, float32).
        device: where the weights go; plain ``cuda`` under ``accelerate launch`` is this process's GPU.
        shape_seed: the seed of a random-weight shape's weights.
    """
    device = process_device(device)
    cls = backend_class(backend)
    torch_dtype = getattr(torch, dtype)
    if model is not None and model_shape is not None:
        raise SeerError("model and model_shape: expected at most one (a checkpoint, or a random-weight shape)")
    if model_shape is not None:
        from seer.worlds.shapeworld.corpus import corpus_words

        umm = cls.from_shape(model_shape, seed=shape_seed, words=corpus_words(), dtype=torch_dtype, device=device)
        return umm, f"shape:{model_shape}:seed={shape_seed}:{dtype}"
    if model is None:
        if backend != "janus":
            raise SeerError(f"key 'model': the {backend} backend needs a model directory or a model_shape (the "
                            "embedded model is a janus one)")  # fmt: skip
        from seer.embedded import EMBEDDED_MODEL_DIR, load_embedded_model

        return load_embedded_model(device), directory_identity(EMBEDDED_MODEL_DIR)
    return cls.from_pretrained(model, dtype=torch_dtype, device=device), directory_identity(Path(model))


def process_device(device: str) -> str:
    """`device`, with plain ``cuda`` made this process's GPU when several processes train (each DDP rank its own
    card; ``cuda`` alone is GPU 0 for all of them until the Trainer moves the model, after the pairs were drawn)."""
    if device != "cuda":
        return device
    state = process_state(device)
    return f"cuda:{state.local_process_index}" if state.num_processes > 1 else device


def process_state(device: str) -> Any:
    """accelerate's `PartialState` of this process, as the Trainer on `device` sees it. The first call fixes it for
    the whole process, and on a CPU processes started by ``torchrun`` form a (gloo) group only when it is told
    ``cpu``: called without it, each would train alone on the whole batch."""
    from accelerate import PartialState

    return PartialState(cpu=torch.device(device).type == "cpu")


def directory_identity(directory: Path) -> str:
    """A cheap fingerprint of a checkpoint directory: config.json's bytes and each weight file's size and mtime."""
    digest = hashlib.sha256((directory / "config.json").read_bytes())
    for weights in sorted(directory.glob("*.safetensors")):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"dir:{directory.resolve()}:{digest.hexdigest()[:16]}"
