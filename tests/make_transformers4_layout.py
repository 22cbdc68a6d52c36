"""Writes tests/transformers4_layout.json: the state-dict keys and shapes that transformers 4's
CLIPVisionModel holds (what its from_pretrained expects in a folder) for each exported geometry
of tests/openai_clip.py. Run once with a transformers 4 interpreter and commit the result:

    python3 -m venv /tmp/venv-t4 && /tmp/venv-t4/bin/pip install torch "transformers==4.57.*"
    /tmp/venv-t4/bin/python tests/make_transformers4_layout.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import CLIPVisionModel

sys.path.insert(0, str(Path(__file__).parent))
from openai_clip import EXPORTED_GEOMETRIES, geometry_key, openai_config  # noqa: E402

OUT = Path(__file__).with_name("transformers4_layout.json")


def main() -> None:
    if not transformers.__version__.startswith("4."):
        sys.exit(f"error: this records transformers 4's layout; {sys.executable} has transformers {transformers.__version__}")
    layouts = {}
    for name, depth in EXPORTED_GEOMETRIES:
        with torch.device("meta"):
            model = CLIPVisionModel(openai_config(name, depth).vision_config)
        layouts[geometry_key(name, depth)] = {k: list(v.shape) for k, v in model.state_dict().items()}
    OUT.write_text(_json(transformers.__version__, layouts))
    print(f"wrote {OUT} (transformers {transformers.__version__})")


def _json(version: str, layouts: dict[str, dict[str, list[int]]]) -> str:
    """JSON with one tensor a line, so a change of layout reads as a small diff."""
    blocks = []
    for geometry, layout in sorted(layouts.items()):
        lines = ",\n".join(f"   {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(layout.items()))
        blocks.append(f"  {json.dumps(geometry)}: {{\n{lines}\n  }}")
    text = f'{{\n "transformers_version": {json.dumps(version)},\n "layouts": {{\n' + ",\n".join(blocks) + "\n }\n}\n"
    json.loads(text)  # well-formed
    return text


if __name__ == "__main__":
    main()
