"""The whole tau-Jp study on the embedded benchmark, offline, on CPU, in minutes.

    python src/run_embedded.py                 # default preset: the README's main command
    python src/run_embedded.py --preset smoke  # the tests' miniature of the same pipeline
    python src/run_embedded.py --seeds 0,1,2   # three fine-tuning seeds: mean, sd, 95 % interval
    python src/run_embedded.py --seeds 0,1,2 --pretrain-seeds   # ... each also pretrained anew
    python src/run_embedded.py --seeds 0,1,2 --pretrain-seeds 0,1,2   # 3 pretraining x 3 fine-tuning draws

Pretrains (cached) a tiny CLIP, fine-tunes every embedded task in standard, linear and tau-Jp
modes, runs every evaluation and writes tables, plots and the paper's claims checked against
these numbers to results/TinyCLIP-<tag>/report/. A re-run skips finished steps. This is
src/run_study.py's embedded preset; any of its flags (e.g. --dry-run) work here too.
"""

from __future__ import annotations

if __name__ == "__main__":  # first: the imports below take seconds, and a stop signal meanwhile must exit 75
    from task_arithmetic.training.preemption import exit_preempted_on_stop_signals

    exit_preempted_on_stop_signals()

import sys

from run_study import main as run_study_main


def main(argv: list[str] | None = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--preset" or a.startswith("--preset=") for a in argv):
        argv = ["--preset", "default", *argv]
    return run_study_main(argv)


if __name__ == "__main__":
    main()
