"""Model pools (our runs, open_clip files, HF CLIPVisionModel folders) and the streaming reader."""

import copy

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from task_arithmetic.errors import UserError
from task_arithmetic.io import save_weights
from task_arithmetic.merging import (
    CLIPVisionModelPool,
    OpenCLIPVisionModelPool,
    TaskArithmeticAlgorithm,
    TiesMergingAlgorithm,
)
from task_arithmetic.merging.streaming import SafetensorsReader
from task_arithmetic.models.encoder import build_encoder, load_encoder
from task_arithmetic.models.factory import ModelSpec, create_clip

TINY = ModelSpec("TinyCLIP")


def perturbed(state, seed, scale=0.01):
    gen = torch.Generator().manual_seed(seed)
    return {k: (v + scale * torch.randn(v.shape, generator=gen).to(v.dtype)) if v.is_floating_point() else v.clone() for k, v in state.items()}


def task_arithmetic_reference(base, tuned, lam):
    return {
        k: (base[k].double() + lam * sum(t[k].double() - base[k].double() for t in tuned)) if base[k].is_floating_point() else base[k]
        for k in base
    }


def assert_state_close(module_state, expected, atol=2e-6):
    assert set(module_state) == set(expected)
    for key, value in expected.items():
        got = module_state[key]
        if value.is_floating_point():
            torch.testing.assert_close(got.double(), value.double(), rtol=0, atol=atol, msg=key)
        else:
            assert torch.equal(got, value), key


def test_safetensors_reader_matches_safetensors(tmp_path):
    tensors = {
        "f32": torch.randn(3, 4),
        "f16": torch.randn(5).half(),
        "bf16": torch.randn(2, 2).bfloat16(),
        "f64": torch.randn(2).double(),
        "i64": torch.arange(6).reshape(2, 3),
        "u8": torch.arange(4, dtype=torch.uint8),
        "flag": torch.tensor([True, False]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
    }
    path = save_weights(tmp_path / "w.safetensors", tensors, {"note": "x"})
    reader = SafetensorsReader(path)
    reference = load_file(str(path))
    assert list(reader) == list(reference) and len(reader) == len(tensors)
    for key, value in reference.items():
        assert reader[key].dtype == value.dtype and reader[key].shape == value.shape and torch.equal(reader[key], value), key
        assert reader.shape_of(key) == tuple(value.shape)
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(UserError, match="cannot read weights file"):
        SafetensorsReader(tmp_path / "bad.safetensors")


# ---------------------------------------------------------------- open_clip weight files


@pytest.fixture(scope="module")
def tiny_clip_files(tmp_path_factory):
    """_pretrained_ as a whole-CLIP .pt; fine-tuned as our encoder file, a visual-only .pt and a whole-CLIP safetensors."""
    folder = tmp_path_factory.mktemp("openclip")
    torch.manual_seed(0)
    clip, _, _ = create_clip(TINY)
    full = clip.state_dict()
    torch.save(full, folder / "pretrained.pt")
    visual0 = {k[len("visual.") :]: v for k, v in full.items() if k.startswith("visual.")}
    tuned = [perturbed(visual0, seed) for seed in (1, 2, 3)]
    encoder = build_encoder(TINY)
    encoder.visual.load_state_dict(tuned[0])
    encoder.save(folder / "a.safetensors", {"task": "a"})
    torch.save(tuned[1], folder / "b.pt")
    full_c = {**full, **{f"visual.{k}": v for k, v in tuned[2].items()}}
    save_weights(folder / "c.safetensors", full_c, {})
    torch.save(nn.Linear(2, 2), folder / "pickled.pt")
    return folder, visual0, tuned


def test_open_clip_file_pool_merges_every_file_kind(tiny_clip_files):
    folder, visual0, tuned = tiny_clip_files
    pool = OpenCLIPVisionModelPool(
        model="TinyCLIP",
        model_dir=folder,
        models={"_pretrained_": "pretrained.pt", "a": "a.safetensors", "b": "b.pt", "c": str(folder / "c.safetensors")},
    )
    pool.check_available()
    merged = TaskArithmeticAlgorithm(scaling_factor=0.4).run(pool)
    assert_state_close(merged.visual.state_dict(), task_arithmetic_reference(visual0, tuned, 0.4))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected_out = load_encoder(folder / "a.safetensors")  # any TinyCLIP encoder has the output width
        assert merged(x).shape == expected_out(x).shape and merged.val_preprocess is not None


def test_open_clip_pool_errors(tiny_clip_files):
    folder, _, _ = tiny_clip_files
    pickled = OpenCLIPVisionModelPool(model="TinyCLIP", models={"_pretrained_": str(folder / "pretrained.pt"), "p": str(folder / "pickled.pt")})
    with pytest.raises(UserError, match="pickled whole modules are refused"):
        TaskArithmeticAlgorithm().run(pickled)
    with pytest.raises(UserError, match="does not exist; fix modelpool.models.x"):
        OpenCLIPVisionModelPool(model="TinyCLIP", models={"_pretrained_": str(folder / "pretrained.pt"), "x": "/nope/x.pt"}).check_available()
    with pytest.raises(UserError, match="neither an existing weights file nor an open_clip tag"):
        OpenCLIPVisionModelPool(model="TinyCLIP", models={"_pretrained_": "openai"}).check_available()
    with pytest.raises(UserError, match="unknown model"):
        OpenCLIPVisionModelPool(model="ViT-Q-1", models={"_pretrained_": "x.pt"})


# ---------------------------------------------------------------- Hugging Face CLIPVisionModel folders

VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=32)


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    """A tiny whole CLIPModel (the _pretrained_ source, as FusionBench's pools use) and two CLIPVisionModel folders."""
    from transformers import CLIPConfig, CLIPModel, CLIPVisionModel

    folder = tmp_path_factory.mktemp("hf")
    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=16))
    clip.save_pretrained(folder / "clip")
    vision = CLIPVisionModel.from_pretrained(folder / "clip")
    base = {k: v.clone() for k, v in vision.state_dict().items()}
    tuned = []
    for seed, name in ((1, "svhn"), (2, "mnist")):
        model = copy.deepcopy(vision)
        model.load_state_dict(perturbed(base, seed))
        model.save_pretrained(folder / name)
        tuned.append(perturbed(base, seed))
    return folder, base, tuned


