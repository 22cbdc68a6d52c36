"""Run an entry script with heavy libraries made unimportable: `--help` and flag errors must be
answered from the registries alone, before torch, open_clip or transformers load (seconds each).

    python tests/help_without_heavy_imports.py src/finetune.py --help

Exits as the script does; importing a blocked module raises ImportError naming it (and the
script's traceback shows who imported it).
"""

from __future__ import annotations

import importlib.abc
import runpy
import sys
from pathlib import Path

HEAVY = ("torch", "open_clip", "transformers", "torchvision", "datasets", "pandas", "pyarrow", "matplotlib", "scipy", "sklearn",
         "wandb", "hydra", "omegaconf", "safetensors", "PIL", "tqdm")


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in HEAVY:
            raise ImportError(f"heavy import during help: {name}")
        return None


if __name__ == "__main__":
    script = Path(sys.argv[1])
    sys.meta_path.insert(0, Blocker())
    sys.argv = [str(script), *sys.argv[2:]]
    sys.path.insert(0, str(script.parent))
    runpy.run_path(str(script), run_name="__main__")
