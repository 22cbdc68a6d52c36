#!/usr/bin/env bash
# Submit the fine-tuning array (one job per task) and, once all of it succeeded, the evaluation.
#
#   bash scripts/slurm/submit.sh --tasks real8 --reg tau_jp --gpus 1 --time 12:00:00
#   bash scripts/slurm/submit.sh --tasks Cars,DTD --mode linear --partition gpu -- --epochs 2
#
# Options (run flags are passed to both src/finetune.py and scripts/eval_addition.sh):
#   --tasks LIST          comma-separated tasks or a benchmark name (required)
#   --mode M --reg R --variant V --tag T
#   --model NAME --pretrained TAG --cache-dir D --checkpoint-root D --results-root D --data-location D
#   --gpus N              GPUs per fine-tuning job (N > 1: torchrun with N processes)
#   --cpus N              CPUs per fine-tuning job (default 4)
#   --time T --partition P --mem M   Slurm resources of the fine-tuning jobs
#   --eval-args "..."     extra flags for the evaluation only
#   --log-dir D           where Slurm writes the job logs (default logs/slurm)
#   --no-eval             submit the fine-tuning array only
#   --dry-run             print the sbatch commands instead of running them
#   -- ...                everything after -- goes to src/finetune.py
# Prints the job ids. Logs: <log dir>/<job name>-<job id>[_<index>].out
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}

tasks="" mode="" reg="none" variant="efficient" tag="" gpus=0 cpus=4 time_limit="" partition="" mem=""
eval_args="" submit_eval=1 dry_run=0 log_dir=logs/slurm
run_flags=()   # shared by fine-tuning and evaluation
finetune_extra=()
die() { echo "error: $*" >&2; exit 2; }
while (( $# )); do
    case "$1" in
        --tasks) tasks=${2:?}; shift 2 ;;
        --mode) mode=${2:?}; shift 2 ;;
        --reg) reg=${2:?}; shift 2 ;;
        --variant) variant=${2:?}; shift 2 ;;
        --tag) tag=${2:?}; shift 2 ;;
        --model|--pretrained|--cache-dir|--checkpoint-root|--results-root|--data-location)
            run_flags+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
        --gpus) gpus=${2:?}; shift 2 ;;
        --cpus) cpus=${2:?}; shift 2 ;;
        --time) time_limit=${2:?}; shift 2 ;;
        --partition) partition=${2:?}; shift 2 ;;
        --mem) mem=${2:?}; shift 2 ;;
        --eval-args) eval_args=${2?}; shift 2 ;;
        --log-dir) log_dir=${2:?}; shift 2 ;;
        --no-eval) submit_eval=0; shift ;;
        --dry-run) dry_run=1; shift ;;
        --) shift; finetune_extra=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1'; see bash scripts/slurm/submit.sh --help" ;;
    esac
done
[[ -n $tasks ]] || die "--tasks is required (comma-separated tasks or a benchmark name)"
[[ -z $mode ]] && { [[ $reg == tau_jp ]] && mode=linear || mode=standard; }
[[ -n $tag ]] && run_flags+=(--tag "$tag")

# A single name may be a benchmark: expand it (and validate it) before anything is queued.
# Comma lists go through as they are; each job validates its task before any work.
task_csv=$tasks
if [[ $tasks != *,* ]]; then
    task_csv=$(TASKS_ARG="$tasks" "$PYTHON" - <<'PY'
import os, sys
sys.path.insert(0, "src")
from task_arithmetic.errors import UserError
from task_arithmetic.data.registry import parse_task_list
from task_arithmetic.plugins import register_builtin_plugins
register_builtin_plugins()
try:
    print(",".join(parse_task_list(os.environ["TASKS_ARG"])))
except UserError as err:
    sys.exit(f"error: {err}")
PY
) || exit 2
fi
IFS=, read -ra task_list <<< "$task_csv"
n=${#task_list[@]}
# A suite's tau-Jp runs draw on the suite's other tasks and its control (a real8 task of real20
# would otherwise use its home suite real8), unless the user chose the penalty tasks.
if [[ $task_csv != "$tasks" && $reg == tau_jp && $variant != continual && " ${finetune_extra[*]} " != *" --penalty-tasks "* ]]; then
    finetune_extra+=(--penalty-tasks "$tasks")
fi

resources=(--cpus-per-task="$cpus")
[[ -n $time_limit ]] && resources+=(--time="$time_limit")
[[ -n $partition ]] && resources+=(--partition="$partition")
[[ -n $mem ]] && resources+=(--mem="$mem")
nproc=1
if (( gpus > 0 )); then resources+=(--gres="gpu:$gpus"); nproc=$gpus; fi

# Settings travel as environment variables (sbatch exports the environment by default), which
# keeps commas and spaces inside flag values intact.
finetune_env=(env TA_REPO="$REPO" PYTHON="$PYTHON" TASKS="$task_csv" MODE="$mode" REG="$reg" VARIANT="$variant"
    NPROC="$nproc" FINETUNE_ARGS="${run_flags[*]} ${finetune_extra[*]}")
finetune_cmd=(sbatch --parsable --array="0-$((n - 1))" "${resources[@]}" --output="$log_dir/%x-%A_%a.out"
    scripts/slurm/finetune_array.sbatch)
eval_flags=("${run_flags[@]}" --mode "$mode" --reg "$reg" --variant "$variant" --tasks "$task_csv")
read -ra eval_extra <<< "$eval_args"
eval_cmd=(sbatch --parsable --output="$log_dir/%x-%j.out")
[[ -n $partition ]] && eval_cmd+=(--partition="$partition")

if (( dry_run )); then
    printf '%q ' "${finetune_env[@]}" "${finetune_cmd[@]}"; echo
    if (( submit_eval )); then
        printf '%q ' env TA_REPO="$REPO" PYTHON="$PYTHON" "${eval_cmd[@]}" --dependency=afterok:ARRAY_JOB_ID \
            scripts/slurm/evaluate.sbatch "${eval_flags[@]}" "${eval_extra[@]}"; echo
    fi
    exit 0
fi
mkdir -p "$log_dir"
array_id=$("${finetune_env[@]}" "${finetune_cmd[@]}")
array_id=${array_id%%;*}
echo "fine-tuning array: job $array_id ($n tasks: $task_csv)"
if (( submit_eval )); then
    eval_id=$(env TA_REPO="$REPO" PYTHON="$PYTHON" "${eval_cmd[@]}" --dependency="afterok:$array_id" \
        scripts/slurm/evaluate.sbatch "${eval_flags[@]}" "${eval_extra[@]}")
    eval_id=${eval_id%%;*}
    echo "evaluation: job $eval_id (after the array succeeds)"
fi
