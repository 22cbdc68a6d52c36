"""FusionBench parity: its semantics (TIES's trim count and majority sign, DARE on parameters
only), its calls and signatures, checked against direct computations on small modules."""

import copy

import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from torch import nn

from task_arithmetic.errors import UserError
from task_arithmetic.merging import (
    BaseModelPool,
    DareSimpleAverage,
    DareTaskArithmetic,
    DareTiesMerging,
    SimpleAverageAlgorithm,
    TaskArithmeticAlgorithm,
    TiesMergingAlgorithm,
    WeightedAverageAlgorithm,
)


def linear_models(n, seed=0, with_base=True):
    gen = torch.Generator().manual_seed(seed)
    base = nn.Linear(5, 4)
    with torch.no_grad():
        for p in base.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    models = {"_pretrained_": base} if with_base else {}
    for i in range(n):
        m = copy.deepcopy(base)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn(p.shape, generator=gen))
        models[f"m{i}"] = m
    return models


def flat(module):
    return torch.cat([v.flatten() for v in module.state_dict().values()])


def test_ties_sign_tie_takes_the_majority_sign():
    base = nn.Linear(2, 2, bias=False)
    a, b = copy.deepcopy(base), copy.deepcopy(base)
    with torch.no_grad():
        base.weight.zero_()
        a.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, -4.0]]))
        b.weight.copy_(torch.tensor([[-1.0, 2.0], [5.0, -1.0]]))  # entry (0, 0): 1 + (-1) = 0, a tie
    merged = TiesMergingAlgorithm(1.0, 100, [], "sum").run({"_pretrained_": base, "a": a, "b": b})
    # Column sums 0, 4, 8, -5: signs 0, +, +, -; majority sign + (two against one), so the tie
    # keeps the positive value 1 (the suite used to drop the entry).
    assert torch.equal(merged.weight, torch.tensor([[1.0, 4.0], [8.0, -5.0]]))


def test_ties_keeps_one_more_than_int_d_k_and_reads_fractions():
    models = linear_models(1, seed=1)  # d = 24 entries
    for threshold in (0.25, 25):
        merged = TiesMergingAlgorithm(scaling_factor=1.0, threshold=threshold).run(models)
        changed = int((flat(merged) != flat(models["_pretrained_"])).sum())
        assert changed == int(24 * 0.25) + 1
    tiny = TiesMergingAlgorithm(scaling_factor=1.0, threshold=1e-3).run(models)  # int(d*K) = 0: the largest entry
    assert int((flat(tiny) != flat(models["_pretrained_"])).sum()) == 1


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 6)
        self.bn = nn.BatchNorm1d(6)

    def forward(self, x):
        return self.bn(self.fc(x))


@pytest.mark.parametrize("seed", [0, 1, 3, 4])
def test_dare_leaves_batchnorm_buffers_valid(seed):
    gen = torch.Generator().manual_seed(100 + seed)
    base = BNNet()
    models = {"_pretrained_": base}
    for i in range(4):
        m = copy.deepcopy(base)
        with torch.no_grad():
            m.bn.running_var.add_(0.01 * torch.rand(6, generator=gen))
            m.fc.weight.add_(0.1 * torch.randn(m.fc.weight.shape, generator=gen))
        models[f"m{i}"] = m
    merged = DareTaskArithmetic(0.3, 0.9, False, seed=seed).run(models)
    plain = TaskArithmeticAlgorithm(0.3).run(models)
    assert torch.all(merged.bn.running_var > 0)
    assert torch.equal(merged.bn.running_var, plain.bn.running_var)  # buffers: task arithmetic, undropped
    assert not torch.equal(merged.fc.weight, plain.fc.weight)  # parameters: dropped
    assert torch.isfinite(merged.eval()(torch.randn(2, 3))).all()


def test_numpy_and_zero_dim_torch_scalars_are_coefficients():
    models = linear_models(2, seed=2)
    for lam in list(np.linspace(0.1, 0.5, 3)) + list(torch.linspace(0.1, 0.5, 3)) + [np.float32(0.3), np.array(0.3)]:
        got = TaskArithmeticAlgorithm(scaling_factor=lam).run(models)
        want = TaskArithmeticAlgorithm(scaling_factor=float(lam)).run(models)
        assert torch.equal(flat(got), flat(want))
    assert DareTaskArithmetic(np.float64(0.3), np.float32(0.5), False, seed=np.int64(3)).seed == 3
    for bad in (np.array([0.1, 0.2]), torch.tensor([0.3]), np.bool_(True), torch.tensor(True)):
        with pytest.raises(UserError, match="finite number"):
            TaskArithmeticAlgorithm(scaling_factor=bad)


