"""scripts/slurm/submit.sh --dry-run (no Slurm needed): a suite's tau-Jp jobs use the suite's penalty tasks."""

import subprocess


def test_suite_tau_jp_jobs_draw_on_the_suite(repo_root):
    def dry(*args: str) -> str:
        out = subprocess.run(["bash", "scripts/slurm/submit.sh", "--dry-run", *args], cwd=repo_root, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()[0]

    suite = dry("--tasks", "real20", "--reg", "tau_jp")
    assert "--array=0-19" in suite and r"FINETUNE_ARGS=\ --penalty-tasks\ real20" in suite
    assert "penalty-tasks" not in dry("--tasks", "Cars,DTD", "--reg", "tau_jp")  # an explicit list: each task's default
    chosen = dry("--tasks", "real14", "--reg", "tau_jp", "--", "--penalty-tasks", "ImageNet")
    assert chosen.count("--penalty-tasks") == 1 and "ImageNet" in chosen
