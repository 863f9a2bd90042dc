"""Unified multimodal model backends behind the `UnifiedModel` protocol (see `seer.models.base`).

Backends are listed as lazy import strings, so choosing one never imports the others' dependencies:

    umm = load_backend("janus", shape="shapeworld-tiny")         # JanusUMM.from_shape
    umm = load_backend("janus", path="checkpoints/janus-pro-1b")  # JanusUMM.from_pretrained
"""

from __future__ import annotations

import importlib
from typing import Any

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
    "load_backend",
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
