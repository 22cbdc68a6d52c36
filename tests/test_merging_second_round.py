"""The second round's methods beyond FusionBench's fixtures: LiNeS and CART (not in FusionBench)
against independent NumPy computations, RegMean against a NumPy re-derivation (also for linearised
pools, whose Grams come from theta_0), the data stop rule, bad settings, and FusionBench's own
config files through src/merge.py."""

import copy

import numpy as np
import pytest
import torch
from test_merging_cli import TOY_TASKS, merge_main, run_layout, run_pool_args  # noqa: F401 - run_layout is a fixture
from test_merging_exactness import TASKS, hf_models
from torch import nn

from task_arithmetic.errors import UserError
from task_arithmetic.merging import (
    BaseModelPool,
    CARTMerging,
    ConsensusTaskArithmeticAlgorithm,
    FisherMergingForCLIPVisionModel,
    LiNeSAlgorithm,
    RegMeanAlgorithmForCLIP,
    TaskSingularVectorMerging,
    WUDIMerging,
)
from task_arithmetic.merging.adamerging import TestTimeData, TestTimeTask
from task_arithmetic.models.heads import ClassificationHead


def numpy_states(models):
    return {n: {k: v.numpy().copy() for k, v in m.state_dict().items()} for n, m in models.items()}


def block_of(key):
    parts = key.split(".")
    return next((int(p) for p in parts[1:-1] if p.isdigit()), None)


# ---------------------------------------------------------------- LiNeS, CART


@pytest.mark.parametrize("alpha", [None, 0.25])
def test_lines_on_task_arithmetic_matches_numpy(alpha):
    models = hf_models()
    s = numpy_states(models)
    base = s["_pretrained_"]
    keys = list(base)
    tau = {k: sum(s[t][k] - base[k] for t in TASKS) for k in keys}
    blocks = 1 + max(b for b in map(block_of, keys) if b is not None)
    a = 1 / len(TASKS) if alpha is None else alpha  # ||sum tau||_1 / (T ||tau_TA||_1) = 1/T
    merged = LiNeSAlgorithm(beta=0.6, alpha=alpha).run(models).state_dict()
    for k in keys:
        b = block_of(k)
        lam = a if b is None else a + 0.6 * b / (blocks - 1)
        np.testing.assert_allclose(merged[k].numpy(), base[k] + lam * tau[k], rtol=0, atol=1e-12)
    assert blocks == 2


def test_lines_alpha_follows_the_base_merges_norm_and_composes_with_any_method():
    models = hf_models()
    s = numpy_states(models)
    base = s["_pretrained_"]
    ties = {"_target_": "TiesMergingAlgorithm", "scaling_factor": 1.0, "threshold": 20, "merge_func": "sum"}
    algorithm = LiNeSAlgorithm(base_method=ties, beta=0.3)
    merged = algorithm.run(hf_models()).state_dict()
    from task_arithmetic.merging import TiesMergingAlgorithm

    ties_merged = numpy_states({"m": TiesMergingAlgorithm(1.0, 20, [], "sum").run(hf_models())})["m"]
    tau_mtl = {k: ties_merged[k] - base[k] for k in base}
    summed = sum(np.abs(sum(s[t][k] - base[k] for t in TASKS)).sum() for k in base)
    alpha = summed / (len(TASKS) * sum(np.abs(v).sum() for v in tau_mtl.values()))
    assert algorithm.alpha_used == pytest.approx(alpha, rel=1e-12) and alpha != pytest.approx(1 / len(TASKS))
    for k in base:
        b = block_of(k)
        lam = alpha if b is None else alpha + 0.3 * b
        np.testing.assert_allclose(merged[k].numpy(), base[k] + lam * tau_mtl[k], rtol=0, atol=1e-12)
    assert algorithm.base_method["_target_"] == "TiesMergingAlgorithm"


