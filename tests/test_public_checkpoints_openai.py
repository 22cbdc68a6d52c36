"""Public checkpoints of the real OpenAI geometries.

HF folders are built with transformers' own classes from the public configs of
openai/clip-vit-base-patch32, -base-patch16 and -large-patch14 (random weights; ViT-B/32 at full
size, B/16 and L/14 one layer deep), fine-tuned models saved as public ones come (safetensors,
sharded safetensors, transformers 4's pytorch_model.bin, open_clip state-dict files). Each
geometry is imported and exported; the exports are loaded back with transformers 5, compared with
transformers 4's key layout (tests/transformers4_layout.json, written by
tests/make_transformers4_layout.py), and loaded with transformers 4 itself when
TA_TRANSFORMERS4_PYTHON names an interpreter that has it. The README's "Public checkpoints in and
out" section is run command by command, each command its own `python src/...` process.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fakedata import make_imagenet, make_mnist, make_svhn
from openai_clip import finetuned_vision, geometry_key, hf_image_embedding, openai_clip, openai_config, save_hf, save_open_clip

from task_arithmetic.checkpoints.hf_convert import named_config, open_clip_config, vision_tower
from task_arithmetic.io import load_weights
from task_arithmetic.models.encoder import load_encoder

REPO = Path(__file__).resolve().parents[1]
LAYOUT_4 = json.loads((Path(__file__).with_name("transformers4_layout.json")).read_text())
TRANSFORMERS4_PYTHON = os.environ.get("TA_TRANSFORMERS4_PYTHON")


def run_script(cwd: Path, script: str, *args: str) -> str:
    """`python src/<script> args` in `cwd`, as a user runs it; its stdout (a failure shows stderr)."""
    done = subprocess.run([sys.executable, str(REPO / "src" / script), *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{script} {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def printed_model(import_stdout: str) -> str:
    """The --model the import tells the user to pass."""
    use = next(line for line in import_stdout.splitlines() if line.startswith("use: "))
    return shlex.split(use)[shlex.split(use).index("--model") + 1]


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def check_export(folder: Path, run_file: Path, geometry: str, images: torch.Tensor) -> None:
    """transformers 5 loads the export with no missing or unexpected weight and computes what the
    suite's encoder computes; its keys and shapes are those transformers 4 expects."""
    from transformers import CLIPVisionModel

    model, info = CLIPVisionModel.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    projection = load_weights(folder / "visual_projection.safetensors")[0]["weight"]
    with torch.no_grad():
        suite = load_encoder(run_file)(images)
    assert relative_error(hf_image_embedding(model.eval(), projection, images), suite) <= 1e-5
    written = load_weights(folder / "model.safetensors")[0]
    assert {k: list(v.shape) for k, v in written.items()} == LAYOUT_4["layouts"][geometry]


