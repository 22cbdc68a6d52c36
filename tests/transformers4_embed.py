"""Run by a transformers 4 interpreter (TA_TRANSFORMERS4_PYTHON) from the export test: load an
exported folder with CLIPVisionModel.from_pretrained, refuse any missing or unexpected weight, and
write the pooled embedding of the given images. Needs torch, transformers 4 and safetensors only.

    python tests/transformers4_embed.py FOLDER IMAGES.safetensors OUT.safetensors
"""

from __future__ import annotations

import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import CLIPVisionModel


def main(folder: str, images_file: str, out_file: str) -> None:
    assert transformers.__version__.startswith("4."), transformers.__version__
    model, info = CLIPVisionModel.from_pretrained(folder, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        sys.exit(f"error: transformers {transformers.__version__} loaded {folder} with {problems}")
    with torch.no_grad():
        pooled = model.eval()(pixel_values=load_file(images_file)["images"]).pooler_output
    save_file({"pooled": pooled.contiguous()}, out_file)
    print(f"transformers {transformers.__version__}: {folder} loaded, no missing or unexpected weights")


if __name__ == "__main__":
    main(*sys.argv[1:4])
