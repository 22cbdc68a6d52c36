"""Public checkpoints in and out, on tiny HF CLIP models built from configs (nothing downloaded):
the imported encoder embeds images as HF does, HF -> suite -> HF is bit-exact, for QuickGELU
(OpenAI) and GELU configs; models not fine-tuned from theta_0, or of another geometry or
activation, are refused, and a refused import leaves nothing behind; pickles are described as what
they are. The real OpenAI geometries and the README's commands: test_public_checkpoints_openai.py."""

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from openai_clip import finetuned_vision

from export_checkpoints import main as export_main  # src/ entry scripts (conftest puts src/ on the path)
from import_checkpoints import main as import_main
from task_arithmetic.checkpoints.hf_convert import named_config, open_clip_config
from task_arithmetic.errors import UserError
from task_arithmetic.models.encoder import load_encoder
from task_arithmetic.models.factory import ModelSpec, create_clip
from task_arithmetic.paths import Layout

VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=49408, max_position_embeddings=16)


def tiny_clip(act: str, seed: int = 0, **vision):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    config = CLIPConfig(text_config={**TEXT, "hidden_act": act}, vision_config={**VISION, **vision, "hidden_act": act}, projection_dim=16)
    return CLIPModel(config).eval()


@pytest.fixture(scope="module", params=["quick_gelu", "gelu"])
def world(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    clip = tiny_clip(request.param)
    clip.save_pretrained(root / "clip")
    tuned = finetuned_vision(clip, seed=1)
    tuned.save_pretrained(root / "tuned_Cars")
    written = import_main(["--pretrained-hf", str(root / "clip"), "--finetuned-hf", f"Cars={root / 'tuned_Cars'}",
                           "--tag", "public", "--checkpoint-root", str(root / "checkpoints")])
    return {"root": root, "clip": clip, "tuned": tuned, "weights": written[0], "run": written[1], "act": request.param}


def relative_error(a, b):
    return float((a - b).norm() / b.norm())


def test_imported_encoders_embed_images_as_hf(world):
    clip, tuned = world["clip"], world["tuned"]
    meta = load_encoder(world["run"]).metadata
    assert meta["model_name"].startswith("HF-CLIP-") and meta["quick_gelu"] == (world["act"] == "quick_gelu")
    spec = ModelSpec(meta["model_name"], str(world["weights"]))
    layout = Layout(world["root"] / "checkpoints")
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        theta0 = load_encoder(layout.zeroshot(spec.model_id))
        expected = clip.visual_projection(clip.vision_model(pixel_values=images).pooler_output)
        assert relative_error(theta0(images), expected) <= 1e-5
        run = load_encoder(world["run"])
        expected = clip.visual_projection(tuned(pixel_values=images).pooler_output)
        assert relative_error(run(images), expected) <= 1e-5
        # The text tower (the heads' source) converts as exactly.
        model, _, _ = create_clip(spec)
        tokens = torch.randint(1, 49406, (3, 16))
        tokens[:, 9] = 49407  # end of text: both pool there
        expected = clip.text_projection(clip.text_model(input_ids=tokens).pooler_output)
        assert relative_error(model.encode_text(tokens), expected) <= 1e-5
        assert torch.equal(model.logit_scale, clip.logit_scale)


def test_hf_suite_hf_round_trip_is_bit_exact(world, tmp_path):
    from transformers import CLIPVisionModel

    folder = export_main([str(world["run"]), str(tmp_path / "exported")])
    back = CLIPVisionModel.from_pretrained(folder).state_dict()
    original = world["tuned"].state_dict()
    assert back.keys() == original.keys()
    assert all(torch.equal(back[k], original[k]) for k in original)
    # ... and back into the suite it is the same run again (same tag: accepted as identical).
    written = import_main(["--pretrained-hf", str(world["root"] / "clip"), "--finetuned-hf", f"Cars={folder}",
                           "--tag", "public", "--checkpoint-root", str(world["root"] / "checkpoints")])
    assert written[1] == world["run"]


def test_models_not_from_theta0_are_refused(world, capsys):
    from transformers import CLIPVisionModel

    root = world["root"]
    other = tiny_clip(world["act"], seed=7)  # same architecture, other weights
    finetuned_vision(other, seed=2).save_pretrained(root / "foreign")
    CLIPVisionModel(tiny_clip(world["act"], hidden_size=48).config.vision_config).save_pretrained(root / "wider")
    common = ["--pretrained-hf", str(root / "clip"), "--tag", "public", "--checkpoint-root", str(root / "checkpoints")]
    for source, message in (("foreign", "not fine-tuned from"), ("wider", "different architecture")):
        with pytest.raises(SystemExit) as exit_info:
            import_main([*common, "--finetuned-hf", f"DTD={root / source}"])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert not list((root / "checkpoints").glob("*/DTD/*"))


def test_named_architectures_are_recognised():
    from transformers import CLIPConfig

    config = CLIPConfig(
        text_config=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, patch_size=32),
        projection_dim=512,
    )
    derived, quick_gelu = open_clip_config(config)
    assert named_config(derived) == "ViT-B-32" and quick_gelu
    with pytest.raises(UserError, match="activation"):
        config.vision_config.hidden_act = config.text_config.hidden_act = "relu"
        open_clip_config(config)


