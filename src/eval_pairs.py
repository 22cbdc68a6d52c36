"""Task addition for every pair of tasks (alpha chosen per pair on Val).

    python src/eval_pairs.py --model ViT-B-32 --pretrained openai --mode linear --tasks real8

Results: results/<model_id>/<run>/pairs.json (see --help for every option).
"""

from task_arithmetic.errors import cli_entry
from task_arithmetic.evaluation.cli import main


@cli_entry
def run() -> None:
    main("pairs", description=__doc__)


if __name__ == "__main__":
    run()