def transformers4_pooled(folder: Path, images: torch.Tensor, scratch: Path) -> torch.Tensor:
    """The pooled output of `folder` as transformers 4 loads and computes it (tests/transformers4_embed.py,
    which fails on any missing or unexpected weight)."""
    from safetensors.torch import load_file, save_file

    save_file({"images": images.contiguous()}, scratch / "images.safetensors")
    done = subprocess.run([TRANSFORMERS4_PYTHON, str(Path(__file__).with_name("transformers4_embed.py")), str(folder),
                           str(scratch / "images.safetensors"), str(scratch / "pooled.safetensors")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return load_file(scratch / "pooled.safetensors")["pooled"]


# One OpenAI geometry per parameter: (name, depth or None for full size, how the fine-tune is stored).
GEOMETRIES = [("ViT-B-32", None, "safetensors"), ("ViT-B-16", 1, "open_clip"), ("ViT-L-14", 1, "safetensors")]


@pytest.fixture(scope="module", params=GEOMETRIES, ids=[geometry_key(n, d) for n, d, _ in GEOMETRIES])
def imported(request, tmp_path_factory):
    """An OpenAI geometry imported (θ0 + one fine-tuned run) and the run exported. In this process:
    the README test below runs every script as its own process (a fresh one must rebuild an
    architecture open_clip lacks from the files alone), on ViT-B/32's configuration."""
    from export_checkpoints import main as export_main  # src/ entry scripts (conftest puts src/ on the path)
    from import_checkpoints import main as import_main

    name, depth, form = request.param
    root = tmp_path_factory.mktemp(geometry_key(name, depth).replace("@", "-"))
    clip = openai_clip(name, depth)
    clip.save_pretrained(root / "clip")
    tuned = finetuned_vision(clip, seed=1)
    source = ["--finetuned-open-clip", f"Cars={save_open_clip(clip, tuned, root / 'cars.pt')}"] if form == "open_clip" else \
        ["--finetuned-hf", f"Cars={save_hf(tuned, root / 'cars', form)}"]
    theta0_file, run_file = import_main(["--pretrained-hf", str(root / "clip"), *source, "--tag", "public", "--checkpoint-root", str(root / "ck")])
    export_main([str(run_file), str(root / "exported")])
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    return dict(name=name, depth=depth, root=root, clip=clip, tuned=tuned, model=load_encoder(run_file).model_name, run=run_file, images=images)


def test_import_recognises_openai_architectures_and_converts_exactly(imported):
    if imported["depth"] is None:
        assert imported["model"] == imported["name"]  # a real OpenAI CLIP is open_clip's own architecture
    else:
        assert imported["model"].startswith("HF-CLIP-")
    clip, images = imported["clip"], imported["images"]
    with torch.no_grad():
        suite = load_encoder(imported["run"])(images)
    assert relative_error(suite, hf_image_embedding(imported["tuned"], clip.visual_projection.weight, images)) <= 1e-5


@pytest.mark.parametrize("name", ["ViT-B-32", "ViT-B-16", "ViT-L-14"])
def test_every_openai_configuration_is_open_clips_own_architecture(name):
    """At full size (the configuration alone: building ViT-L/14 would take the test's time)."""
    config, quick_gelu = open_clip_config(openai_config(name))
    assert named_config(config) == name and quick_gelu


def test_export_loads_in_transformers5_and_has_transformers4_layout(imported):
    check_export(imported["root"] / "exported", imported["run"], geometry_key(imported["name"], imported["depth"]), imported["images"])


def test_export_round_trips_bit_exactly(imported):
    from transformers import CLIPVisionModel

    back = vision_tower(CLIPVisionModel.from_pretrained(imported["root"] / "exported")).state_dict()
    original = vision_tower(imported["tuned"]).state_dict()
    assert back.keys() == original.keys() and all(torch.equal(back[k], original[k]) for k in original)


@pytest.mark.skipif(not TRANSFORMERS4_PYTHON, reason="TA_TRANSFORMERS4_PYTHON (an interpreter with transformers 4) not given")
def test_export_loads_in_transformers4_itself(imported):
    folder = imported["root"] / "exported"
    projection = load_weights(folder / "visual_projection.safetensors")[0]["weight"]
    with torch.no_grad():
        suite = load_encoder(imported["run"])(imported["images"])
    pooled = transformers4_pooled(folder, imported["images"], imported["root"])
    assert relative_error(pooled @ projection.t(), suite) <= 1e-5


def readme_commands() -> list[list[str]]:
    """The commands of the README's public-checkpoint section, continuation lines joined."""
    section = (REPO / "README.md").read_text().split("## Public checkpoints in and out", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


# What the test adds to each README command: the roots (the scripts default to the repository's
# own folders), and sizes small enough for CPU and fake data. Nothing else.
SHRINK = {
    "import_checkpoints.py": ["--checkpoint-root", "checkpoints"],
    "run_study.py": ["--checkpoint-root", "checkpoints", "--results-root", "results", "--device", "cpu", "--jobs", "1", "--no-progress",
                     "--max-eval-samples", "4", "--alpha-step", "0.5"],
    "finetune.py": ["--checkpoint-root", "checkpoints", "--results-root", "results", "--device", "cpu", "--no-progress",
                    "--max-steps", "1", "--batch-size", "2", "--max-train-samples", "4", "--penalty-batch", "1"],
    "export_checkpoints.py": [],
}


def test_readme_public_checkpoints_section_works_end_to_end(tmp_path):
    """The README's commands, in order, each its own process, on folders named as the README names
    them: ViT-B/32's configuration one layer deep (θ0 as HF CLIPModel; MNIST's fine-tune as sharded
    safetensors, SVHN's as transformers 4's pytorch_model.bin), fake MNIST, SVHN and ImageNet."""
    clip = openai_clip("ViT-B-32", depth=1)
    clip.save_pretrained(tmp_path / "clip-vit-base-patch32")
    save_hf(finetuned_vision(clip, seed=1, scale=0.05), tmp_path / "clip-vit-base-patch32_mnist", "sharded")
    save_hf(finetuned_vision(clip, seed=2, scale=0.05), tmp_path / "clip-vit-base-patch32_svhn", "bin")
    for make in (make_mnist, make_svhn, make_imagenet):
        make(tmp_path / "data")
    commands = readme_commands()
    assert [Path(c[1]).name for c in commands] == list(SHRINK)
    model = None
    for command in commands:
        script = Path(command[1]).name
        args = [a.replace("DIR", "data") for a in command[2:]]
        if model is not None:  # a shrunk model is not ViT-B-32: the name the import printed stands in for it
            args = [a.replace("ViT-B-32", model) for a in args]
        out = run_script(tmp_path, script, *args, *SHRINK[script])
        if script == "import_checkpoints.py":
            model = printed_model(out)
            assert model.startswith("HF-CLIP-")
    model_id = f"{model}-clip-vit-base-patch32"
    for run in ("standard-public", "posthoc-public"):
        for evaluation in ("single_task", "addition", "tau_jp"):
            assert (tmp_path / "results" / model_id / run / f"{evaluation}.json").is_file()
    assert (tmp_path / "results" / model_id / "report" / "report.md").is_file()
    continued = tmp_path / "checkpoints" / model_id / "MNIST" / "linear-tau_jp-cont" / "finetuned.safetensors"
    assert load_weights(continued)[1]["config"]["init_from"].endswith("MNIST/standard-public/finetuned.safetensors")
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    check_export(tmp_path / "out" / "MNIST", continued, geometry_key("ViT-B-32", 1), images)
    if TRANSFORMERS4_PYTHON:
        projection = load_weights(tmp_path / "out" / "MNIST" / "visual_projection.safetensors")[0]["weight"]
        with torch.no_grad():
            suite = load_encoder(continued)(images)
        assert relative_error(transformers4_pooled(tmp_path / "out" / "MNIST", images, tmp_path) @ projection.t(), suite) <= 1e-5
    # The imported runs also pool for merging (the Python API).
    from task_arithmetic.merging import TaskArithmeticAlgorithm
    from task_arithmetic.merging.modelpool.runs import RunModelPool

    pool = RunModelPool(model, ["MNIST", "SVHN"], pretrained=str(tmp_path / "checkpoints/pretrained/clip-vit-base-patch32.safetensors"),
                        tag="public", checkpoint_root=tmp_path / "checkpoints")
    merged = TaskArithmeticAlgorithm(scaling_factor=0.5).run(pool)
    assert merged.weights().keys() == load_encoder(continued).weights().keys()