def test_hf_vision_pool_merges_like_the_formula(hf_folders):
    from transformers import CLIPVisionModel

    folder, base, tuned = hf_folders
    pool = CLIPVisionModelPool(models={"_pretrained_": str(folder / "clip"), "svhn": str(folder / "svhn"), "mnist": str(folder / "mnist")})
    pool.check_available()
    merged = TaskArithmeticAlgorithm(scaling_factor=0.5).run(pool)
    assert isinstance(merged, CLIPVisionModel)
    assert_state_close(merged.state_dict(), task_arithmetic_reference(base, tuned, 0.5))
    out = merged(pixel_values=torch.randn(2, 3, 32, 32)).pooler_output
    assert out.shape == (2, 32)


def test_hf_pool_offline_ids_and_missing_folders_fail_clearly(hf_folders, tmp_path):
    folder, _, _ = hf_folders
    pool = CLIPVisionModelPool(models={"_pretrained_": "openai/clip-vit-base-patch32", "svhn": "tanganke/clip-vit-base-patch32_svhn"})
    with pytest.raises(UserError, match=r"not available offline: modelpool.models._pretrained_=openai/clip-vit-base-patch32, .*hf download"):
        pool.check_available()
    with pytest.raises(UserError, match="hf download"):
        TaskArithmeticAlgorithm().run(pool)
    missing = CLIPVisionModelPool(models={"_pretrained_": str(folder / "clip"), "x": str(tmp_path / "absent")})
    with pytest.raises(UserError, match="modelpool.models.x="):
        missing.check_available()
    with pytest.raises(UserError, match="platform"):
        CLIPVisionModelPool(models={"_pretrained_": "x"}, platform="modelscope")


def test_ties_on_hf_pool_matches_dict_of_loaded_models(hf_folders):
    from transformers import CLIPVisionModel

    folder, _, _ = hf_folders
    sources = {"_pretrained_": folder / "clip", "svhn": folder / "svhn", "mnist": folder / "mnist"}
    pool = CLIPVisionModelPool(models={k: str(v) for k, v in sources.items()})
    loaded = {k: CLIPVisionModel.from_pretrained(v) for k, v in sources.items()}
    algorithm = TiesMergingAlgorithm(scaling_factor=0.6, threshold=30)
    from_pool, from_dict = algorithm.run(pool), algorithm.run(loaded)
    for key, value in from_dict.state_dict().items():
        assert torch.equal(value, from_pool.state_dict()[key]), key


# ---------------------------------------------------------------- saving merged models


def test_saving_merged_models(tmp_path, hf_folders, tiny_clip_files):
    from transformers import CLIPVisionModel

    from task_arithmetic.merging.program import save_merged

    folder, _, _ = hf_folders
    hf = TaskArithmeticAlgorithm(0.3).run(CLIPVisionModelPool(models={"_pretrained_": str(folder / "clip"), "svhn": str(folder / "svhn")}))
    save_merged(hf, tmp_path / "hf_folder", {"method": "ta"})
    again = CLIPVisionModel.from_pretrained(tmp_path / "hf_folder")
    for key, value in hf.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    path = save_merged(hf, tmp_path / "hf.safetensors", {"method": "ta"})
    assert torch.equal(load_file(str(path))["post_layernorm.weight"], hf.post_layernorm.weight.detach())

    clip_folder, _, _ = tiny_clip_files
    pool = OpenCLIPVisionModelPool(model="TinyCLIP", model_dir=clip_folder, models={"_pretrained_": "pretrained.pt", "a": "a.safetensors"})
    encoder = TaskArithmeticAlgorithm(0.3).run(pool)
    saved = save_merged(encoder, tmp_path / "merged.safetensors", {"method": "task_arithmetic"})
    loaded = load_encoder(saved)
    assert loaded.metadata["merge"] == {"method": "task_arithmetic"}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), encoder(x))
    with pytest.raises(UserError, match="must end in .safetensors"):
        save_merged(encoder, tmp_path / "merged.pt", {})