@pytest.mark.parametrize("rank_ratio", [0.0, 0.08, 0.5, 1.0])
def test_cart_matches_numpy(rank_ratio):
    models = hf_models()
    s = numpy_states(models)
    merged = CARTMerging(scaling_factor=0.7, rank_ratio=rank_ratio).run(models).state_dict()
    for k, b0 in s["_pretrained_"].items():
        avg = sum(s[t][k] for t in TASKS) / len(TASKS)
        expected = avg.copy()
        if b0.ndim == 2 and block_of(k) is not None:
            keep = 0 if rank_ratio == 0 else min(b0.shape) if rank_ratio == 1 else max(1, int(rank_ratio * min(b0.shape)))
            for t in TASKS:
                u, sv, vh = np.linalg.svd(s[t][k] - avg, full_matrices=False)
                expected += 0.7 * (u[:, :keep] * sv[:keep]) @ vh[:keep]
        np.testing.assert_allclose(merged[k].numpy(), expected, rtol=0, atol=1e-10)


def test_lines_and_cart_coefficients_are_affine_from_their_origins():
    """The merging x recipe evaluation chooses beta (LiNeS) and lambda (CART) on Val by
    interpolating between the c = 0 and c = 1 merges: exact because both are affine in c."""
    from task_arithmetic.evaluation.merging import scaled

    for build in (lambda c: LiNeSAlgorithm(beta=c), lambda c: CARTMerging(scaling_factor=c)):
        zero, one, mid = build(0.0).run(hf_models()), build(1.0).run(hf_models()), build(0.35).run(hf_models())
        interpolated = scaled(zero, one, 0.35).state_dict()
        assert max(float((interpolated[k] - v).abs().max()) for k, v in mid.state_dict().items()) < 1e-12


def test_wudi_survives_a_task_vector_of_zeros():
    """Frozen layers (attention-only or TaLoS fine-tuning) give zero task vectors; FusionBench's
    loss divides by their norm (NaN merge). Here a zero task vector constrains nothing."""
    models = hf_models()
    frozen = copy.deepcopy(models["_pretrained_"])
    models[TASKS[0]] = frozen
    merged = WUDIMerging(iter_num=5).run(models)
    assert all(torch.isfinite(v).all() for v in merged.state_dict().values())
    start = WUDIMerging(iter_num=0).run(hf_models()).state_dict()
    base = hf_models()["_pretrained_"].state_dict()
    s = {t: m.state_dict() for t, m in hf_models().items()}
    for k, v in start.items():
        if v.ndim == 2:
            assert torch.allclose(v, base[k] + sum(s[t][k] - base[k] for t in TASKS), atol=1e-12)


