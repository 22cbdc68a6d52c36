"""Task negation: per task theta_0 - alpha * tau, alpha minimising target Val accuracy with control >= 0.95 x zero-shot.

    python src/eval_negation.py --model ViT-B-32 --pretrained openai --mode linear --tasks real8

Results: results/<model_id>/<run>/negation.json (see --help for every option).
"""

from task_arithmetic.errors import cli_entry
from task_arithmetic.evaluation.cli import main


@cli_entry
def run() -> None:
    main("negation", description=__doc__)


if __name__ == "__main__":
    run()
