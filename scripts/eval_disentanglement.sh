#!/usr/bin/env bash
# Weight disentanglement of task pairs: prediction disagreement over an (alpha1, alpha2) grid.
# Usage: bash scripts/eval_disentanglement.sh [--model ViT-B-32 --pretrained openai --mode linear --tasks real8 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PYTHON" src/evaluate.py disentanglement "$@"