def test_simple_average_of_a_plain_list_and_task_arithmetic_refuses_it():
    models = list(linear_models(3, seed=3, with_base=False).values())
    before = [flat(m).clone() for m in models]
    merged = SimpleAverageAlgorithm().run(models)
    assert torch.allclose(flat(merged), torch.stack(before).mean(0), atol=1e-6)
    assert all(torch.equal(flat(m), b) for m, b in zip(models, before))
    with pytest.raises(UserError, match="no '_pretrained_' entry"):
        TaskArithmeticAlgorithm(0.3).run(models)


def test_weighted_average_matches_direct_sum():
    models = linear_models(3, seed=4)
    tuned = [flat(models[f"m{i}"]) for i in range(3)]
    raw = WeightedAverageAlgorithm(normalize=False, weights=[0.2, 0.5, 0.9]).run(models)
    assert torch.allclose(flat(raw), 0.2 * tuned[0] + 0.5 * tuned[1] + 0.9 * tuned[2], atol=1e-5)
    norm = WeightedAverageAlgorithm(True, np.array([1.0, 1.0, 2.0])).run({k: v for k, v in models.items() if k != "_pretrained_"})
    assert torch.allclose(flat(norm), 0.25 * tuned[0] + 0.25 * tuned[1] + 0.5 * tuned[2], atol=1e-5)
    with pytest.raises(UserError, match="2 values for 3 models"):
        WeightedAverageAlgorithm(True, [0.5, 0.5]).run(models)


def test_config_property_and_fusionbench_keyword_arguments():
    algorithm = TaskArithmeticAlgorithm(scaling_factor=0.7, name="ta", show_pbar=True)
    assert isinstance(algorithm.config, DictConfig)
    assert algorithm.config.scaling_factor == 0.7 and algorithm.config._target_ == "TaskArithmeticAlgorithm"
    assert algorithm.config.show_pbar is True and "show_pbar" not in algorithm.settings()
    assert TiesMergingAlgorithm(0.3, 20, [], "sum", show_pbar=False).config.merge_func == "sum"
    with pytest.raises(UserError, match="unknown argument.*scaling_factr.*valid: scaling_factor"):
        TaskArithmeticAlgorithm(scaling_factr=0.3)


def test_base_model_pool_len_and_merged_entry():
    models = linear_models(2, seed=5)
    models["_merged_"] = nn.Linear(5, 4)  # FusionBench's special entry: never a task
    pool = BaseModelPool(models)
    assert len(pool) == 2 and pool.model_names == ["m0", "m1"] and pool.has_merged
    merged = TaskArithmeticAlgorithm(0.5).run(pool)
    expected = TaskArithmeticAlgorithm(0.5).run({k: v for k, v in models.items() if k != "_merged_"})
    assert torch.equal(flat(merged), flat(expected))
    assert len(BaseModelPool([nn.Linear(2, 2), nn.Linear(2, 2)])) == 2


def test_positional_orders_are_fusionbench_s():
    avg = DareSimpleAverage(0.5, False)
    assert (avg.sparsity_ratio, avg.only_on_linear_weights, avg.rescale) == (0.5, False, True)
    ta = DareTaskArithmetic(0.3, 0.6, True, False)
    assert (ta.scaling_factor, ta.sparsity_ratio, ta.only_on_linear_weights, ta.rescale) == (0.3, 0.6, True, False)
    ties = TiesMergingAlgorithm(0.4, 10, ["bias"], "max")
    assert (ties.scaling_factor, ties.threshold, ties.remove_keys, ties.merge_func) == (0.4, 10, ["bias"], "max")
    dt = DareTiesMerging(0.2, True, False, 0.5, 30, [], "sum")
    assert (dt.sparsity_ratio, dt.only_on_linear_weights, dt.rescale, dt.scaling_factor, dt.threshold, dt.merge_func) == (
        0.2, True, False, 0.5, 30, "sum",
    )
    assert SimpleAverageAlgorithm(True).config.show_pbar is True
    assert WeightedAverageAlgorithm(False, [1.0]).normalize is False
