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


@pytest.fixture(scope="session")
def smoke_all(smoke_study, tmp_path_factory):
    """The smoke study with every recipe group on top (the field's recipes, the paper's further
    experiments), every evaluation but merging x recipe (run on the paper's recipes by the smoke
    study itself): a copy of it, so only the extra units run. (config, written files)"""
    import dataclasses
    import shutil

    from task_arithmetic.evaluation.registry import EVALUATIONS
    from task_arithmetic.pipeline.study import run_study
    from task_arithmetic.recipes import Group, recipes_in

    shared, _ = smoke_study
    root = tmp_path_factory.mktemp("smoke_all")
    for folder in ("data", "checkpoints", "results"):
        shutil.copytree(shared.checkpoint_root.parent / folder, root / folder, copy_function=shutil.copy2)
    cfg = dataclasses.replace(shared, data_location=root / "data", checkpoint_root=root / "checkpoints", results_root=root / "results",
                              recipes=recipes_in(*Group), evaluations=tuple(e for e in EVALUATIONS if e != "merging"))
    return cfg, run_study(cfg)
