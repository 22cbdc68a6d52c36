"""Public checkpoints in and out, on tiny HF CLIP models built from configs (nothing downloaded):
the imported encoder embeds images as HF does, HF -> suite -> HF is bit-exact, for QuickGELU
(OpenAI) and GELU configs; models not fine-tuned from theta_0 are refused."""

import pytest
import torch

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


def finetuned_from(clip, seed: int, scale: float = 0.01):
    """A CLIPVisionModel: clip's vision tower with every weight moved a little, as fine-tuning does."""
    from transformers import CLIPVisionModel

    from task_arithmetic.checkpoints.hf_convert import vision_tower

    model = CLIPVisionModel(clip.config.vision_config).eval()
    generator = torch.Generator().manual_seed(seed)
    state = {k: v + scale * v.std().nan_to_num(1.0) * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
             for k, v in vision_tower(clip).state_dict().items()}
    vision_tower(model).load_state_dict(state)
    return model


@pytest.fixture(scope="module", params=["quick_gelu", "gelu"])
def world(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    clip = tiny_clip(request.param)
    clip.save_pretrained(root / "clip")
    tuned = finetuned_from(clip, seed=1)
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
    finetuned_from(other, seed=2).save_pretrained(root / "foreign")
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


def test_imported_runs_evaluate_merge_and_continue_with_tau_jp(tmp_path, capsys):
    """On the embedded tasks (32 px, like the tiny model): the study's evaluations and report read
    the imported runs, merging pools them, and tau-Jp fine-tuning continues from one."""
    from run_study import main as study_main
    from task_arithmetic.merging import TaskArithmeticAlgorithm
    from task_arithmetic.merging.modelpool.runs import RunModelPool
    from task_arithmetic.training.config import FinetuneConfig
    from task_arithmetic.training.loop import run_finetune

    clip = tiny_clip("quick_gelu")
    clip.save_pretrained(tmp_path / "clip")
    tasks = ("Digits", "LandUse")
    args = ["--pretrained-hf", str(tmp_path / "clip"), "--tag", "public", "--checkpoint-root", str(tmp_path / "ck")]
    for i, task in enumerate(tasks):
        finetuned_from(clip, seed=10 + i, scale=0.05).save_pretrained(tmp_path / task)
        args += ["--finetuned-hf", f"{task}={tmp_path / task}"]
    weights, *runs = import_main(args)
    name = load_encoder(runs[0]).model_name
    common = ["--model", name, "--pretrained", str(weights), "--checkpoint-root", str(tmp_path / "ck"),
              "--results-root", str(tmp_path / "res"), "--data-location", str(tmp_path / "data"), "--device", "cpu"]
    written = study_main([*common, "--tasks", ",".join(tasks), "--recipes", "standard@public,posthoc@public",
                          "--evaluations", "single_task,addition,tau_jp", "--max-eval-samples", "16", "--alpha-step", "0.5", "--no-progress"])
    model_id = ModelSpec(name, str(weights)).model_id
    for run in ("standard-public", "posthoc-public"):
        for evaluation in ("single_task", "addition", "tau_jp"):
            assert (tmp_path / "res" / model_id / run / f"{evaluation}.json").is_file()
    assert any(p.name == "report.md" for p in written)

    pool = RunModelPool(name, list(tasks), pretrained=str(weights), tag="public", checkpoint_root=tmp_path / "ck")
    merged = TaskArithmeticAlgorithm(scaling_factor=0.5).run(pool)
    assert merged.weights().keys() == load_encoder(runs[0]).weights().keys()

    result = run_finetune(FinetuneConfig(
        task="Digits", model=name, pretrained=str(weights), reg="tau_jp", init_from=str(runs[0]), tag="cont",
        options=dict(penalty_tasks=("LandUse",), penalty_batch=2), max_steps=1, warmup=0, batch_size=4, max_train_samples=8,
        device="cpu", checkpoint_root=str(tmp_path / "ck"), results_root=str(tmp_path / "res"),
        data_location=str(tmp_path / "data"), progress=False))
    assert result.status == "finished" and result.path.parent.name == "linear-tau_jp-cont"
