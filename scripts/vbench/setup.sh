#!/usr/bin/env bash
# Create the separate VBench environment (vbench 0.1.5) on a CUDA GPU node. Not run in CI: VBench pins
# transformers 4.33.2 and numpy<2, which break this project's diffusers/peft, and it needs a CUDA torch.
# Usage: scripts/vbench/setup.sh [ENV_DIR] [CUDA_TAG]   (defaults: .venv-vbench, cu121)
# Then: --set evaluate.vbench_python=ENV_DIR/bin/python (or put it in the run config).
set -euo pipefail

ENV_DIR="${1:-.venv-vbench}"
CUDA_TAG="${2:-cu121}"   # vbench 0.1.5's setup.py accepts CUDA 11.6, 11.7, 11.8 or 12.1 builds of torch
PYTHON="${PYTHON:-python3.10}"

"$PYTHON" -m venv "$ENV_DIR"
"$ENV_DIR/bin/pip" install --upgrade pip wheel setuptools
# vbench's setup.py imports torch and checks its CUDA version at install time: torch first, from the CUDA index
"$ENV_DIR/bin/pip" install torch==2.1.2 torchvision==0.16.2 --index-url "https://download.pytorch.org/whl/$CUDA_TAG"
# the pins vbench 0.1.5 declares (requirements.txt), stated here so a resolver cannot move them
"$ENV_DIR/bin/pip" install "numpy<2.0.0" "transformers==4.33.2" "timm>=0.9,<=1.0.12"
"$ENV_DIR/bin/pip" install --no-build-isolation vbench==0.1.5
# VBench-Long (vbench2_beta_long, used for clips of 5 s or more) splits videos with PySceneDetect and moviepy
"$ENV_DIR/bin/pip" install "scenedetect==0.6.5.2" "moviepy==1.0.3"   # OpenCV comes with vbench
# object_class, multiple_objects, color and spatial_relationship use GRiT, which needs detectron2 (built from git)
"$ENV_DIR/bin/pip" install --no-build-isolation "detectron2@git+https://github.com/facebookresearch/detectron2.git"

"$ENV_DIR/bin/python" - <<'PY'
import importlib.util, torch
spec = importlib.util.find_spec("vbench")
assert spec is not None, "vbench did not install"
print("vbench at", spec.submodule_search_locations[0], "| torch", torch.__version__, "| cuda", torch.cuda.is_available())
PY
echo "VBench environment ready: set evaluate.vbench_python=$(cd "$ENV_DIR" && pwd)/bin/python"
