"""The embedded default model: the tiny ShapeWorld UMM that ships inside the package.

    from seer.embedded import load_embedded_model
    umm = load_embedded_model()          # a JanusUMM on the CPU

It is a Janus-architecture model pre-trained by `seer pretrain --config recipes/pretrain/shapeworld-tiny.yaml`,
whose output directory is copied to `EMBEDDED_MODEL_DIR` (package data: config.json, model.safetensors and the
processor files). Commands whose `--model` is left out load it from here.
"""

from __future__ import annotations

from pathlib import Path

from seer.errors import SeerError
from seer.models.janus import JanusUMM

EMBEDDED_MODEL_DIR: Path = Path(__file__).resolve().parent / "assets" / "shapeworld-tiny"
PRETRAIN_COMMAND = "seer pretrain --config recipes/pretrain/shapeworld-tiny.yaml"


def load_embedded_model(device: str = "cpu") -> JanusUMM:
    """The shipped ShapeWorld UMM on `device`; SeerError (one line) when the package does not hold it."""
    # Read the module attribute at call time, so that a test (or a user) can point it elsewhere.
    directory = EMBEDDED_MODEL_DIR
    if not (directory / "config.json").is_file():
        raise SeerError(
            f"{directory}: the embedded ShapeWorld model is not there (no config.json); "
            f"run `{PRETRAIN_COMMAND}` or pass --model DIR"
        )
    return JanusUMM.from_pretrained(directory, device=device)
