r"""Merge fine-tuned models and evaluate the result, FusionBench-style.

    python src/merge.py method=task_arithmetic method.scaling_factor=0.5 \
        modelpool=embedded/TinyCLIP_all taskpool=embedded/all

Groups (config/<group>/<name>.yaml): method, modelpool, taskpool (taskpool=null skips evaluation).
Any key can be overridden as dotted key=value (e.g. modelpool.models.svhn=/path/to/folder);
unknown keys are errors. Program keys (config/merge.yaml): merged_model_save_path,
report_save_path, checkpoint_root, results_root, data_location, device, print_config, dry_run,
fast_dev_run.
"""

from __future__ import annotations

import sys

from task_arithmetic.errors import cli_entry


def usage() -> str:
    from task_arithmetic.merging.config import GROUPS, available

    lines = [__doc__.strip(), ""]
    lines += [f"{group}: {', '.join(available(group))}" for group in GROUPS]
    return "\n".join(lines)


@cli_entry
def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(usage())
        return {}
    from task_arithmetic.merging.config import compose
    from task_arithmetic.merging.program import run_program

    config, choices = compose(argv)
    return run_program(config, choices)


if __name__ == "__main__":
    main()
