"""Addition, negation, pairs, single-task and disentanglement against independent computations."""

import itertools

import pytest
import torch
from toyworld import isolated_toy_world

from task_arithmetic.evaluation.addition import evaluate_addition
from task_arithmetic.evaluation.disentanglement import evaluate_disentanglement
from task_arithmetic.evaluation.negation import evaluate_negation
from task_arithmetic.evaluation.pairs import evaluate_pairs
from task_arithmetic.evaluation.selection import ALPHA_GRID, best_index, symmetric_grid
from task_arithmetic.evaluation.session import EvalOptions, EvalSession, RunSelection
from task_arithmetic.evaluation.single_task import evaluate_single_task
from task_arithmetic.models.pretrained import task_head
from task_arithmetic.recipes import EvaluatedRun
from task_arithmetic.typed_json import dump
from task_arithmetic.vectors import TaskVector, combine


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with isolated_toy_world(tmp_path_factory.mktemp("toy"), n_val=16, n_test=16) as toy:
        yield toy


def session(world, mode="standard", use_cache=True):
    selection = RunSelection(world.spec, world.layout, world.data_location, EvaluatedRun.parse(mode), world.tasks)
    return EvalSession(selection, EvalOptions(device="cpu", batch_size=16, use_cache=use_cache, disk_cache=False))


class Reference:
    """Independent evaluation: TaskVector.apply_to / apply_linearized, plain forward, head."""

    def __init__(self, world, s: EvalSession, linear: bool):
        self.world, self.theta0, self.linear = world, s.theta0, linear
        self.vectors = {t: TaskVector.from_checkpoints(pretrained=s.theta0_path, finetuned=p) for t, p in s.checkpoints.items()}
        self.data = {
            (t, split): next(iter(torch.utils.data.DataLoader(s.bank.dataset(t, split), batch_size=10_000)))
            for t in [*world.tasks, world.control] for split in ("val", "test")
        }

    @torch.no_grad()
    def predictions(self, coefs: dict, dataset: str, split: str) -> torch.Tensor:
        coefs = {t: c for t, c in coefs.items() if c != 0}
        images, _ = self.data[(dataset, split)]
        if coefs:
            tau = combine([self.vectors[t] for t in coefs], list(coefs.values()))
            model = tau.apply_linearized(self.theta0) if self.linear else tau.apply_to(self.theta0)
        else:
            model = self.theta0
        head = task_head(self.world.spec, dataset, self.world.layout, self.world.data_location)
        return head(model(images)).argmax(dim=-1)

    def accuracy(self, coefs: dict, dataset: str, split: str) -> float:
        labels = self.data[(dataset, split)][1]
        return (self.predictions(coefs, dataset, split) == labels).float().mean().item()


def test_best_index_rule():
    alphas = [0.0, 0.5, 1.0, 1.5]
    assert best_index(alphas, [0.2, 0.9, 0.9, 0.1], maximize=True) == 1  # tie -> smaller alpha
    assert best_index(alphas, [0.5, 0.3, 0.3, 0.1], maximize=False, admissible=[True, True, True, False]) == 1
    assert best_index(alphas, [0.5, 0.3, 0.3, 0.1], maximize=False, admissible=[False] * 4) is None
    assert best_index([1.0, 0.0], [0.7, 0.7], maximize=True) == 1  # ties keep the smallest alpha, not the first
    assert ALPHA_GRID[0] == 0.0 and ALPHA_GRID[-1] == 1.0 and len(ALPHA_GRID) == 21
    assert symmetric_grid(3.0, 5) == (-3.0, -1.5, 0.0, 1.5, 3.0)


def test_single_task_and_addition_match_independent_models(world):
    s = session(world, "standard")
    ref = Reference(world, s, linear=False)
    single = dump(evaluate_single_task(s))
    for t in world.tasks:
        for split in ("val", "test"):
            assert single["zeroshot"][t][split]["accuracy"] == pytest.approx(ref.accuracy({}, t, split))
            assert single["finetuned"][t][split]["accuracy"] == pytest.approx(ref.accuracy({t: 1.0}, t, split))
    size = torch.sqrt(sum((v.double() ** 2).sum() for v in s.theta0.visual.state_dict().values() if v.is_floating_point()))
    for t in world.tasks:  # ||tau|| / ||theta_0|| over the encoder's floating-point weights
        assert single["relative_norm"][t] == pytest.approx(ref.vectors[t].norm() / float(size), rel=1e-6)
        assert single["relative_norm"][t] > 0
    result = dump(evaluate_addition(s))
    ft_val = {t: ref.accuracy({t: 1.0}, t, "val") for t in world.tasks}
    scores = []
    for point in result["val_curve"]:
        accs = {t: ref.accuracy({u: point["alpha"] for u in world.tasks}, t, "val") for t in world.tasks}
        assert point["per_task"] == pytest.approx(accs)
        scores.append(sum(accs[t] / ft_val[t] for t in world.tasks) / len(world.tasks))
    expected = max(range(len(scores)), key=lambda i: (scores[i], -i))  # best, smallest alpha on ties
    assert result["chosen_alpha"] == ALPHA_GRID[expected]
    ft_test = {t: ref.accuracy({t: 1.0}, t, "test") for t in world.tasks}
    for block, alpha in ((result["tuned"], result["chosen_alpha"]), (result["one_shot"], 1.0)):
        accs = {t: ref.accuracy({u: alpha for u in world.tasks}, t, "test") for t in world.tasks}
        assert block["test"]["per_task"] == pytest.approx(accs)
        assert block["test"]["avg_normalized"] == pytest.approx(sum(accs[t] / ft_test[t] for t in world.tasks) / 3)
    # the toy world is built so that adding vectors interferes: alpha matters
    assert len({round(p["avg_normalized"], 6) for p in result["val_curve"]}) > 3


