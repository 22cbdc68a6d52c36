import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("WANDB_MODE", "disabled")
# Tiny models run fastest single-threaded, and the machine is shared by parallel test processes.
torch.set_num_threads(1)


@pytest.fixture
def repo_root() -> Path:
    return REPO
