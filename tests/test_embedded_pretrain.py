import json
import math
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from task_arithmetic.embedded import pretrain as pretrain_module
from task_arithmetic.embedded.captions import FACT_INDEX, caption_matches
from task_arithmetic.embedded.pretrain import contrastive_loss
from task_arithmetic.embedded.weights import resolve_weights
from task_arithmetic.embedded.zeroshot import zeroshot_accuracy
from task_arithmetic.errors import UserError
from task_arithmetic.io import load_weights
from task_arithmetic.models.factory import ModelSpec, create_clip

SMOKE = "embedded-smoke"


@pytest.fixture(scope="module")
def smoke_weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(123)  # the recipe seeds itself; this must not matter
    return resolve_weights(SMOKE, str(folder), progress=False)


def test_loss_is_clip_loss_without_duplicates_and_shares_mass_with_them():
    torch.manual_seed(0)
    img, txt, scale = torch.randn(6, 8), torch.randn(6, 8), torch.tensor(math.log(10.0))
    logits = 10.0 * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()
    eye = torch.eye(6, dtype=torch.bool)
    clip = (F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(logits.t(), torch.arange(6))) / 2
    assert torch.allclose(contrastive_loss(img, txt, scale, eye), clip, atol=1e-6)
    both = eye.clone()
    both[0, 1] = both[1, 0] = True  # captions 0 and 1 are each true of images 0 and 1
    lp = F.log_softmax(logits, dim=1)
    lt = F.log_softmax(logits.t(), dim=1)
    row0 = -(lp[0, 0] + lp[0, 1]) / 2
    expected_i = (row0 - (lp[1, 0] + lp[1, 1]) / 2 - lp[2:].diagonal(offset=2).sum()) / 6
    expected_t = (-(lt[0, 0] + lt[0, 1]) / 2 - (lt[1, 0] + lt[1, 1]) / 2 - lt[2:].diagonal(offset=2).sum()) / 6
    assert torch.allclose(contrastive_loss(img, txt, scale, both), (expected_i + expected_t) / 2, atol=1e-6)


def test_caption_matches_follow_the_stated_facts():
    n_keys = len(FACT_INDEX)
    images = torch.full((3, n_keys), -1)
    images[:, FACT_INDEX["family"]] = 0
    images[:, FACT_INDEX["label"]] = torch.tensor([7, 7, 3])
    images[:, FACT_INDEX["fg"]] = torch.tensor([0, 1, 0])
    captions = torch.full((2, n_keys), -1)
    captions[:, FACT_INDEX["family"]] = 0
    captions[:, FACT_INDEX["label"]] = 7
    captions[1, FACT_INDEX["fg"]] = 1  # "a <colour 1> 7": true of image 1 only
    m = caption_matches(images, captions)
    assert m.tolist() == [[True, False], [True, True], [False, False]]


def test_weight_source_resolves_caches_and_loads(smoke_weights, monkeypatch):
    meta = json.loads(smoke_weights.with_suffix(".json").read_text())
    assert meta["format"] == "clip" and meta["model_name"] == "TinyCLIP" and meta["final_loss"] < meta["first_loss"]
    mtime = smoke_weights.stat().st_mtime_ns

    def no_pretraining(*args, **kwargs):
        raise AssertionError("cached weights should have been reused")

    monkeypatch.setattr(pretrain_module, "pretrain_clip", no_pretraining)
    assert resolve_weights(SMOKE, str(smoke_weights.parent), progress=False) == smoke_weights
    assert smoke_weights.stat().st_mtime_ns == mtime
    model, _, _ = create_clip(ModelSpec("TinyCLIP", pretrained=SMOKE, cache_dir=str(smoke_weights.parent)))
    stored, _ = load_weights(smoke_weights)
    for key, value in model.state_dict().items():
        assert torch.equal(value, stored[key]), key


def test_weights_from_another_recipe_are_refused(smoke_weights, tmp_path):
    shutil.copy(smoke_weights, tmp_path / smoke_weights.name)
    meta = json.loads(smoke_weights.with_suffix(".json").read_text())
    meta["pretrain_digest"] = "0" * 12
    (tmp_path / smoke_weights.name).with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="different pretrain digest"):
        resolve_weights(SMOKE, str(tmp_path), progress=False)


def test_smoke_pretraining_zero_shot_beats_chance(smoke_weights, tmp_path):
    model, _, _ = create_clip(ModelSpec("TinyCLIP", pretrained=SMOKE, cache_dir=str(smoke_weights.parent)))
    margins = {}
    for task, classes in (("Landscapes", 8), ("LandUse", 10)):
        n = 400
        acc = zeroshot_accuracy(model, task, tmp_path, limit=n)
        chance = 1.0 / classes
        # Four binomial standard deviations above chance: a random encoder fails this.
        margins[task] = (acc - chance) / math.sqrt(chance * (1 - chance) / n)
    assert max(margins.values()) > 4, margins


def test_script_rejects_an_unknown_preset(repo_root):
    result = subprocess.run(
        [sys.executable, str(repo_root / "src" / "pretrain_embedded.py"), "--preset", "huge"], capture_output=True, text=True, cwd=repo_root
    )
    assert result.returncode == 2
    assert "unknown preset 'huge'" in result.stderr and "default, smoke" in result.stderr



def test_two_lanes_give_the_one_process_gradients():
    """The two-core step (lanes A and B, features detached, autograd.grad per lane) must give the
    gradients of the plain loss.backward() on the whole batch, up to rounding, and restore the
    thread count it changed."""
    torch.manual_seed(0)
    model, _, _ = create_clip(ModelSpec("TinyCLIP"))
    model.train()
    images, tokens = torch.randn(8, 3, 32, 32), torch.randint(1, 400, (8, 24))
    matches = torch.eye(8, dtype=torch.bool)
    matches[0, 1] = matches[1, 0] = True
    plain = contrastive_loss(model.encode_image(images), model.encode_text(tokens), model.logit_scale, matches)
    plain.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    threads = torch.get_num_threads()
    lanes = pretrain_module.TwoLanes(model)
    try:
        loss = lanes.backward(images, tokens, matches)
    finally:
        lanes.close()
    assert torch.get_num_threads() == threads
    assert torch.allclose(loss, plain.detach(), atol=1e-6)
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.allclose(p.grad, expected[name], rtol=1e-4, atol=1e-6), name


def test_theta0_does_not_depend_on_the_thread_count():
    """Two lanes on any number of cores: the same operations in the same order, bit for bit."""
    from task_arithmetic.embedded.presets import PretrainConfig

    cfg = PretrainConfig(corpus_size=96, steps=3, batch_size=16, warmup=1)
    before = torch.get_num_threads()
    weights = {}
    try:
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            model, _ = pretrain_module.pretrain_clip(cfg, "cpu", progress=False)
            weights[threads] = model.state_dict()
    finally:
        torch.set_num_threads(before)
    for threads in (2, 4):
        assert all(torch.equal(weights[1][k], weights[threads][k]) for k in weights[1]), threads
