#!/usr/bin/env bash
# Create .venv in the repo root and install the project: torch==2.13.0 (the CPU wheel) first, so that
# nothing later pulls a CUDA build, then this package with its test extras. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
.venv/bin/python -c "import torch, diffusers, peft; print('dcm environment ready: torch', torch.__version__, '| diffusers', diffusers.__version__, '| peft', peft.__version__)"
