#!/usr/bin/env bash
# Zero-shot and single-task fine-tuned accuracy (Val held-out part and test) for one fine-tuning recipe.
# Usage: bash scripts/eval_single_task.sh [--model ViT-B-32 --pretrained openai --mode linear --tasks real8 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PYTHON" src/evaluate.py single_task "$@"
