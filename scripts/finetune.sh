#!/usr/bin/env bash
# Fine-tune one task: standard, linearised (--mode linear) or with the tau-Jp penalty (--reg tau_jp).
# Usage: bash scripts/finetune.sh --task Cars [--reg tau_jp --variant strict ...]   (--help lists every flag)
# Several processes / GPUs: NPROC=4 bash scripts/finetune.sh --task Cars --reg tau_jp
# Exit code 75: stopped by SIGTERM/SIGUSR1 with its state saved; run the same command to resume.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if (( ${NPROC:-1} > 1 )); then
    exec "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" src/finetune.py "$@"
fi
exec "$PYTHON" src/finetune.py "$@"
