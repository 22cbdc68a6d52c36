import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("WANDB_MODE", "disabled")

# The built-in plug-ins (the embedded benchmark) register themselves where the registries are
# first read (task_arithmetic/plugins.py): nothing to set up here.
# Tiny models run fastest single-threaded, and the machine is shared by parallel test processes.
torch.set_num_threads(1)


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """One real Slurm cluster for every Slurm test of the run (tests/slurm_cluster.py)."""
    from slurm_cluster import start_cluster

    yield from start_cluster(tmp_path_factory)


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    """The embedded smoke study run locally once (several tests read it): (config, written files)."""
    from task_arithmetic.pipeline.study import StudyConfig, run_study

    root = tmp_path_factory.mktemp("study")
    cfg = StudyConfig("smoke", root / "data", root / "checkpoints", root / "results", device="cpu", progress=False)
    return cfg, run_study(cfg)
