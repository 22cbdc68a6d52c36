"""AdaMerging against an independent computation: explicit weights, hand-written forward,
entropy and Adam, on a two-layer model with two frozen heads."""

import copy
import itertools

import pytest
import torch
from torch import nn

from task_arithmetic.errors import UserError
from task_arithmetic.merging import (
    AdaMergingAlgorithm,
    CLIPLayerWiseAdaMergingAlgorithm,
    TaskWiseAdaMergingAlgorithm,
    WeightedTaskArithmeticAlgorithm,
)
from task_arithmetic.merging.adamerging import TestTimeData, TestTimeTask

KEYS = ["0.weight", "0.bias", "2.weight", "2.bias"]


def world(seed=0, n_tasks=3):
    torch.manual_seed(seed)
    base = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4))
    models = {"_pretrained_": base}
    for i in range(n_tasks):
        m = copy.deepcopy(base)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.5 * torch.randn_like(p))
        models[f"t{i}"] = m
    heads = {f"t{i}": nn.Linear(4, 3 + i) for i in range(n_tasks)}
    batches = {name: [torch.randn(8, 6) for _ in range(2)] for name in heads}
    return models, heads, batches


def data(heads, batches):
    tasks = {n: TestTimeTask(heads[n].requires_grad_(False), itertools.cycle(batches[n])) for n in heads}
    return TestTimeData(features=lambda call, x: call(x), tasks=tasks, device=torch.device("cpu"))


def reference(models, heads, batches, layer_wise, steps, lr=1e-3, init=0.3):
    """Hand-written: theta(lambda), forward, sum of batch-mean entropies, Adam (betas .9/.999, eps 1e-8)."""
    names = [n for n in models if n != "_pretrained_"]
    base = {k: v.double() for k, v in models["_pretrained_"].state_dict().items()}
    taus = {k: torch.stack([models[n].state_dict()[k].double() - base[k] for n in names]) for k in KEYS}
    lam = torch.full((len(names), len(KEYS)) if layer_wise else (len(names),), init, dtype=torch.float64, requires_grad=True)
    m = torch.zeros_like(lam)
    v = torch.zeros_like(lam)
    counters = {n: 0 for n in names}
    for step in range(1, steps + 1):
        w = {}
        for j, k in enumerate(KEYS):
            c = lam[:, j] if layer_wise else lam
            w[k] = base[k] + sum(c[t] * taus[k][t] for t in range(len(names)))
        loss = 0
        for n in names:
            x = batches[n][counters[n] % len(batches[n])].double()
            counters[n] += 1
            h = torch.tanh(x @ w["0.weight"].T + w["0.bias"]) @ w["2.weight"].T + w["2.bias"]
            logits = h @ heads[n].weight.double().T + heads[n].bias.double()
            p = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)
            loss = loss + (-(p * torch.log(p)).sum(-1)).mean()
        (g,) = torch.autograd.grad(loss, lam)
        with torch.no_grad():
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            lam -= lr * (m / (1 - 0.9**step)) / ((v / (1 - 0.999**step)).sqrt() + 1e-8)
    with torch.no_grad():
        c = lambda j: lam[:, j] if layer_wise else lam  # noqa: E731
        merged = {k: base[k] + torch.tensordot(c(j), taus[k], dims=1) for j, k in enumerate(KEYS)}
    return lam.detach(), merged


@pytest.mark.parametrize("layer_wise", [False, True])
def test_adamerging_matches_hand_written_entropy_minimisation(layer_wise):
    models, heads, batches = world()
    cls = CLIPLayerWiseAdaMergingAlgorithm if layer_wise else TaskWiseAdaMergingAlgorithm
    algorithm = cls(max_steps=6, lr=0.05)
    merged = algorithm.run(models, test_time_data=data(heads, batches))
    lam, expected = reference(models, heads, batches, layer_wise, steps=6, lr=0.05)
    assert torch.tensor(algorithm.merging_weights).shape == lam.shape
    torch.testing.assert_close(torch.tensor(algorithm.merging_weights, dtype=torch.float64), lam, atol=2e-5, rtol=0)
    assert (lam - 0.3).abs().max() > 0.05  # it did move from FusionBench's initial 0.3
    for k in KEYS:
        torch.testing.assert_close(merged.state_dict()[k].double(), expected[k], atol=1e-4, rtol=0)
    # the inputs are untouched and nothing but lambda was trained
    assert all(not p.requires_grad for h in heads.values() for p in h.parameters())
    assert not torch.equal(models["_pretrained_"].state_dict()["0.weight"], merged.state_dict()["0.weight"])


def test_entropy_goes_down_and_fixed_weights_are_task_arithmetic():
    models, heads, batches = world(seed=1)
    d = data(heads, batches)

    def mean_entropy(model):
        with torch.no_grad():
            return sum(
                torch.special.entr(torch.softmax(heads[n](model(x)), -1)).sum(-1).mean().item() for n in heads for x in batches[n]
            )

    zero = AdaMergingAlgorithm(name="clip_task_wise_adamerging", max_steps=0).run(models, test_time_data=d)
    trained = AdaMergingAlgorithm(name="clip_task_wise_adamerging", max_steps=40, lr=0.05).run(models, test_time_data=d)
    assert mean_entropy(trained) < mean_entropy(zero)
    fixed = TaskWiseAdaMergingAlgorithm(weights=[0.1, -0.2, 0.7]).run(models)  # no data needed
    reference = WeightedTaskArithmeticAlgorithm([0.1, -0.2, 0.7]).run(models)
    for k in KEYS:
        torch.testing.assert_close(fixed.state_dict()[k], reference.state_dict()[k], atol=1e-6, rtol=0)


def test_adamerging_errors():
    models, _heads, _batches = world()
    with pytest.raises(UserError, match="taskpool"):
        TaskWiseAdaMergingAlgorithm().run(models)
    with pytest.raises(UserError, match="shape"):
        TaskWiseAdaMergingAlgorithm(weights=[0.1, 0.2]).run(models)
    with pytest.raises(UserError, match="unknown AdaMerging name"):
        AdaMergingAlgorithm(name="clip_wise")
    with pytest.raises(UserError, match="layer-wise"):
        CLIPLayerWiseAdaMergingAlgorithm(name="clip_task_wise_adamerging")
    with pytest.raises(UserError, match="optimizer"):
        AdaMergingAlgorithm(optimizer="sgd")
