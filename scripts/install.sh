#!/usr/bin/env bash
# Set up a virtual environment in .venv with seer and its test tools. Idempotent: re-running is cheap.
# TORCH_SPEC picks the torch build: the default is the CPU wheel this project's CPU machines carry; on a GPU
# machine set TORCH_SPEC to the CUDA build you want (e.g. TORCH_SPEC="torch") or SKIP_TORCH=1 to keep yours.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if [ -z "${SKIP_TORCH:-}" ]; then
  .venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -c "import seer, torch, transformers; print('seer', seer.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__)"
