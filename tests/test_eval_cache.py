"""The linearity shortcut: cached evaluation equals direct evaluation (logits within 1e-4)."""

import json

import pytest
import torch
from toyworld import isolated_toy_world

from task_arithmetic.evaluation.addition import evaluate_addition
from task_arithmetic.evaluation.edits import Edit
from task_arithmetic.evaluation.negation import evaluate_negation
from task_arithmetic.evaluation.session import EvalOptions, EvalSession, RunSelection
from task_arithmetic.evaluation.single_task import evaluate_single_task
from task_arithmetic.evaluation.tangent_cache import Direction, FeatureCache, TangentComputer
from task_arithmetic.evaluation.tau_jp import evaluate_tau_jp
from task_arithmetic.io import metadata_path
from task_arithmetic.models.linearize import functorch_jvp
from task_arithmetic.recipes import EvaluatedRun
from task_arithmetic.vectors import TaskVector


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with isolated_toy_world(tmp_path_factory.mktemp("toy"), n_val=16, n_test=16) as toy:
        yield toy


def session(world, mode, use_cache, disk_cache=True):
    selection = RunSelection(world.spec, world.layout, world.data_location, EvaluatedRun.parse(mode), world.tasks)
    return EvalSession(selection, EvalOptions(device="cpu", batch_size=8, use_cache=use_cache, disk_cache=disk_cache))


EDITS = [
    Edit.zeroshot(),
    Edit.scaled(["Toy1"], 1.0),
    Edit.scaled(["Toy0", "Toy1", "Toy2"], 0.35),
    Edit.scaled(["Toy0"], -0.6),
    Edit.scaled(["Toy0", "Toy2"], 0.8),
    Edit.per_task_coefs({"Toy0": -1.5, "Toy2": 2.4}),
]


@pytest.mark.parametrize("mode", ["linear", "posthoc"])
def test_cached_logits_and_accuracies_equal_direct(world, mode):
    cached, direct = session(world, mode, True), session(world, mode, False)
    assert cached.evaluator is cached.cached and direct.evaluator is direct.direct
    compared = 0
    for edit in EDITS:
        for dataset, split in [("Toy0", "val"), ("Toy2", "test"), ("ToyControl", "val")]:
            lc, yc = cached.logits(edit, dataset, split)
            ld, yd = direct.logits(edit, dataset, split)
            assert torch.equal(yc, yd)
            assert (lc - ld).abs().max().item() < 1e-4, (edit.describe(), dataset)
            assert cached.accuracy(edit, dataset, split) == direct.accuracy(edit, dataset, split)
            compared += 1
    assert compared == len(EDITS) * 3
    # the edits really change the model (otherwise the comparison proves little)
    base = cached.logits(EDITS[0], "Toy2", "test")[0]
    assert (cached.logits(EDITS[5], "Toy2", "test")[0] - base).abs().max() > 1e-2


def test_tau_jp_entries_cached_direct_and_independent(world):
    cached, direct = session(world, "linear", True), session(world, "linear", False)
    theta0 = cached.theta0
    params0 = {k: v.detach() for k, v in theta0.visual.named_parameters()}
    images = torch.stack([x for x, _ in cached.bank.dataset("Toy1", "test")])
    for task in world.tasks:
        tau = TaskVector.from_checkpoints(pretrained=cached.theta0_path, finetuned=cached.checkpoints[task])
        with torch.no_grad():
            _, tangent = functorch_jvp(theta0.visual, params0, {k: tau.tensors[k] for k in params0}, images)
        expected = tangent.norm(dim=-1).mean().item()
        assert cached.tangent_norm_mean(task, "Toy1", "test") == pytest.approx(expected, rel=1e-4)
        assert direct.tangent_norm_mean(task, "Toy1", "test") == pytest.approx(expected, rel=1e-4)
    assert expected > 0


