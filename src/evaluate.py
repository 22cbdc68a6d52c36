"""Run one evaluation of fine-tuned task vectors and write results/<model_id>/<run>/<evaluation>.json.

    python src/evaluate.py addition --model ViT-B-32 --pretrained openai --mode linear --tasks real8
    python src/evaluate.py negation --help            # every evaluation's own flags

The evaluations (listed below) come from the registry in task_arithmetic/evaluation/registry.py;
scripts/eval_<evaluation>.sh calls this script.

Results made with other settings are not replaced without --force.
"""

from __future__ import annotations

import sys

from task_arithmetic.errors import UserError, cli_entry


@cli_entry
def run(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from task_arithmetic.evaluation.cli import main
    from task_arithmetic.evaluation.registry import EVALUATIONS

    if not argv or argv[0] in ("-h", "--help"):
        from task_arithmetic.cli_help import exit_codes

        print(__doc__.strip())
        print("\nevaluations (python src/evaluate.py <evaluation> --help for its flags):")
        for spec in EVALUATIONS.values():
            print(f"  {spec.name:<16s} {spec.summary}")
        print("\n" + exit_codes((0, 2, 130)))
        return 0
    if argv[0] not in EVALUATIONS:
        raise UserError(f"unknown evaluation '{argv[0]}'; choose one of {', '.join(EVALUATIONS)} (python src/evaluate.py --help)")
    main(argv[0], argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(run())
