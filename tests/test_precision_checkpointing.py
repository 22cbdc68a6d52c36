"""--precision and --grad-checkpointing: activation checkpointing gives the plain path's gradients,
bit for bit, for standard and linearised training with the tau-Jp penalty (fast JVP), in fp32 and
bf16; the precision is a training setting recorded in every model and result, and a report that
mixes precisions says so."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from test_training_support import REPO, finetune_command, subprocess_env

from task_arithmetic.errors import UserError
from task_arithmetic.models import fast_jvp_vit
from task_arithmetic.models.encoder import build_encoder
from task_arithmetic.models.factory import ModelSpec
from task_arithmetic.models.heads import ClassificationHead
from task_arithmetic.precision import Precision, resolve_precision
from task_arithmetic.recipes import MODES
from task_arithmetic.recipes.base import PenaltyInputs
from task_arithmetic.recipes.tau_jp import TauJpPenalty
from task_arithmetic.training.config import FinetuneConfig, resolve_config
from task_arithmetic.training.model import build_trainee
from task_arithmetic.training.state import load_train_state, save_train_state
from task_arithmetic.training.step import accumulate_gradients


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    encoder = build_encoder(ModelSpec("TinyCLIP"))
    head = ClassificationHead(F.normalize(torch.randn(5, 64), dim=-1) * 100)
    images, labels, penalty = torch.randn(6, 3, 32, 32), torch.randint(0, 5, (6,)), torch.randn(2, 3, 32, 32)
    return encoder, head, images, labels, penalty


def _gradients(tiny, mode: str, precision: Precision, checkpointing: bool) -> tuple[dict[str, torch.Tensor], int]:
    """One step's gradients (micro-batches of 3, tau-Jp penalty), and how many block passes ran."""
    encoder, head, images, labels, penalty = tiny
    encoder = copy.deepcopy(encoder)
    trainee = build_trainee(encoder, head, MODES[mode], needs_tangent=True, init_weights=None)
    with torch.no_grad():  # theta != theta_0
        generator = torch.Generator().manual_seed(1)
        for p in encoder.visual.parameters():
            p.add_(1e-2 * torch.randn(p.shape, generator=generator))
    trainee.set_grad_checkpointing(checkpointing)
    trainee.train()
    passes = []
    hooks = [m.register_forward_hook(lambda *a: passes.append(1)) for m in encoder.visual.modules() if isinstance(m, ResidualAttentionBlock)]
    real_block = fast_jvp_vit._block

    def counted(*args, **kwargs):
        passes.append(1)
        return real_block(*args, **kwargs)

    fast_jvp_vit._block = counted
    try:
        accumulate_gradients(trainee, images, labels, 3, 6, 1, penalty=TauJpPenalty(0.1, None), penalty_inputs=PenaltyInputs(penalty, 2),
                             precision=precision)
    finally:
        fast_jvp_vit._block = real_block
        for h in hooks:
            h.remove()
    return {n: p.grad for n, p in encoder.visual.named_parameters() if p.grad is not None}, len(passes)


@pytest.mark.parametrize("mode", ["standard", "linear"])
@pytest.mark.parametrize("precision", [Precision.FP32, Precision.BF16])
def test_checkpointing_gives_the_plain_paths_gradients(tiny, mode, precision):
    plain, plain_passes = _gradients(tiny, mode, precision, checkpointing=False)
    recomputed, recomputed_passes = _gradients(tiny, mode, precision, checkpointing=True)
    assert set(plain) == set(recomputed) and len(plain) > 40
    for name in plain:
        assert torch.equal(plain[name], recomputed[name]), name
    assert recomputed_passes > plain_passes  # the backward really ran the blocks again
    assert any(g.abs().sum() > 0 for g in plain.values())