def test_disk_cache_is_reused_and_invalidated_per_vector(world, monkeypatch):
    first = session(world, "linear", True)
    read = [EDITS[1], EDITS[2], EDITS[4]]  # Toy1 alone, the sum of three, the pair Toy0 + Toy2
    reference = [first.logits(edit, "Toy0", "test")[0] for edit in read]

    def refuse(self, checkpoints, loader):
        raise AssertionError(f"recomputed {list(checkpoints)}")

    monkeypatch.setattr(TangentComputer, "compute", refuse)
    second = session(world, "linear", True)
    for edit, ref in zip(read, reference):
        assert torch.equal(second.logits(edit, "Toy0", "test")[0], ref)
    monkeypatch.undo()

    # a re-trained Toy1 (new metadata) invalidates only the directions that contain Toy1
    meta_file = metadata_path(first.checkpoints["Toy1"])
    original = meta_file.read_text()
    asked = []
    real_compute = TangentComputer.compute

    def record(self, checkpoints, loader):
        asked.append(sorted(checkpoints))
        return real_compute(self, checkpoints, loader)

    try:
        meta_file.write_text(json.dumps({**json.loads(original), "steps": 1}))
        monkeypatch.setattr(TangentComputer, "compute", record)
        third = session(world, "linear", True)
        for edit, ref in zip(read, reference):
            assert torch.allclose(third.logits(edit, "Toy0", "test")[0], ref, atol=1e-5)
        # Toy1's tangent on Toy0 is computed in its fixed set (the other tasks' on Toy0) and only it
        # is replaced; Toy0's own tangent and the pair's were reused
        assert asked == [["Toy1", "Toy2"], [Direction.of(["Toy0", "Toy1", "Toy2"]).name]]
    finally:
        meta_file.write_text(original)


def test_single_task_addition_and_negation_build_tangents_linear_in_t(world, monkeypatch):
    """Each task's own tangent, the sum's, and each task's on the control: never tau_j on task i's data."""
    s = session(world, "linear", True, disk_cache=False)
    built: list[tuple[str, str, str]] = []
    real_get = type(s.cached.store).get

    def record(store, dataset, split, loader_factory, size, suffix="", directions=()):
        directions = list(directions)
        before = set(store._memory.get((dataset, split, suffix), FeatureCache(None, None)).tangents)
        out = real_get(store, dataset, split, loader_factory, size, suffix, directions)
        built.extend((dataset, split, name) for name in sorted(set(out.tangents) - before))
        return out

    monkeypatch.setattr(type(s.cached.store), "get", record)
    evaluate_single_task(s)
    evaluate_addition(s)
    evaluate_negation(s, "ToyControl")
    everything = Direction.of(world.tasks).name
    per_dataset = {}
    for dataset, split, name in built:
        per_dataset.setdefault((dataset, split), set()).add(name)
    for task in world.tasks:
        for split in ("val", "test"):
            assert per_dataset[(task, split)] == {task, everything}, (task, split)
    assert per_dataset[("ToyControl", "val")] == set(world.tasks)
    assert per_dataset.get(("ToyControl", "test"), set()) <= set(world.tasks)  # only at each task's chosen alpha
    assert len(built) == len(set(built)) <= 6 * len(world.tasks)  # 2T own + 2T sums + up to 2T on the control
    # the tau-Jp matrix builds the rest (every tau_i on every dataset) only when it runs
    evaluate_tau_jp(s, [*world.tasks, "ToyControl"])
    for dataset in [*world.tasks, "ToyControl"]:
        assert set(world.tasks) <= {n for d, split, n in built if d == dataset and split == "test"}