class _RunsShell:
    """Pickles as a call of os.system (posix.system): loading it would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _error_of(argv, capsys) -> str:
    """The one stderr line and exit 2 of a refused import (run in this process)."""
    capsys.readouterr()  # what the test printed before (transformers' save progress bars)
    with pytest.raises(SystemExit) as exit_info:
        import_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_refused_source_leaves_nothing_behind(tmp_path, capsys):
    clip = tiny_clip("quick_gelu")
    clip.save_pretrained(tmp_path / "clip")
    finetuned_vision(clip, seed=1).save_pretrained(tmp_path / "good")
    finetuned_vision(tiny_clip("quick_gelu", seed=7), seed=2).save_pretrained(tmp_path / "foreign")
    common = ["--pretrained-hf", str(tmp_path / "clip"), "--tag", "public", "--checkpoint-root", str(tmp_path / "ck")]
    err = _error_of([*common, "--finetuned-hf", f"Cars={tmp_path / 'good'}", "--finetuned-hf", f"DTD={tmp_path / 'foreign'}"], capsys)
    assert str(tmp_path / "foreign") in err and "not fine-tuned from" in err
    assert _files(tmp_path / "ck") == []  # neither theta_0 nor the run checked before the refused source
    err = _error_of([*common, "--finetuned-hf", f"Cars={tmp_path / 'good'}", "--finetuned-open-clip", f"Cars={tmp_path / 'good'}"], capsys)
    assert "given twice" in err and _files(tmp_path / "ck") == []
    # A good import, then another theta_0 under the same --name: refused, the first one untouched.
    theta0_file, run_file = import_main([*common, "--finetuned-hf", f"Cars={tmp_path / 'good'}"])
    before = {p: p.read_bytes() for p in _files(tmp_path / "ck")}
    capsys.readouterr()
    tiny_clip("quick_gelu", seed=7).save_pretrained(tmp_path / "other" / "clip")
    err = _error_of(["--pretrained-hf", str(tmp_path / "other" / "clip"), "--tag", "public", "--checkpoint-root", str(tmp_path / "ck"),
                     "--finetuned-hf", f"SVHN={tmp_path / 'good'}"], capsys)
    assert "already holds other weights" in err
    assert {p: p.read_bytes() for p in _files(tmp_path / "ck")} == before


def test_activation_and_geometry_of_every_source_are_checked(tmp_path, capsys):
    """A GELU fine-tune against a QuickGELU theta_0 would compute something else than transformers
    does for it; a state-dict file of another patch size cannot be a fine-tune of theta_0."""
    from openai_clip import save_open_clip

    clip = tiny_clip("quick_gelu")
    clip.save_pretrained(tmp_path / "clip")
    gelu = finetuned_vision(clip, seed=1)
    gelu.config.hidden_act = "gelu"
    gelu.save_pretrained(tmp_path / "gelu")
    other = tiny_clip("quick_gelu", patch_size=16)
    save_open_clip(other, finetuned_vision(other, seed=2), tmp_path / "patch16.pt")
    common = ["--pretrained-hf", str(tmp_path / "clip"), "--tag", "public", "--checkpoint-root", str(tmp_path / "ck")]
    err = _error_of([*common, "--finetuned-hf", f"Cars={tmp_path / 'gelu'}"], capsys)
    assert "activation gelu (theta_0: quick_gelu)" in err
    err = _error_of([*common, "--finetuned-open-clip", f"Cars={tmp_path / 'patch16.pt'}"], capsys)
    assert "patch_size 16 (theta_0: 8)" in err and "image_size" not in err
    assert _files(tmp_path / "ck") == []


def test_pickles_that_hold_code_are_refused_unread_and_named(tmp_path, capsys):
    clip = tiny_clip("quick_gelu")
    clip.save_pretrained(tmp_path / "clip")
    marker = tmp_path / "code-ran"
    torch.save({"w": _RunsShell(marker)}, tmp_path / "evil.pt")  # torch's format: torch names the global
    with open(tmp_path / "evil4.pkl", "wb") as handle:  # Python's protocol 4: torch stops before the global
        pickle.dump({"w": _RunsShell(marker)}, handle, protocol=4)
    folder = tmp_path / "evil_hf"
    finetuned_vision(clip, seed=1).save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes((tmp_path / "evil.pt").read_bytes())
    common = ["--pretrained-hf", str(tmp_path / "clip"), "--tag", "public", "--checkpoint-root", str(tmp_path / "ck")]
    for flag, source, shown in (("--finetuned-open-clip", tmp_path / "evil.pt", tmp_path / "evil.pt"),
                                ("--finetuned-open-clip", tmp_path / "evil4.pkl", tmp_path / "evil4.pkl"),
                                ("--finetuned-hf", folder, folder / "pytorch_model.bin")):
        err = _error_of([*common, flag, f"Cars={source}"], capsys)
        assert f"{shown} holds code" in err and "posix.system" in err, err
        assert "weights_only" not in err and "damaged" not in err
    assert not marker.exists() and _files(tmp_path / "ck") == []


def test_theta0_folder_without_config_is_named_as_such(tmp_path, capsys):
    (tmp_path / "clip").mkdir()
    err = _error_of(["--pretrained-hf", str(tmp_path / "clip"), "--checkpoint-root", str(tmp_path / "ck")], capsys)
    assert f"{tmp_path / 'clip'} has no config.json" in err and "hf download" not in err
    err = _error_of(["--pretrained-hf", str(tmp_path / "missing"), "--checkpoint-root", str(tmp_path / "ck")], capsys)
    assert "does not exist" in err and "hf download" not in err


def test_the_script_knows_the_embedded_tasks_and_says_a_plain_pickle_in_one_line(tmp_path):
    """As its own process (where nothing registered the embedded tasks before): Digits and LandUse
    are known, and a plain Python pickle is one stderr line (no torch warning, no torch advice)."""
    clip = tiny_clip("quick_gelu")
    clip.save_pretrained(tmp_path / "clip")
    finetuned_vision(clip, seed=1).save_pretrained(tmp_path / "digits")
    with open(tmp_path / "landuse.pkl", "wb") as handle:
        pickle.dump({k: v for k, v in clip.state_dict().items() if k.startswith("vision_model.")}, handle, protocol=4)
    script = Path(__file__).resolve().parents[1] / "src" / "import_checkpoints.py"
    done = subprocess.run([sys.executable, str(script), "--pretrained-hf", "clip", "--finetuned-hf", "Digits=digits",
                           "--finetuned-open-clip", "LandUse=landuse.pkl", "--checkpoint-root", "ck"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: landuse.pkl is a plain Python pickle (protocol 4), not a torch.save file")
    assert not (tmp_path / "ck").exists()


def test_an_import_refused_while_writing_removes_what_it_wrote(tmp_path, capsys):
    """theta_0's file was deleted but the model folder built from it kept; another theta_0 of the same
    architecture under that name is refused by the kept cache only once its file is written: that
    file goes again, and the kept folder is untouched."""
    common = ["--tag", "public", "--checkpoint-root", str(tmp_path / "ck"), "--name", "base"]
    for seed in (0, 7):
        tiny_clip("quick_gelu", seed=seed).save_pretrained(tmp_path / f"clip{seed}")
    theta0_file = import_main(["--pretrained-hf", str(tmp_path / "clip0"), *common])[0]
    theta0_file.unlink()
    theta0_file.with_suffix(".json").unlink()
    kept = {p: p.read_bytes() for p in _files(tmp_path / "ck")}
    err = _error_of(["--pretrained-hf", str(tmp_path / "clip7"), *common], capsys)
    assert "was built from a different weights file" in err
    assert {p: p.read_bytes() for p in _files(tmp_path / "ck")} == kept