def test_standard_sweep_sums_each_vector_group_once(world, monkeypatch):
    """No reload from disk per alpha: one sum for all tasks, one per single-task model."""
    import task_arithmetic.evaluation.direct as direct

    calls = []
    real = direct.sum_checkpoints
    monkeypatch.setattr(direct, "sum_checkpoints", lambda paths, *a, **k: calls.append(len(paths)) or real(paths, *a, **k))
    result = dump(evaluate_addition(session(world, "standard")))
    assert len(result["val_curve"]) == 21
    assert sorted(calls) == [1, 1, 1, 3]


def test_negation_rule_and_test_numbers_linear(world):
    s = session(world, "linear")
    ref = Reference(world, s, linear=True)
    # a loose control constraint so that it binds at some alpha > 0 in this small noisy world
    result = dump(evaluate_negation(s, world.control, ratio=0.7))
    zs_control = ref.accuracy({}, world.control, "val")
    assert result["zeroshot_control"]["val"] == pytest.approx(zs_control)
    for target, r in result["targets"].items():
        curve = r["curve"]
        for point in curve[::5]:
            assert point["target_val"] == pytest.approx(ref.accuracy({target: -point["alpha"]}, target, "val"))
            assert point["control_val"] == pytest.approx(ref.accuracy({target: -point["alpha"]}, world.control, "val"))
        admissible = [p for p in curve if p["control_val"] >= 0.7 * zs_control]
        assert [p["admissible"] for p in curve] == [p in admissible for p in curve]
        best = min(p["target_val"] for p in admissible)
        assert r["chosen_alpha"] == min(p["alpha"] for p in admissible if p["target_val"] == best)
        a = r["chosen_alpha"]
        assert r["test"]["target"] == pytest.approx(ref.accuracy({target: -a}, target, "test"))
        assert r["test"]["control"] == pytest.approx(ref.accuracy({target: -a}, world.control, "test"))
    assert any(r["chosen_alpha"] > 0 for r in result["targets"].values())
    assert any(not p["admissible"] for r in result["targets"].values() for p in r["curve"])


def test_negation_without_admissible_alpha_is_reported(world):
    s = session(world, "linear")
    # control labels are theta_0's predictions (100 % zero-shot), so a floor above 100 % admits no alpha
    result = dump(evaluate_negation(s, world.control, alphas=[0.5, 1.0], ratio=1.01))
    assert result["zeroshot_control"]["val"] == 1.0
    statuses = {t: r["status"] for t, r in result["targets"].items()}
    assert set(statuses.values()) == {"no_admissible_alpha"}
    for r in result["targets"].values():
        assert r["chosen_alpha"] is None and r["test"] is None and "no alpha" in r["message"]
    assert result["average"]["target_test"] is None
    assert result["average"]["targets_without_admissible_alpha"] == list(world.tasks)


def test_pairs_cover_every_pair_and_match_reference(world):
    s = session(world, "posthoc")
    result = dump(evaluate_pairs(s, alphas=[0.0, 0.5, 1.0]))
    assert sorted(result["pairs"]) == sorted(f"{a}+{b}" for a, b in itertools.combinations(world.tasks, 2))
    ref = Reference(world, s, linear=True)
    pair = result["pairs"]["Toy0+Toy2"]
    for point in pair["val_curve"]:
        for t in ("Toy0", "Toy2"):
            assert point["per_task"][t] == pytest.approx(ref.accuracy({"Toy0": point["alpha"], "Toy2": point["alpha"]}, t, "val"))
    assert pair["one_shot"]["test"]["per_task"]["Toy2"] == pytest.approx(ref.accuracy({"Toy0": 1.0, "Toy2": 1.0}, "Toy2", "test"))


def test_disentanglement_matches_definition(world):
    s = session(world, "standard")
    alphas = symmetric_grid(2.0, 3)
    result = dump(evaluate_disentanglement(s, [("Toy1", "Toy2")], alphas, split="test"))
    xi = result["pairs"]["Toy1+Toy2"]["xi"]
    assert xi[1][1] == 0.0  # alpha = (0, 0): both edits are theta_0
    ref = Reference(world, s, linear=False)
    for i, j in [(0, 2), (2, 0), (2, 2)]:
        a1, a2 = alphas[i], alphas[j]
        joint1 = ref.predictions({"Toy1": a1, "Toy2": a2}, "Toy1", "test")
        joint2 = ref.predictions({"Toy1": a1, "Toy2": a2}, "Toy2", "test")
        d1 = (joint1 != ref.predictions({"Toy1": a1}, "Toy1", "test")).float().mean().item()
        d2 = (joint2 != ref.predictions({"Toy2": a2}, "Toy2", "test")).float().mean().item()
        assert xi[i][j] == pytest.approx(d1 + d2)
    assert max(max(row) for row in xi) > 0
