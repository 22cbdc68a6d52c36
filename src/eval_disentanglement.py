"""Weight disentanglement of task pairs: prediction disagreement over an (alpha1, alpha2) grid.

    python src/eval_disentanglement.py --model ViT-B-32 --pretrained openai --mode linear --tasks real8

Results: results/<model_id>/<run>/disentanglement.json (see --help for every option).
"""

from task_arithmetic.errors import cli_entry
from task_arithmetic.evaluation.cli import main


@cli_entry
def run() -> None:
    main("disentanglement", description=__doc__)


if __name__ == "__main__":
    run()
