import pytest
import torch

from task_arithmetic.errors import UserError
from task_arithmetic.io import save_weights
from task_arithmetic.models.encoder import build_encoder, load_encoder
from task_arithmetic.models.factory import ModelSpec, create_clip
from task_arithmetic.models.heads import get_head
from task_arithmetic.paths import Layout

TINY = ModelSpec("TinyCLIP")


def test_encoder_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    encoder = build_encoder(TINY)
    path = encoder.save(tmp_path / "enc.safetensors", {"task": "demo"})
    loaded = load_encoder(path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(encoder(x), loaded(x))
    assert loaded.metadata["task"] == "demo" and loaded.model_name == "TinyCLIP"


def test_load_encoder_rejects_other_architecture(tmp_path):
    encoder = build_encoder(TINY)
    path = encoder.save(tmp_path / "enc.safetensors")
    with pytest.raises(UserError, match="expected ViT-B-32"):
        load_encoder(path, expect_model="ViT-B-32")


def test_unknown_model_and_tag_are_user_errors():
    with pytest.raises(UserError, match="unknown model 'ViT-Q-99'"):
        create_clip(ModelSpec("ViT-Q-99"))
    with pytest.raises(UserError, match="valid tags: .*openai"):
        create_clip(ModelSpec("ViT-B-32", pretrained="no-such-tag"))


def test_uncached_tag_offline_names_the_fix(tmp_path):
    with pytest.raises(UserError, match="download_weights.py"):
        create_clip(ModelSpec("ViT-B-32", pretrained="openai", cache_dir=str(tmp_path)))


def test_local_weights_file_loads_identically_and_mismatch_is_named(tmp_path):
    torch.manual_seed(1)
    clip, _, _ = create_clip(TINY)
    path = save_weights(tmp_path / "clip.safetensors", clip.state_dict(), {})
    again, _, _ = create_clip(ModelSpec("TinyCLIP", pretrained=str(path)))
    for (k, a), (_, b) in zip(clip.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pt")
    with pytest.raises(UserError, match="does not match architecture TinyCLIP"):
        create_clip(ModelSpec("TinyCLIP", pretrained=str(tmp_path / "wrong.pt")))


def test_zeroshot_head_matches_direct_computation_and_is_cached(tmp_path):
    import open_clip
    import torch.nn.functional as F

    torch.manual_seed(2)
    clip, _, _ = create_clip(TINY)
    classnames, templates = ["cat", "dog", "bird"], ["a photo of a {}.", "a drawing of a {}."]
    layout = Layout(tmp_path / "ck", tmp_path / "res")
    head = get_head(TINY, "Demo", classnames, templates, layout, clip_model=clip)
    tok = open_clip.get_tokenizer("TinyCLIP")
    with torch.no_grad():
        rows = []
        for c in classnames:
            e = clip.encode_text(tok([t.format(c) for t in templates]))
            e = e / e.norm(dim=-1, keepdim=True)
            m = e.mean(0)
            rows.append(m / m.norm())
        expected = torch.stack(rows) * clip.logit_scale.exp()
    assert torch.allclose(head.weight, expected, atol=1e-5)
    feats = torch.randn(4, 64)
    assert torch.allclose(head(feats), F.normalize(feats, dim=-1) @ expected.t(), atol=1e-5)
    # Second call reads the cache (no model needed); changed prompts rebuild.
    cached = get_head(TINY, "Demo", classnames, templates, layout, clip_model=None)
    assert torch.equal(cached.weight, head.weight)
    assert layout.head(TINY.model_id, "Demo").is_file()


def test_cache_from_another_weights_file_with_the_same_name_is_refused(tmp_path):
    from task_arithmetic.models.pretrained import zeroshot_encoder

    layout = Layout(tmp_path / "ck", tmp_path / "res")
    files = []
    for seed, folder in ((3, "laion"), (4, "openai")):
        torch.manual_seed(seed)
        clip, _, _ = create_clip(TINY)
        (tmp_path / folder).mkdir()
        files.append(save_weights(tmp_path / folder / "open_clip_pytorch_model.safetensors", clip.state_dict(), {}))
    first, second = (ModelSpec("TinyCLIP", pretrained=str(f)) for f in files)
    assert first.model_id == second.model_id  # the name clash this guard exists for
    zeroshot_encoder(first, layout)
    get_head(first, "Demo", ["cat", "dog"], ["a {}."], layout)
    # The same file again (even copied elsewhere) reuses the caches.
    copy = tmp_path / "copy" / "open_clip_pytorch_model.safetensors"
    copy.parent.mkdir()
    copy.write_bytes(files[0].read_bytes())
    zeroshot_encoder(ModelSpec("TinyCLIP", pretrained=str(copy)), layout)
    with pytest.raises(UserError, match="built from a different weights file.*distinct name"):
        zeroshot_encoder(second, layout)
    with pytest.raises(UserError, match="built from a different weights file"):
        get_head(second, "Demo", ["cat", "dog"], ["a {}."], layout)