# ---------------------------------------------------------------- RegMean by NumPy, linearised pools


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(5, 6), nn.Linear(6, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class LinearizedPool(BaseModelPool):
    """An in-memory pool whose merges are evaluated linearised (as RunModelPool's linear runs)."""

    @property
    def linearized(self):
        return True


def mlp_world(seed=0):
    gen = torch.Generator().manual_seed(seed)
    base = MLP().double()
    models = {"_pretrained_": base}
    for t in TASKS:
        m = copy.deepcopy(base)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
        models[t] = m
    data = {t: torch.randn(10, 5, generator=gen, dtype=torch.float64) for t in TASKS}
    return models, data


def mlp_data(data, batch_size=4):
    head = ClassificationHead(torch.eye(3, dtype=torch.float64))
    tasks = {t: TestTimeTask(head, iter([x[i : i + batch_size] for i in range(0, len(x), batch_size)])) for t, x in data.items()}
    return TestTimeData(features=lambda call, x: call(x), tasks=tasks, device=torch.device("cpu"))


def numpy_regmean(models, data, activations_of, ratio=0.95):
    s = numpy_states(models)
    out = {}
    for layer in ("fc1", "fc2"):
        grams, products = 0, 0
        for t in TASKS:
            x = activations_of(t, data[t])[layer]
            g = x.T @ x / len(x)
            g = g * ratio + np.diag(np.diag(g)) * (1 - ratio)
            grams, products = grams + g, products + g @ s[t][f"{layer}.weight"].T
        out[f"{layer}.weight"] = np.linalg.solve(grams, products).T
        out[f"{layer}.bias"] = sum(s[t][f"{layer}.bias"] for t in TASKS) / len(TASKS)
    return out


def numpy_inputs(state, x):
    x = x.numpy()
    hidden = np.maximum(x @ state["fc1.weight"].T + state["fc1.bias"], 0)
    return {"fc1": x, "fc2": hidden}


@pytest.mark.parametrize("linearized", [False, True])
def test_regmean_matches_numpy_and_reads_theta0_activations_when_linearised(linearized):
    models, data = mlp_world()
    s = numpy_states(models)
    pool = LinearizedPool(models) if linearized else BaseModelPool(models)
    merged = RegMeanAlgorithmForCLIP(num_regmean_examples=100, dataloader_kwargs={"batch_size": 4}).run(pool, merge_data=mlp_data(data))
    source = (lambda t: s["_pretrained_"]) if linearized else (lambda t: s[t])
    expected = numpy_regmean(models, data, lambda t, x: numpy_inputs(source(t), x))
    for k, v in expected.items():
        np.testing.assert_allclose(merged.state_dict()[k].numpy(), v, rtol=0, atol=1e-10)
    other = numpy_regmean(models, data, lambda t, x: numpy_inputs(s[t] if linearized else s["_pretrained_"], x))
    assert max(np.abs(other[k] - expected[k]).max() for k in expected) > 1e-4  # the two readings differ


def test_data_based_merges_read_batches_until_enough_examples_and_leave_inputs_alone():
    models, data = mlp_world()
    before = {n: (copy.deepcopy(m.state_dict()), m.training) for n, m in models.items()}
    pulled = {t: 0 for t in TASKS}

    def counting(task, batches):
        for batch in batches:
            pulled[task] += 1
            yield batch

    merge = mlp_data(data, batch_size=3)
    merge.tasks = {t: TestTimeTask(task.head, counting(t, task.batches)) for t, task in merge.tasks.items()}
    FisherMergingForCLIPVisionModel(num_fisher_examples=5, dataloader_kwargs={"batch_size": 3}).run(models, merge_data=merge)
    assert pulled == dict.fromkeys(TASKS, 2)  # 3 + 3 >= 5: the third batch is never drawn
    for name, model in models.items():  # the caller's modules: same weights, same training mode
        assert all(torch.equal(v, before[name][0][k]) for k, v in model.state_dict().items()) and model.training == before[name][1]
    merge = mlp_data(data, batch_size=4)
    merged = RegMeanAlgorithmForCLIP(num_regmean_examples=1000, dataloader_kwargs={"batch_size": 4}).run(models, merge_data=merge)
    assert all(torch.isfinite(v).all() for v in merged.state_dict().values())  # a short split ends the reading


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda: RegMeanAlgorithmForCLIP(dataloader_kwargs={"batch_size": 8, "shuffle": True}), "dataloader_kwargs has unsupported key"),
        (lambda: RegMeanAlgorithmForCLIP(split="validation"), "split must be one of"),
        (lambda: RegMeanAlgorithmForCLIP(exclude_param_names_regex="fc1"), "must be a list of regular expressions"),
        (lambda: FisherMergingForCLIPVisionModel(num_fisher_examples=0), "number of examples must be >= 1"),
        (lambda: WUDIMerging(iter_num=-1), "iter_num is the number of Adam steps"),
        (lambda: CARTMerging(rank_ratio=1.5), "rank_ratio is the fraction"),
        (lambda: LiNeSAlgorithm(base_method={"_target_": "LiNeSAlgorithm"}), "base_method is LiNeS itself"),
    ],
)
def test_bad_settings_are_one_clear_error(build, message):
    with pytest.raises(UserError, match=message):
        build()


def test_per_model_settings_must_fit_the_pool():
    with pytest.raises(UserError, match="alpha has 2 values for 3 models"):
        TaskSingularVectorMerging(alpha=[1.0, 2.0]).run(hf_models())
    with pytest.raises(UserError, match="tall_mask_lambda has 2 values for 3 models"):
        ConsensusTaskArithmeticAlgorithm(tall_mask_lambda=[0.2, 0.4]).run(hf_models())
    models, _data = mlp_world()
    with pytest.raises(UserError, match="reads each task's inputs from the task pool"):
        RegMeanAlgorithmForCLIP().run(models)


# ---------------------------------------------------------------- FusionBench's config files through src/merge.py


