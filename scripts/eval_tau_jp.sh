#!/usr/bin/env bash
# The tau-Jp matrix: mean ||J_theta0 f(x_j) . tau_i|| for every task vector i and dataset j.
# Usage: bash scripts/eval_tau_jp.sh [--model ViT-B-32 --pretrained openai --mode linear --tasks real8 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PYTHON" src/evaluate.py tau_jp "$@"
