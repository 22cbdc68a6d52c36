"""The three recipes the field compares with tau-Jp, each checked against what it promises."""

import pytest
import torch
from test_training_support import register_tasks

from task_arithmetic.errors import UserError
from task_arithmetic.io import load_weights, read_json
from task_arithmetic.models.factory import ModelSpec
from task_arithmetic.models.pretrained import zeroshot_encoder
from task_arithmetic.paths import Layout
from task_arithmetic.recipes import EvaluatedRun, Readout, RunId
from task_arithmetic.recipes.attn_only import attention_weight_names
from task_arithmetic.recipes.l2_sp import L2SPPenalty
from task_arithmetic.recipes.talos import lowest_mask
from task_arithmetic.training import FinetuneConfig, run_finetune

register_tasks()
SPEC = ModelSpec("TinyCLIP")


def toy(tmp_path, **kw) -> FinetuneConfig:
    return FinetuneConfig(
        task="TrainToyA", model="TinyCLIP", pretrained=None, device="cpu", progress=False, batch_size=8, max_steps=2, lr=1e-2,
        checkpoint_root=str(tmp_path / "ck"), results_root=str(tmp_path / "res"), data_location=str(tmp_path / "data"), **kw,
    )


def changed(tmp_path, result) -> dict[str, torch.Tensor]:
    theta0 = load_weights(Layout(tmp_path / "ck").zeroshot(SPEC.model_id))[0]
    tuned = load_weights(result.path)[0]
    return {k: tuned[k] != theta0[k] for k in tuned}


def test_attn_only_changes_only_the_attention_projections(tmp_path):
    result = run_finetune(toy(tmp_path, mode="attn_only"))
    diff = changed(tmp_path, result)
    allowed = set(attention_weight_names(zeroshot_encoder(SPEC, Layout(tmp_path / "ck")).visual))
    assert allowed and all(n.endswith(("attn.in_proj_weight", "attn.out_proj.weight")) for n in allowed)
    assert {k for k, d in diff.items() if d.any()} == allowed
    assert read_json(result.path.with_suffix(".json"))["recipe"]["mode"]["trainable_tensors"] == len(allowed)


def test_talos_updates_only_its_mask_and_at_most_keep(tmp_path):
    result = run_finetune(toy(tmp_path, mode="talos", options=dict(talos_keep=0.05, talos_batches=2)))
    diff = changed(tmp_path, result)
    moved = sum(int(d.sum()) for d in diff.values())
    total = sum(d.numel() for d in diff.values())
    facts = read_json(result.path.with_suffix(".json"))["recipe"]["mode"]
    assert facts["trainable_entries"] == round(0.05 * facts["total_entries"]) and facts["total_entries"] == total
    assert 0 < moved <= facts["trainable_entries"]  # weight decay did not move the frozen entries


def test_talos_mask_keeps_the_lowest_scores_globally():
    scores = {"a": torch.tensor([3.0, 0.0, 5.0]), "b": torch.tensor([[1.0, 4.0], [2.0, 0.5]])}
    masks = lowest_mask(scores, keep=3 / 7)
    assert masks["a"].tolist() == [False, True, False] and masks["b"].tolist() == [[True, False], [False, True]]


def test_l2_sp_term_and_gradient():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    params0 = {n: p.detach().clone() for n, p in layer.named_parameters()}
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))

    class Holder:
        visual = layer

    term = L2SPPenalty(0.7, params0, None, 0.05).term(Holder(), None, None, world=2)
    term.value.backward()
    for name, p in layer.named_parameters():
        torch.testing.assert_close(p.grad, 2 * 0.7 * (p.detach() - params0[name]))
    norm = torch.sqrt(sum(((p.detach() - params0[n]) ** 2).sum() for n, p in layer.named_parameters()))
    metric = term.metrics["tau_norm"]
    assert [float(metric.total), float(metric.count)] == pytest.approx([float(norm), 1.0])


def test_l2_sp_controller_moves_the_coefficient_towards_the_target():
    penalty = L2SPPenalty(1.0, {}, target=2.0, gain=0.1)
    penalty.after_step({"tau_norm": 1.0})  # too short: weaken
    assert penalty.coef < 1.0
    weakened = penalty.coef
    penalty.after_step({"tau_norm": 4.0})  # too long: strengthen
    assert penalty.coef > weakened


def test_l2_sp_matched_strength_reads_the_reference_run(tmp_path):
    with pytest.raises(UserError, match=r"fine-tune TrainToyA as standard first"):
        run_finetune(toy(tmp_path, reg="l2_sp", options=dict(l2_match="standard")))
    reference = run_finetune(toy(tmp_path))
    result = run_finetune(toy(tmp_path, reg="l2_sp", options=dict(l2_match="standard", l2_coef=0.01)))
    facts = read_json(result.path.with_suffix(".json"))["recipe"]["reg"]
    theta0 = load_weights(Layout(tmp_path / "ck").zeroshot(SPEC.model_id))[0]
    ref = load_weights(reference.path)[0]
    target = float(torch.sqrt(sum(((ref[k].double() - theta0[k].double()) ** 2).sum() for k in theta0)))
    assert facts["tau_norm_target"] == pytest.approx(target) and facts["l2_coef_final"] != 0.01
    assert result.path.parent.name == "standard-l2_sp"


def test_run_names_round_trip_and_refuse_foreign_variants():
    for args in (("standard", "none", "efficient"), ("linear", "tau_jp", "strict"), ("standard", "l2_sp", "efficient"), ("talos", "none", "efficient")):
        run = RunId.of(*args, tag="x.1")
        assert RunId.parse(run.name) == run and (run.mode.name, run.reg.name, run.variant) == args
    with pytest.raises(UserError, match=r"--variant strict only applies to --reg tau_jp; add --reg tau_jp or drop --variant"):
        RunId.of("standard", "l2_sp", "strict")
    assert RunId.of(reg="tau_jp").name == "linear-tau_jp"  # a regulariser's default mode: the same in every script
    posthoc = EvaluatedRun.parse("posthoc-l2_sp")
    assert posthoc.run.name == "standard-l2_sp" and posthoc.readout is Readout.LINEARIZED
    with pytest.raises(UserError, match="only evaluated linearised"):
        EvaluatedRun(RunId.of("linear"), Readout.NONLINEAR)
    with pytest.raises(UserError, match="name of a recipe plug-in"):
        RunId.of(tag="strict")