def test_fusionbench_configs_run_through_merge(run_layout, tmp_path, monkeypatch):  # noqa: F811
    root, layout, spec, base, tuned = run_layout
    monkeypatch.chdir(tmp_path)  # FusionBench's adamerging/clip.yaml saves merging_weights.pt in the working folder
    # adamerging/clip.yaml has no _target_: its `name` picks the class, as FusionBench's v0.1 loader does.
    report = merge_main(run_pool_args(root, "method=adamerging/clip", "method.name=clip_task_wise_adamerging", "method.weights=[0.2,0.4]",
                                      "method.num_workers=0", f"merged_model_save_path={tmp_path / 'ada.safetensors'}"))
    assert report["method_config"]["name"] == "clip_task_wise_adamerging" and (tmp_path / "merging_weights.pt").is_file()
    from task_arithmetic.models.encoder import load_encoder

    merged = load_encoder(tmp_path / "ada.safetensors").weights()
    for key, value in merged.items():
        if value.is_floating_point():
            expected = base[key] + 0.2 * (tuned[TOY_TASKS[0]][key] - base[key]) + 0.4 * (tuned[TOY_TASKS[1]][key] - base[key])
            assert torch.allclose(value, expected, atol=1e-6)
    # TSV-M with FusionBench's return_single_task_models: each model evaluated, as FusionBench's program does.
    report = merge_main(run_pool_args(root, "method=task_singular_vector/TaskSingularVectorMerging", "method.return_single_task_models=true"))
    assert set(report["results"]) == {*TOY_TASKS, "merged"} and set(report["results"]["merged"]) == {*TOY_TASKS, "average"}
    # TALL masks: FusionBench's {"models": ..., "metadata": None}, every per-task model saved and evaluated.
    report = merge_main(run_pool_args(root, "method=tall_mask/task_arithmetic", f"merged_model_save_path={tmp_path / 'tall.safetensors'}"))
    assert set(report["results"]["models"]) == set(TOY_TASKS) and report["results"]["metadata"] is None
    assert all((tmp_path / f"tall.{t}.safetensors").is_file() for t in TOY_TASKS)
    # A data-based merge reads each task's train split from the task pool (FusionBench: the pool's train datasets).
    report = merge_main(run_pool_args(root, "method=regmean/clip_regmean", "method.num_regmean_examples=8"))
    assert report["method_config"]["split"] == "train" and 0 <= report["results"]["average"]["accuracy"] <= 1
    # Every other new config composes, merges and evaluates (one batch per task).
    for method, *overrides in (
        ("wudi/wudi", "method.iter_num=3"), ("magmax/magmax",), ("tall_mask/consensus_task_arithmetic",),
        ("regmean_plusplus/clip_regmean_plusplus", "method.num_regmean_examples=8"), ("lines/lines_task_arithmetic", "method.base_method.scaling_factor=0.5"),
        ("fisher_merging/clip_fisher_merging", "method.num_fisher_examples=8", "method.split=val"), ("cart/cart",),
    ):
        report = merge_main(run_pool_args(root, f"method={method}", "fast_dev_run=true", *overrides))
        assert set(report["results"]) == {*TOY_TASKS, "average"}, method
    assert report["method_config"]["rank_ratio"] == 0.08


def test_a_data_based_merge_without_task_pool_is_one_clear_error(run_layout):  # noqa: F811
    root = run_layout[0]
    argv = [a for a in run_pool_args(root, "method=fisher_merging/clip_fisher_merging", "taskpool=null") if not a.startswith("taskpool.")]
    before = set((root / "results").glob("**/*"))
    with pytest.raises(UserError, match=r"^FisherMergingForCLIPVisionModel reads each task's inputs from the task pool: give a taskpool \(e.g. taskpool=embedded/all\); its train split is used$"):
        merge_main(argv)
    assert set((root / "results").glob("**/*")) == before  # refused before anything is written


def test_a_model_without_its_tasks_inputs_is_refused_before_any_statistics():
    models, data = mlp_world()
    merge = mlp_data({t: x for t, x in data.items() if t != TASKS[1]})
    with pytest.raises(UserError, match=rf"no inputs for model\(s\) {TASKS[1]}: the task pool has"):
        RegMeanAlgorithmForCLIP().run(models, merge_data=merge)
    assert all(len(list(t.batches)) == 3 for t in merge.tasks.values())  # nothing was read
