r"""Merge fine-tuned models and evaluate the result, FusionBench-style (Hydra configs).

    python src/merge.py method=task_arithmetic method.scaling_factor=0.5 \
        modelpool=embedded/TinyCLIP_all taskpool=embedded/all
    python src/merge.py -m method.scaling_factor=0.1,0.3,0.5      # a sweep: one merge per value
    python src/merge.py --cfg job method=ties_merging             # print the composed config only

Groups (config/<group>/<name>.yaml): method, modelpool, taskpool (taskpool=null skips evaluation).
Any key can be overridden as dotted key=value (e.g. modelpool.models.svhn=/path/to/folder),
`+a.b=v` adds a key, `${...}` interpolates, `hydra.*` keys are Hydra's; unknown keys are errors.
Program keys (config/merge.yaml): merged_model_save_path, report_save_path, checkpoint_root,
results_root, data_location, device, print_config, dry_run, fast_dev_run, seed.
"""

from __future__ import annotations

import sys

from task_arithmetic.errors import cli_entry


def usage() -> str:
    from task_arithmetic.cli_help import exit_codes
    from task_arithmetic.merging.config import GROUPS, available

    lines = [__doc__.strip(), ""]
    lines += [f"{group}: {', '.join(available(group))}" for group in GROUPS]
    return "\n".join([*lines, "", exit_codes((0, 2, 130))])


@cli_entry
def main(argv: list[str] | None = None) -> dict | list:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(usage())
        return {}
    from task_arithmetic.merging.config import compose_job, config_yaml, parse_command_line, sweep
    from task_arithmetic.merging.program import check_outputs, check_switches, run_program

    request = parse_command_line(argv)
    jobs = sweep(request.overrides) if request.multirun else [request.overrides]
    composed = [compose_job(job) for job in jobs]  # every job's config is checked before any runs
    for config, _choices, _hydra in composed:
        check_switches(config)
        check_outputs(config)  # output paths too: never found out after a long merge
    if request.cfg is not None:
        for config, _choices, hydra in composed:
            if request.cfg in ("hydra", "all"):
                print(config_yaml({"hydra": hydra}).rstrip())
            if request.cfg in ("job", "all"):
                print(config_yaml(config).rstrip())
        return {}
    reports = []
    for number, (config, choices, _hydra) in enumerate(composed):
        if request.multirun:
            print(f"[multirun] job {number}: {' '.join(jobs[number])}")
        reports.append(run_program(config, choices))
    return reports if request.multirun else reports[0]


if __name__ == "__main__":
    main()
