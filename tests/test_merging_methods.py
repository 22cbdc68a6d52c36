"""Merging algorithms against direct computations on small modules (float and integer buffers)."""

import copy
import hashlib
import math
import weakref

import pytest
import torch
from torch import nn

from task_arithmetic.errors import UserError
from task_arithmetic.merging import (
    BaseModelPool,
    DareAlgorithm,
    DareTiesMerging,
    SimpleAverageAlgorithm,
    TaskArithmeticAlgorithm,
    TiesMergingAlgorithm,
    WeightedTaskArithmeticAlgorithm,
)


class Small(nn.Module):
    """An MLP with every kind of state entry: parameters, float buffers, integer buffers."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.bn = nn.BatchNorm1d(8)  # running_mean/var (float) + num_batches_tracked (int64)
        self.fc2 = nn.Linear(8, 3)
        self.register_buffer("temperature", torch.ones(3))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x)))) / self.temperature


def make_models(n: int, seed: int = 0, dtype=torch.float32) -> dict[str, nn.Module]:
    gen = torch.Generator().manual_seed(seed)
    base = Small()
    with torch.no_grad():
        for t in base.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=gen))
    models = {"_pretrained_": base.to(dtype)}
    for i in range(n):
        model = copy.deepcopy(base)
        with torch.no_grad():
            for t in model.state_dict().values():
                if t.is_floating_point():
                    t.add_(0.1 * torch.randn(t.shape, generator=gen).to(dtype))
        model.bn.num_batches_tracked.fill_(100 + i)
        model.step.fill_(7 * (i + 1))
        models[f"task{i}"] = model
    return models


def states(models):
    return {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in models.items()}


def float_keys(state):
    return [k for k, v in state.items() if v.is_floating_point()]


def check_int_entries_from_pretrained(merged, models):
    base = models["_pretrained_"].state_dict()
    for key, value in merged.state_dict().items():
        if not value.is_floating_point():
            assert torch.equal(value, base[key]), key


def test_seed_example_runs_and_returns_new_linear():
    torch.manual_seed(0)
    models = {"_pretrained_": nn.Linear(10, 10), "model_1": nn.Linear(10, 10), "model_2": nn.Linear(10, 10)}
    before = states(models)
    merged = TaskArithmeticAlgorithm(scaling_factor=0.5).run(models)
    assert isinstance(merged, nn.Linear) and merged is not models["_pretrained_"]
    p0, p1, p2 = (before[n] for n in ("_pretrained_", "model_1", "model_2"))
    for key in ("weight", "bias"):
        expected = p0[key] + 0.5 * ((p1[key] - p0[key]) + (p2[key] - p0[key]))
        torch.testing.assert_close(merged.state_dict()[key], expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0, -0.7])
def test_task_arithmetic_matches_direct_formula(lam):
    models = make_models(3)
    ref = states(models)
    merged = TaskArithmeticAlgorithm(scaling_factor=lam).run(models)
    base = ref["_pretrained_"]
    for key in float_keys(base):
        expected = base[key].double() + lam * sum(ref[f"task{i}"][key].double() - base[key].double() for i in range(3))
        torch.testing.assert_close(merged.state_dict()[key].double(), expected, rtol=0, atol=2e-6)
    check_int_entries_from_pretrained(merged, models)
    # The merged module works as a module: same forward as the module built from the formula.
    merged.eval()
    assert merged(torch.randn(4, 6)).shape == (4, 3)


def test_simple_average_is_mean_of_finetuned_models():
    models = make_models(4, seed=1)
    ref = states(models)
    merged = SimpleAverageAlgorithm().run(models)
    for key in float_keys(ref["_pretrained_"]):
        expected = torch.stack([ref[f"task{i}"][key].double() for i in range(4)]).mean(0)
        torch.testing.assert_close(merged.state_dict()[key].double(), expected, rtol=0, atol=2e-6)
    check_int_entries_from_pretrained(merged, models)


def test_weighted_task_arithmetic_mapping_and_list():
    models = make_models(3, seed=2)
    ref = states(models)
    coefs = {"task0": 0.2, "task1": -0.5, "task2": 1.5}
    by_name = WeightedTaskArithmeticAlgorithm(scaling_factors=coefs).run(models)
    by_order = WeightedTaskArithmeticAlgorithm(scaling_factors=[0.2, -0.5, 1.5]).run(models)
    base = ref["_pretrained_"]
    for key in float_keys(base):
        expected = base[key].double() + sum(c * (ref[n][key].double() - base[key].double()) for n, c in coefs.items())
        torch.testing.assert_close(by_name.state_dict()[key].double(), expected, rtol=0, atol=2e-6)
        assert torch.equal(by_name.state_dict()[key], by_order.state_dict()[key])
    with pytest.raises(UserError, match="missing: task2"):
        WeightedTaskArithmeticAlgorithm(scaling_factors={"task0": 1, "task1": 1}).run(models)
    with pytest.raises(UserError, match="2 values for 3 models"):
        WeightedTaskArithmeticAlgorithm(scaling_factors=[1, 2]).run(models)
    with pytest.raises(UserError, match="finite"):
        WeightedTaskArithmeticAlgorithm(scaling_factors={"task0": math.inf, "task1": 1, "task2": 1})


def ties_reference(ref, names, keys, percent, lam, merge_func):
    """TIES as the original code runs it, on the flattened, stacked task vectors: keep |tau| >= the
    (d - int(d*K))-th smallest magnitude (a sort, not a streamed k-th value), elect signs with the
    majority sign on ties."""
    base = ref["_pretrained_"]
    taus = torch.stack([torch.cat([(ref[n][k].float() - base[k].float()).flatten() for k in keys]) for n in names])
    d = taus.shape[1]
    fraction = percent / 100 if percent > 1 else percent
    n_drop = d - int(d * fraction)
    trimmed = taus.clone()
    if n_drop > 0:
        boundary = taus.abs().sort(dim=1).values[:, n_drop - 1 : n_drop]
        trimmed = taus * (taus.abs() >= boundary)
    elected = torch.sign(trimmed.sum(0))
    elected[elected == 0] = torch.sign(elected.sum())
    agree = (torch.sign(trimmed) == elected) & (elected != 0)
    chosen = trimmed * agree
    if merge_func == "mean":
        merged = chosen.sum(0) / agree.sum(0).clamp(min=1)
    elif merge_func == "sum":
        merged = chosen.sum(0)
    else:
        merged = chosen.abs().max(0).values * elected
    out, offset = {}, 0
    for k in keys:
        n = base[k].numel()
        out[k] = base[k].float() + lam * merged[offset : offset + n].reshape(base[k].shape)
        offset += n
    return out


@pytest.mark.parametrize("merge_func", ["mean", "sum", "max"])
@pytest.mark.parametrize("percent", [20, 0.2, 60, 100, 1])
def test_ties_merging_matches_reference(merge_func, percent):
    models = make_models(3, seed=3)
    ref = states(models)
    merged = TiesMergingAlgorithm(scaling_factor=0.7, threshold=percent, merge_func=merge_func).run(models)
    keys = float_keys(ref["_pretrained_"])
    expected = ties_reference(ref, ["task0", "task1", "task2"], keys, percent, 0.7, merge_func)
    for key in keys:
        torch.testing.assert_close(merged.state_dict()[key], expected[key], rtol=0, atol=1e-6)
    check_int_entries_from_pretrained(merged, models)


def test_ties_trimming_keeps_the_requested_share_and_remove_keys():
    models = make_models(1, seed=4)
    ref = states(models)
    merged = TiesMergingAlgorithm(scaling_factor=1.0, threshold=25, remove_keys=["fc2.bias"]).run(models)
    base, tuned = ref["_pretrained_"], ref["task0"]
    keys = [k for k in float_keys(base) if k != "fc2.bias"]
    # With one model every kept entry agrees with itself: merged = base + trimmed tau.
    changed = sum(int((merged.state_dict()[k] != base[k]).sum()) for k in keys)
    total = sum(base[k].numel() for k in keys)
    assert changed == int(total * 0.25) + 1  # the original code keeps the k-th value too
    for k in keys:
        delta = merged.state_dict()[k] - base[k]
        mask = delta != 0
        torch.testing.assert_close(delta[mask], (tuned[k] - base[k])[mask], rtol=0, atol=1e-6)
    assert torch.equal(merged.state_dict()["fc2.bias"], base["fc2.bias"])


def dare_mask_by_recipe(shape, p, seed, model, key):
    """The documented recipe: generator seeded by sha256('seed:model:key'), keep where rand >= p."""
    digest = hashlib.sha256(f"{seed}:{model}:{key}".encode()).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))
    return torch.rand(tuple(shape), generator=gen) >= p


def test_dare_matches_recipe_and_drops_the_requested_share():
    models = make_models(2, seed=5)
    ref = states(models)
    p, lam = 0.6, 0.8
    merged = DareAlgorithm(scaling_factor=lam, sparsity_ratio=p, seed=11).run(models)
    base = ref["_pretrained_"]
    parameters = {name for name, _ in models["_pretrained_"].named_parameters()}
    kept = total = 0
    for key in float_keys(base):
        expected = base[key].clone()
        for name in ("task0", "task1"):
            if key not in parameters:  # buffers are merged as they are, never dropped
                expected += lam * (ref[name][key] - base[key])
                continue
            mask = dare_mask_by_recipe(base[key].shape, p, 11, name, key)
            kept += int(mask.sum())
            total += mask.numel()
            expected += lam * (ref[name][key] - base[key]) * mask / (1 - p)
        torch.testing.assert_close(merged.state_dict()[key], expected, rtol=0, atol=1e-5)
    # ~Binomial(total, 0.4): 5 standard deviations either side.
    sd = math.sqrt(total * p * (1 - p))
    assert abs(kept - total * (1 - p)) < 5 * sd
    check_int_entries_from_pretrained(merged, models)


def test_dare_is_seeded_order_independent_and_reduces_to_task_arithmetic():
    models = make_models(3, seed=6)
    a = DareAlgorithm(scaling_factor=0.5, sparsity_ratio=0.5, seed=1).run(models)
    reordered = dict(reversed(list(models.items())))
    b = DareAlgorithm(scaling_factor=0.5, sparsity_ratio=0.5, seed=1).run(reordered)
    c = DareAlgorithm(scaling_factor=0.5, sparsity_ratio=0.5, seed=2).run(models)
    plain = TaskArithmeticAlgorithm(scaling_factor=0.5).run(models)
    no_drop = DareAlgorithm(scaling_factor=0.5, sparsity_ratio=0.0).run(models)
    w = "fc1.weight"
    torch.testing.assert_close(a.state_dict()[w], b.state_dict()[w], rtol=0, atol=1e-6)
    assert not torch.allclose(a.state_dict()[w], c.state_dict()[w])
    assert torch.equal(no_drop.state_dict()[w], plain.state_dict()[w])
    ties = TiesMergingAlgorithm(scaling_factor=0.4, threshold=30).run(models)
    dare_ties = DareTiesMerging(scaling_factor=0.4, threshold=30, sparsity_ratio=0.0).run(models)
    assert torch.equal(ties.state_dict()[w], dare_ties.state_dict()[w])


def test_dare_without_rescale_and_only_on_linear_weights():
    models = make_models(1, seed=7)
    ref = states(models)
    merged = DareAlgorithm(scaling_factor=1.0, sparsity_ratio=0.5, rescale=False, only_on_linear_weights=True).run(models)
    base, tuned = ref["_pretrained_"], ref["task0"]
    for key in float_keys(base):
        delta = merged.state_dict()[key] - base[key]
        tau = tuned[key] - base[key]
        if key in ("fc1.weight", "fc2.weight"):
            kept = delta != 0
            assert 0 < int(kept.sum()) < kept.numel()
            torch.testing.assert_close(delta[kept], tau[kept], rtol=0, atol=1e-6)  # not rescaled
        else:  # biases, BatchNorm and buffers are untouched by DARE here
            torch.testing.assert_close(delta, tau, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "algorithm",
    [TaskArithmeticAlgorithm(0.5), TiesMergingAlgorithm(), DareAlgorithm(), SimpleAverageAlgorithm()],
    ids=["ta", "ties", "dare", "avg"],
)
def test_inputs_are_untouched_unless_inplace(algorithm):
    models = make_models(2, seed=8)
    before = states(models)
    merged = algorithm.run(models)
    assert all(merged is not m for m in models.values())
    after = states(models)
    for name in before:
        for key in before[name]:
            assert torch.equal(before[name][key], after[name][key]), (name, key)
    again = algorithm.run(models, inplace=True)
    # FusionBench's targets: theta_0's module, but the first model for simple averaging.
    assert again is models["task0" if isinstance(algorithm, SimpleAverageAlgorithm) else "_pretrained_"]
    for key, value in merged.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_are_kept_with_wide_accumulation(dtype):
    models = make_models(4, seed=9, dtype=dtype)
    ref = states(models)
    merged = TaskArithmeticAlgorithm(scaling_factor=0.3).run(models)
    base = ref["_pretrained_"]
    for key in float_keys(base):
        got = merged.state_dict()[key]
        assert got.dtype == dtype
        exact = base[key].double() + 0.3 * sum(ref[f"task{i}"][key].double() - base[key].double() for i in range(4))
        if dtype == torch.float64:
            torch.testing.assert_close(got, exact, rtol=0, atol=1e-12)
        else:  # within one unit in the last place of the correctly rounded value
            rounded = exact.to(dtype).double()
            ulp = (torch.nextafter(rounded.abs().to(dtype), torch.tensor(math.inf, dtype=dtype)).double() - rounded.abs())
            assert torch.all((got.double() - rounded).abs() <= ulp), key


def test_clear_errors():
    lin = lambda: nn.Linear(4, 4)  # noqa: E731
    with pytest.raises(UserError, match="no '_pretrained_' entry"):
        TaskArithmeticAlgorithm().run({"a": lin(), "b": lin()})
    with pytest.raises(UserError, match="at least one fine-tuned model"):
        TaskArithmeticAlgorithm().run({"_pretrained_": lin()})
    with pytest.raises(UserError, match="model 'b' does not match .*1 missing keys \\(e.g. 'bias'\\)"):
        TaskArithmeticAlgorithm().run({"_pretrained_": lin(), "a": lin(), "b": nn.Linear(4, 4, bias=False)})
    with pytest.raises(UserError, match="model 'a' does not match .*shape mismatches \\(e.g. 'weight': \\(3, 4\\) vs \\(4, 4\\)\\)"):
        TaskArithmeticAlgorithm().run({"_pretrained_": lin(), "a": nn.Linear(4, 3)})
    with pytest.raises(UserError, match="not an nn.Module"):
        TaskArithmeticAlgorithm().run({"_pretrained_": lin(), "a": 3})
    for bad in (math.nan, math.inf, -math.inf, "0.5", None, True):
        with pytest.raises(UserError, match="scaling_factor must be a finite number"):
            TaskArithmeticAlgorithm(scaling_factor=bad)
    with pytest.raises(UserError, match="threshold .* \\(1, 100\\]"):
        TiesMergingAlgorithm(threshold=0)
    with pytest.raises(UserError, match="merge_func"):
        TiesMergingAlgorithm(merge_func="median")
    with pytest.raises(UserError, match="remove_keys"):
        TiesMergingAlgorithm(remove_keys=["nope"]).run({"_pretrained_": lin(), "a": lin()})
    with pytest.raises(UserError, match="sparsity_ratio"):
        DareAlgorithm(sparsity_ratio=1.0)


class CountingPool(BaseModelPool):
    """Hands out state dicts on demand and records how many were alive at once."""

    def __init__(self, models):
        self.models = models
        self.refs = []
        self.peak = 0

    @property
    def all_model_names(self):
        return list(self.models)

    def load_model(self, name):
        return copy.deepcopy(self.models[name])

    def load_state(self, name):
        state = StateDict({k: v.clone() for k, v in self.models[name].state_dict().items()})
        self.refs.append(weakref.ref(state))
        self.peak = max(self.peak, sum(ref() is not None for ref in self.refs))
        return state


class StateDict(dict):
    """A dict that weak references can point to."""


@pytest.mark.parametrize("algorithm", [TaskArithmeticAlgorithm(0.5), TiesMergingAlgorithm(), DareAlgorithm()], ids=["ta", "ties", "dare"])
def test_merging_streams_one_finetuned_model_at_a_time(algorithm):
    models = make_models(5, seed=10)
    pool = CountingPool(models)
    streamed = algorithm.run(pool)
    assert pool.peak == 1
    direct = algorithm.run(models)
    for key, value in direct.state_dict().items():
        assert torch.equal(value, streamed.state_dict()[key]), key


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_modules_merge_like_cpu_ones():
    models = make_models(3, seed=12)
    cpu = DareAlgorithm(sparsity_ratio=0.3).run(models)
    gpu = DareAlgorithm(sparsity_ratio=0.3).run({k: copy.deepcopy(m).cuda() for k, m in models.items()})
    for key, value in cpu.state_dict().items():
        assert gpu.state_dict()[key].is_cuda
        torch.testing.assert_close(gpu.state_dict()[key].cpu(), value, rtol=0, atol=1e-6)
