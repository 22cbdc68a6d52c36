"""The training objective against independent computations (plain torch, autograd.functional)."""

import pytest
import torch
import torch.nn.functional as F
from test_training_support import register_tasks
from torch.func import functional_call

from task_arithmetic.data.sampling import EpochPlan, PenaltyStream
from task_arithmetic.data.splits import load_dataset
from task_arithmetic.io import load_weights
from task_arithmetic.models.factory import ModelSpec
from task_arithmetic.models.heads import ClassificationHead
from task_arithmetic.models.linearize import forward_ad_safe
from task_arithmetic.models.pretrained import task_head, zeroshot_encoder
from task_arithmetic.paths import Layout
from task_arithmetic.recipes import MODES
from task_arithmetic.recipes.base import PenaltyInputs
from task_arithmetic.recipes.tau_jp import PenaltySource, TauJpPenalty, draws_done, tasks_for_step
from task_arithmetic.training import FinetuneConfig, run_finetune
from task_arithmetic.training.model import build_trainee
from task_arithmetic.training.step import accumulate_gradients

register_tasks()
SPEC = ModelSpec("TinyCLIP")


def toy_config(tmp_path, **kw) -> FinetuneConfig:
    return FinetuneConfig(
        task=kw.pop("task", "TrainToyA"), model="TinyCLIP", pretrained=None, device="cpu", progress=False,
        checkpoint_root=str(tmp_path / "ck"), results_root=str(tmp_path / "res"), data_location=str(tmp_path / "data"), **kw,
    )


def trained_weights(result) -> dict[str, torch.Tensor]:
    return load_weights(result.path)[0]


def reference_jvp(module, params0: dict, delta: dict, x: torch.Tensor, create_graph: bool = False):
    """(f(x; theta0), J f(x) . delta) by autograd.functional's double-backward trick, not torch.func.jvp."""
    names = list(delta)

    def f(*ps):
        return functional_call(module, {**params0, **dict(zip(names, ps))}, (x,))

    with forward_ad_safe():
        return torch.autograd.functional.jvp(f, tuple(params0[n] for n in names), tuple(delta[n] for n in names), create_graph=create_graph)


def tau_jp_term(coef: float) -> TauJpPenalty:
    """The tau-Jp term alone; the step takes its inputs from the test, not from a source."""
    return TauJpPenalty(coef, source=None)


def perturbed_trainee(tmp_path, mode: str, needs_tangent: bool):
    layout = Layout(tmp_path / "ck", tmp_path / "res")
    torch.manual_seed(0)
    encoder = zeroshot_encoder(SPEC, layout)
    head = task_head(SPEC, "TrainToyA", layout, tmp_path / "data")
    torch.manual_seed(1)
    theta = {k: v + 0.02 * torch.randn_like(v) for k, v in encoder.weights().items()}
    return build_trainee(encoder, head, MODES[mode], needs_tangent=needs_tangent, init_weights=theta)


