#!/usr/bin/env bash
# Submit one recipe's fine-tuning array and its evaluation as Slurm jobs: a thin wrapper over the
# study's Slurm launcher (one Slurm path), for the common case of one run and task addition.
#
#   bash scripts/slurm/submit.sh --tasks real8 --reg tau_jp --gpus 1 --time 12:00:00
#   bash scripts/slurm/submit.sh --tasks Cars,DTD --mode linear --partition gpu --epochs 2 --dry-run
#
# is   python src/run_study.py --launcher slurm --evaluations addition <the same flags>
# so every src/run_study.py flag works here: --run NAME or --mode/--reg/--variant/--tag (the same
# run names as src/finetune.py), --model/--pretrained/--checkpoint-root/..., fine-tuning flags
# (--epochs, --lr, --penalty-coef, ...), --gpus/--cpus/--time/--partition/--mem/--log-dir, and
# --evaluations to evaluate more than addition. Only what is missing is submitted; --dry-run prints
# the sbatch commands. Logs: <log dir>/<job name>-<job id>[_<index>].out
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
for arg in "$@"; do
    case "$arg" in
        --evaluations|--evaluations=*) exec "$PYTHON" src/run_study.py --launcher slurm "$@" ;;
    esac
done
exec "$PYTHON" src/run_study.py --launcher slurm --evaluations addition "$@"
