"""Task addition: theta_0 + alpha * sum of task vectors, alpha on the 21-point grid chosen on Val, test at that alpha and at alpha = 1.

    python src/eval_addition.py --model ViT-B-32 --pretrained openai --mode linear --tasks real8

Results: results/<model_id>/<run>/addition.json (see --help for every option).
"""

from task_arithmetic.errors import cli_entry
from task_arithmetic.evaluation.cli import main


@cli_entry
def run() -> None:
    main("addition", description=__doc__)


if __name__ == "__main__":
    run()
