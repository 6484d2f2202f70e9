#!/usr/bin/env bash
# Create .venv in the repo root and install the project: torch==2.13.0 (the CPU wheel) first, so that
# nothing later pulls a CUDA build, then this package with its test extras. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# A machine's pip config may name local indexes (file:///opt/pypi...) that do not exist here: pip then warns
# once per package looked up (~270 lines). Only those lines are dropped; every other warning and error, and
# pip's exit status, come through.
pip_install() {
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" \
    2> >(grep -v "^WARNING: Location 'file://[^']*' is ignored: " >&2)
}
pip_install --upgrade pip
pip_install "torch==2.13.0"
pip_install -e ".[test]"
.venv/bin/python -c "import torch, diffusers, peft; print('dcm environment ready: torch', torch.__version__, '| diffusers', diffusers.__version__, '| peft', peft.__version__)"
