"""The tau-Jp matrix: mean ||J_theta0 f(x_j) . tau_i|| for every task vector i and dataset j.

    python src/eval_tau_jp.py --model ViT-B-32 --pretrained openai --mode linear --tasks real8

Results: results/<model_id>/<run>/tau_jp.json (see --help for every option).
"""

from task_arithmetic.errors import cli_entry
from task_arithmetic.evaluation.cli import main


@cli_entry
def run() -> None:
    main("tau_jp", description=__doc__)


if __name__ == "__main__":
    run()
