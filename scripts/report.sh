#!/usr/bin/env bash
# Tables, plots and claims from every evaluation result of a model.
# Usage: bash scripts/report.sh [--model ViT-B-32 --pretrained openai --results-root results]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PYTHON" src/report.py "$@"