def test_batched_tangents_equal_one_jvp_per_vector(world):
    s = session(world, "linear", True, disk_cache=False)
    loader = s.bank.loader("Toy2", "val")
    batched = TangentComputer(s.theta0.visual, s.theta0_path, s.device).compute(s.checkpoints, loader)
    looped_computer = TangentComputer(s.theta0.visual, s.theta0_path, s.device, vectors_per_pass=2)
    looped_computer._vmap_ok = False
    looped = looped_computer.compute(s.checkpoints, loader)
    assert torch.allclose(batched.features0, looped.features0, atol=1e-5)
    assert set(batched.tangents) == set(world.tasks)
    for task in world.tasks:
        assert torch.allclose(batched.tangents[task], looped.tangents[task], atol=1e-5)


def test_max_eval_samples_caps_every_split_with_a_fixed_subset(world):
    selection = RunSelection(world.spec, world.layout, world.data_location, EvaluatedRun.parse("linear"), world.tasks)
    capped = EvalSession(selection, EvalOptions(device="cpu", max_eval_samples=5))
    full = session(world, "linear", True)
    images = capped.bank.dataset("Toy0", "test")
    assert capped.bank.size("Toy0", "test") == 5 and capped.bank.size("Toy1", "val") == 5
    chosen = torch.stack([x for x, _ in images])
    all_images = torch.stack([x for x, _ in full.bank.dataset("Toy0", "test")])
    rows = [int((all_images == x).all(dim=(1, 2, 3)).nonzero()) for x in chosen]
    assert rows == sorted(rows) and rows != list(range(5))  # spread over the set, in order
    assert capped.metrics(Edit.zeroshot(), "Toy0", "test").n == 5
    logits, _ = capped.logits(Edit.zeroshot(), "Toy0", "test")
    assert torch.allclose(logits, full.logits(Edit.zeroshot(), "Toy0", "test")[0][rows], atol=1e-5)
    cache_dir = world.layout.results(world.spec.model_id, "linear", "x").parent / "tangent_cache"
    assert (cache_dir / "Toy0-test-max5" / "features0.safetensors").is_file() and (cache_dir / "Toy0-test" / "features0.safetensors").is_file()


def test_a_tangent_does_not_depend_on_which_evaluation_asked_first(world, monkeypatch):
    """Two sessions ask for the same tangents in opposite orders (as the study's evaluations do in
    another executor's order). Which directions share a batched JVP moves the last bits of float32
    tangents, so each tangent must be computed in the same company either way; and the numbers agree
    bit for bit."""
    tasks = list(world.tasks)
    company: dict[tuple[float, str], tuple[str, ...]] = {}
    real_compute = TangentComputer.compute

    def record(self, vectors, loader):
        data = float(next(iter(loader))[0].double().sum())  # which dataset: its first batch
        for name in vectors:
            company.setdefault((data, name), tuple(vectors))
            assert company[(data, name)] == tuple(vectors), f"{name} computed with {tuple(vectors)}, before with {company[(data, name)]}"
        return real_compute(self, vectors, loader)

    monkeypatch.setattr(TangentComputer, "compute", record)
    first, second = session(world, "linear", True, disk_cache=False), session(world, "linear", True, disk_cache=False)
    together = Edit.scaled(tasks, 0.5)
    logits_first = {d: first.logits(Edit.scaled([d], 1.0), d, "test")[0] for d in tasks}  # own tangents first
    entries_first = {(t, d): first.tangent_norm_mean(t, d, "test") for d in tasks for t in tasks}
    logits_first |= {(d, "sum"): first.logits(together, d, "test")[0] for d in tasks}
    logits_second = {(d, "sum"): second.logits(together, d, "test")[0] for d in reversed(tasks)}  # the sum first
    entries_second = {(t, d): second.tangent_norm_mean(t, d, "test") for d in reversed(tasks) for t in reversed(tasks)}
    logits_second |= {d: second.logits(Edit.scaled([d], 1.0), d, "test")[0] for d in tasks}
    assert entries_first == entries_second
    assert logits_first.keys() == logits_second.keys() and all(torch.equal(logits_first[k], logits_second[k]) for k in logits_first)
