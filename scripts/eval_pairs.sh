#!/usr/bin/env bash
# Task addition for every pair of tasks (alpha chosen per pair on Val).
# Usage: bash scripts/eval_pairs.sh [--model ViT-B-32 --pretrained openai --mode linear --tasks real8 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PYTHON" src/evaluate.py pairs "$@"
