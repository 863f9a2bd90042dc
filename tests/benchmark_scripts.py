"""Loading a script of benchmarks/ as a module, for the tests that check a benchmark itself (benchmarks are
scripts, not a package)."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """The module of benchmarks/<name>.py."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # registered before it runs, as dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
