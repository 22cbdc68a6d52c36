#!/usr/bin/env bash
# Task addition: theta_0 + alpha * sum of task vectors, alpha on the 21-point grid chosen on Val, test at that alpha and at alpha = 1.
# Usage: bash scripts/eval_addition.sh [--model ViT-B-32 --pretrained openai --mode linear --tasks real8 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PYTHON" src/evaluate.py addition "$@"
