"""Zero-shot and single-task fine-tuned accuracy (Val held-out part and test) for one fine-tuning recipe.

    python src/eval_single_task.py --model ViT-B-32 --pretrained openai --mode linear --tasks real8

Results: results/<model_id>/<run>/single_task.json (see --help for every option).
"""

from task_arithmetic.errors import cli_entry
from task_arithmetic.evaluation.cli import main


@cli_entry
def run() -> None:
    main("single_task", description=__doc__)


if __name__ == "__main__":
    run()