@pytest.mark.parametrize("mode", ["linear", "standard"])
def test_objective_and_gradients_match_independent_computation(tmp_path, mode):
    trainee = perturbed_trainee(tmp_path, mode, needs_tangent=True)
    g = torch.Generator().manual_seed(1)
    images, labels = torch.randn(6, 3, 32, 32, generator=g), torch.randint(0, 4, (6,), generator=g)
    pen_x = torch.randn(4, 3, 32, 32, generator=g)
    coef = 0.3
    stats = accumulate_gradients(trainee, images, labels, micro_batch=4, global_count=6, world=1,
                                 penalty=tau_jp_term(coef), penalty_inputs=PenaltyInputs(pen_x, 4))
    ours = {n: p.grad.clone() for n, p in trainee.visual.named_parameters()}

    # Independent: theta as fresh leaves, theta0 from the frozen copy, double-backward JVP.
    frozen = trainee.linear.frozen
    params0 = {n: p.detach() for n, p in frozen.named_parameters()}
    theta = {n: p.detach().clone().requires_grad_(True) for n, p in trainee.visual.named_parameters()}
    delta = {n: theta[n] - params0[n] for n in theta}
    if mode == "linear":
        out0, tangent = reference_jvp(frozen, params0, delta, images, create_graph=True)
        features = out0 + tangent
    else:
        features = functional_call(frozen, theta, (images,))
    ce = F.cross_entropy(trainee.head(features), labels)
    _, pen_tangent = reference_jvp(frozen, params0, delta, pen_x, create_graph=True)
    tau_jp = pen_tangent.norm(dim=-1).mean()
    (ce + coef * tau_jp).backward()

    assert stats.loss == pytest.approx(ce.item(), rel=1e-5)
    assert stats.metric_means()["tau_jp"] == pytest.approx(tau_jp.item(), rel=1e-4)
    assert stats.count == 6 and stats.metrics["tau_jp"][1] == 4
    for name, param in theta.items():
        torch.testing.assert_close(ours[name], param.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_penalty_at_theta0_is_zero_with_finite_gradient(tmp_path):
    layout = Layout(tmp_path / "ck", tmp_path / "res")
    torch.manual_seed(0)
    encoder = zeroshot_encoder(SPEC, layout)
    trainee = build_trainee(encoder, task_head(SPEC, "TrainToyA", layout, tmp_path), MODES["linear"], needs_tangent=True, init_weights=None)
    x = torch.randn(4, 3, 32, 32)
    stats = accumulate_gradients(trainee, x, torch.tensor([0, 1, 2, 3]), 4, 4, 1, penalty=tau_jp_term(1.0), penalty_inputs=PenaltyInputs(x, 4))
    assert stats.metric_means()["tau_jp"] == 0.0
    assert all(torch.isfinite(p.grad).all() for p in trainee.parameters())


def test_micro_batches_accumulate_exactly_like_one_batch(tmp_path):
    grads = []
    for micro in (7, 3):  # 7 = one chunk; 3 = chunks of 3, 3, 1
        trainee = perturbed_trainee(tmp_path, "linear", needs_tangent=True)
        g = torch.Generator().manual_seed(5)
        images, labels = torch.randn(7, 3, 32, 32, generator=g), torch.randint(0, 4, (7,), generator=g)
        accumulate_gradients(trainee, images, labels, micro, 7, 1, penalty=tau_jp_term(0.1),
                             penalty_inputs=PenaltyInputs(torch.randn(2, 3, 32, 32, generator=g), 2))
        grads.append([p.grad.clone() for p in trainee.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_gradient_accumulation_run_matches_big_batch_run(tmp_path):
    common = dict(reg="tau_jp", batch_size=16, max_steps=3, options=dict(penalty_batch=4), lr=1e-3)
    big = trained_weights(run_finetune(toy_config(tmp_path / "big", **common)))
    small = trained_weights(run_finetune(toy_config(tmp_path / "small", micro_batch=5, **common)))
    start = load_weights(Layout(tmp_path / "big" / "ck").zeroshot(SPEC.model_id))[0]
    flat = lambda w: torch.cat([w[k].flatten() for k in sorted(w)])
    update, diff = flat(big) - flat(start), flat(small) - flat(big)
    # Adam turns float noise in near-zero gradient entries (e.g. the attention key bias, whose
    # true gradient is 0) into visible steps, so compare the runs relative to the update: a
    # broken accumulation (stepping per micro-batch, wrong scaling) differs by O(1) here.
    assert update.norm() > 0.1
    assert diff.norm() / update.norm() < 1e-3, float(diff.norm() / update.norm())
    assert diff.abs().max() < 0.1 * 1e-3  # no entry off by more than a tenth of one step


def test_one_standard_step_equals_plain_torch_step(tmp_path):
    cfg = toy_config(tmp_path, max_steps=1, batch_size=8, lr=1e-2, warmup=4, wd=0.05, clip=0.5, seed=3)
    ours = trained_weights(run_finetune(cfg))

    layout = Layout(tmp_path / "ck", tmp_path / "res")
    encoder = zeroshot_encoder(SPEC, layout)
    head = ClassificationHead(load_weights(layout.head(SPEC.model_id, "TrainToyA"))[0]["weight"])
    train = load_dataset("TrainToyA", "train", tmp_path)
    first = torch.randperm(len(train), generator=torch.Generator().manual_seed(3))[:8].tolist()  # epoch 0, seed 3
    images = torch.stack([train[i][0] for i in first])
    labels = torch.stack([torch.as_tensor(train[i][1]) for i in first])
    params = list(encoder.visual.parameters())
    opt = torch.optim.AdamW(params, lr=1e-2 / 4, weight_decay=0.05)  # warm-up step 1 of 4
    F.cross_entropy(head(encoder(images)), labels).backward()
    torch.nn.utils.clip_grad_norm_(params, 0.5)
    opt.step()
    for key, value in encoder.visual.state_dict().items():
        torch.testing.assert_close(ours[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_penalty_schedule_strict_and_round_robin():
    assert [tasks_for_step("efficient", s, 3) for s in range(5)] == [[0], [1], [2], [0], [1]]
    assert tasks_for_step("strict", 4, 3) == [0, 1, 2]
    # Draw counts must equal what a run from step 0 would have consumed.
    for variant in ("efficient", "continual", "strict"):
        for step in range(9):
            used = [0, 0, 0]
            for s in range(step):
                for t in tasks_for_step(variant, s, 3):
                    used[t] += 1
            assert [draws_done(variant, step, t, 3) for t in range(3)] == used


def test_penalty_streams_resume_and_shard_the_global_batch():
    data = torch.utils.data.TensorDataset(torch.arange(10).float().view(10, 1), torch.zeros(10))
    full = PenaltySource.create("efficient", [data, data], batch=4, seed=1, start_step=0, rank=0, world=1, num_workers=0)
    sequence = [full.inputs_for_step(s)[0].view(-1).tolist() for s in range(8)]
    resumed = PenaltySource.create("efficient", [data, data], batch=4, seed=1, start_step=5, rank=0, world=1, num_workers=0)
    assert [resumed.inputs_for_step(s)[0].view(-1).tolist() for s in range(5, 8)] == sequence[5:]
    # One task's stream walks through whole permutations: every input once per 10 draws.
    one = PenaltyStream(data, 5, seed=2, start_draw=0, rank=0, world=1, num_workers=0)
    assert sorted(one.next_inputs().view(-1).tolist() + one.next_inputs().view(-1).tolist()) == list(range(10))
    # Two processes together see exactly the single process's global batch.
    shards = [PenaltyStream(data, 4, seed=3, start_draw=2, rank=r, world=2, num_workers=0).next_inputs().view(-1).tolist() for r in (0, 1)]
    single = PenaltyStream(data, 4, seed=3, start_draw=2, rank=0, world=1, num_workers=0).next_inputs().view(-1).tolist()
    assert sorted(shards[0] + shards[1]) == sorted(single)


def test_epoch_plan_shards_cover_the_global_batches():
    data = list(range(21))
    single = EpochPlan(21, 6, rank=0, world=1, seed=4)
    two = [EpochPlan(21, 6, rank=r, world=2, seed=4) for r in (0, 1)]
    assert single.steps_per_epoch == 4 and two[0].steps_per_epoch == 4
    for epoch in (0, 1):
        ones = single.batches(data, epoch, 0)
        parts = [p.batches(data, epoch, 0) for p in two]
        for b in range(3):  # full batches: same examples, split over the processes
            assert sorted(i for i, _ in ones[b]) == sorted(i for part in parts for i, _ in part[b])
        # Resuming mid-epoch yields the same remaining batches.
        assert single.batches(data, epoch, 2) == ones[2:]
    assert single.batches(data, 0, 0) != single.batches(data, 1, 0)  # reshuffled each epoch


def test_data_workers_and_augmentation_seeding_do_not_change_the_result(tmp_path):
    common = dict(reg="tau_jp", batch_size=8, options=dict(penalty_batch=4), max_steps=3, seed=4)
    inline = trained_weights(run_finetune(toy_config(tmp_path / "a", **common)))
    workers = trained_weights(run_finetune(toy_config(tmp_path / "b", num_workers=2, **common)))
    for key in inline:
        assert torch.equal(inline[key], workers[key]), key


def test_default_loader_workers_follow_the_device_and_the_task(monkeypatch):
    from task_arithmetic.data.sampling import MAX_AUTO_WORKERS, loader_workers

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(32)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert loader_workers(3, cuda, tensor_native=True) == 3 and loader_workers(0, cuda, tensor_native=False) == 0
    assert loader_workers(None, cpu, tensor_native=False) == 0  # workers would only take the model's cores
    assert loader_workers(None, cuda, tensor_native=True) == 0  # nothing to decode
    assert loader_workers(None, cuda, tensor_native=False) == MAX_AUTO_WORKERS
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # 8 torchrun processes share the 32 cores
    assert loader_workers(None, cuda, tensor_native=False) == 3


def test_random_augmentation_depends_only_on_the_sample_key():
    from task_arithmetic.data.sampling import SeededSamples

    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.rand(2) + i, i

    ds = SeededSamples(Noisy())
    torch.manual_seed(0)
    a = ds[(1, 123)][0]
    torch.rand(5)  # whatever else consumed the global RNG in between
    assert torch.equal(ds[(1, 123)][0], a) and not torch.equal(ds[(1, 124)][0], a)
    state = torch.get_rng_state()
    ds[(2, 7)]
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left untouched
