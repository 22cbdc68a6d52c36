"""Export a fine-tuned run, a merged model or theta_0 as a Hugging Face CLIPVisionModel folder.

    python src/export_checkpoints.py checkpoints/ViT-B-32-openai/Cars/standard/finetuned.safetensors out/Cars
    python src/export_checkpoints.py merged.safetensors out/merged --force

The folder loads with `CLIPVisionModel.from_pretrained(folder)` in transformers 4 and 5, with no
missing weight; the encoder's projection is kept beside it (visual_projection.safetensors), which
src/import_checkpoints.py reads back.
"""

from __future__ import annotations

from pathlib import Path

from task_arithmetic.cli_help import parser as help_parser
from task_arithmetic.errors import cli_entry


@cli_entry
def main(argv: list[str] | None = None) -> Path:
    parser = help_parser(__doc__)
    parser.add_argument("encoder", type=Path, help="an image-encoder .safetensors written by this suite")
    parser.add_argument("folder", type=Path, help="output folder (created)")
    parser.add_argument("--force", action="store_true", help="replace a model already in the folder")
    args = parser.parse_args(argv)
    from task_arithmetic.checkpoints.exporting import export_hf  # torch, transformers: after the flags are parsed

    folder = export_hf(args.encoder, args.folder, args.force)
    print(f"exported {args.encoder} -> {folder}")
    return folder


if __name__ == "__main__":
    main()