def test_bf16_steps_stay_close_to_fp32(tiny):
    for mode in ("standard", "linear"):
        full, _ = _gradients(tiny, mode, Precision.FP32, False)
        low, _ = _gradients(tiny, mode, Precision.BF16, False)
        assert all(g.dtype == torch.float32 for g in low.values())  # fp32 master weights and gradients
        flat = lambda g: torch.cat([v.flatten() for v in g.values()])  # noqa: E731
        assert 0 < (flat(low) - flat(full)).norm() / flat(full).norm() < 0.1, mode


def test_precision_choices_resolve_or_fail_in_one_line():
    assert resolve_precision("auto", "cpu") is Precision.FP32 and resolve_precision("auto", "cuda") is Precision.BF16
    assert resolve_precision("bf16", "cpu") is Precision.BF16
    with pytest.raises(UserError, match="tf32 needs a CUDA device"):
        resolve_precision("tf32", "cpu")
    with pytest.raises(UserError, match="unknown --precision 'fp16'"):
        resolve_precision("fp16", "cpu")


def test_precision_is_a_training_setting_and_old_fp32_states_resume(tmp_path):
    import test_training_support

    test_training_support.register_tasks()
    fp32 = resolve_config(FinetuneConfig(task="TrainToyA", model="TinyCLIP", pretrained=None, device="cpu"))
    bf16 = resolve_config(FinetuneConfig(task="TrainToyA", model="TinyCLIP", pretrained=None, device="cpu", precision="bf16", grad_checkpointing=True))
    assert fp32.precision == "fp32" and "precision" not in fp32.training_settings()  # as states saved before the setting recorded it
    assert bf16.training_settings()["precision"] == "bf16" and "grad_checkpointing" not in bf16.training_settings()
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    save_train_state(tmp_path / "state", 3, model, optimizer, bf16.training_settings())
    with pytest.raises(UserError, match="precision: 'bf16' -> None"):
        load_train_state(tmp_path / "state", model, optimizer, fp32.training_settings())


def _run(command: list[str]) -> subprocess.CompletedProcess:
    out = subprocess.run(command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def test_precision_travels_from_finetuning_to_results_and_report(tmp_path):
    roots = ["--checkpoint-root", str(tmp_path / "ck"), "--results-root", str(tmp_path / "res"), "--data-location", str(tmp_path / "data")]
    _run(finetune_command("--task", "TrainToyA", "--reg", "tau_jp", "--precision", "bf16", "--grad-checkpointing", "--max-steps", "2", *roots))
    _run(finetune_command("--task", "TrainToyA", "--max-steps", "2", *roots))  # standard, fp32 (auto on CPU)
    meta = json.loads((tmp_path / "ck/TinyCLIP-random/TrainToyA/linear-tau_jp/finetuned.json").read_text())
    assert meta["precision"] == "bf16" and meta["config"]["precision"] == "bf16" and meta["config"]["grad_checkpointing"] is True
    evaluate = [sys.executable, "src/evaluate.py", "single_task", "--model", "TinyCLIP", "--pretrained", "none", "--tasks", "TrainToyA", "--device", "cpu", *roots]
    _run([*evaluate, "--mode", "linear", "--reg", "tau_jp", "--precision", "bf16"])  # the tangent cache in bf16
    _run([*evaluate, "--mode", "standard", "--precision", "bf16"])  # the batched (stacked-weights) evaluator in bf16
    results = json.loads((tmp_path / "res/TinyCLIP-random/linear-tau_jp/single_task.json").read_text())["settings"]
    assert results["precision"] == "bf16" and results["vectors"]["TrainToyA"]["precision"] == "bf16"
    _run([sys.executable, "src/report.py", "--model", "TinyCLIP", "--pretrained", "none", "--results-root", str(tmp_path / "res")])
    report = (tmp_path / "res/TinyCLIP-random/report/report.md").read_text()
    assert "**Mixed precision**" in report and "linear-tau_jp: trained bf16, evaluated bf16" in report and "standard: trained fp32, evaluated bf16" in report
