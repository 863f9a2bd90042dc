"""`seer env`: print the versions that matter when reporting a problem or a benchmark figure."""

from __future__ import annotations

import importlib.metadata
import platform
from dataclasses import dataclass


@dataclass
class EnvArgs:
    """`seer env` takes no options."""


ARG_TYPES = (EnvArgs,)


def main(args: EnvArgs) -> int:
    import torch

    print(f"python       {platform.python_version()} ({platform.machine()})")
    for pkg in ("seer", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "safetensors"):
        try:
            print(f"{pkg:<12} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            print(f"{pkg:<12} not installed")
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"cuda device  {cuda}")
    return 0
