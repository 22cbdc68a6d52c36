#!/usr/bin/env bash
# Task negation: per task theta_0 - alpha * tau, alpha minimising target Val accuracy with control >= 0.95 x zero-shot.
# Usage: bash scripts/eval_negation.sh [--model ViT-B-32 --pretrained openai --mode linear --tasks real8 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PYTHON" src/evaluate.py negation "$@"
