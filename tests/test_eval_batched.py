"""Batched standard-mode evaluation against the per-edit path: identical accuracies, fewer passes."""

import contextlib
import json

import pytest
import torch
from torch.func import functional_call
from toyruns import build_toy_world
from toyworld import isolated_toy_world

from task_arithmetic.data import registry
from task_arithmetic.evaluation.addition import evaluate_addition
from task_arithmetic.evaluation.batched import BatchedEvaluator, EditRequest
from task_arithmetic.evaluation.direct import DirectEvaluator
from task_arithmetic.evaluation.disentanglement import evaluate_disentanglement
from task_arithmetic.evaluation.edits import Edit
from task_arithmetic.evaluation.negation import evaluate_negation
from task_arithmetic.evaluation.pairs import evaluate_pairs
from task_arithmetic.evaluation.selection import symmetric_grid
from task_arithmetic.evaluation.session import EvalOptions, EvalSession, RunSelection
from task_arithmetic.evaluation.single_task import evaluate_single_task
from task_arithmetic.evaluation.stacked_vit import StackedWeights, stacked_forward
from task_arithmetic.models.factory import ModelSpec, create_clip
from task_arithmetic.recipes import EvaluatedRun
from task_arithmetic.typed_json import dump

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with isolated_toy_world(tmp_path_factory.mktemp("toy"), n_val=16, n_test=16) as toy:
        yield toy


def session(world, batched: bool, **options) -> EvalSession:
    selection = RunSelection(world.spec, world.layout, world.data_location, EvaluatedRun.parse("standard"), world.tasks)
    return EvalSession(selection, EvalOptions(device="cpu", batch_size=8, disk_cache=False, batched=batched, **options))


def differences(a, b, path=""):
    """Paths where two result trees differ: every number exactly, except losses (float sums) to 1e-5."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        return [d for k in a for d in differences(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, list):
        assert len(a) == len(b), path
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    if path.endswith("loss"):
        return [] if a == pytest.approx(b, rel=1e-5, abs=1e-6) else [f"{path}: {a} vs {b}"]
    return [] if a == b else [f"{path}: {a} vs {b}"]


def standard_suite(s: EvalSession, world) -> dict:
    return json.loads(json.dumps({
        "single_task": dump(evaluate_single_task(s)),
        "addition": dump(evaluate_addition(s, ALPHAS)),
        "negation": dump(evaluate_negation(s, world.control, ALPHAS)),
        "pairs": dump(evaluate_pairs(s, ALPHAS)),
        "disentanglement": dump(evaluate_disentanglement(s, [world.tasks[:2]], symmetric_grid(2.0, 5))),
    }))


def test_whole_standard_suite_equals_per_edit_with_fewer_passes(world, monkeypatch):
    calls = []
    original = DirectEvaluator.logits
    monkeypatch.setattr(DirectEvaluator, "logits", lambda self, *a: calls.append(a) or original(self, *a))
    per_edit = session(world, batched=False)
    expected = standard_suite(per_edit, world)
    n_calls = len(calls)
    assert per_edit.batched is None and n_calls > 0
    batched = session(world, batched=True, batch_memory_mb=64)
    got = standard_suite(batched, world)
    assert differences(expected, got) == []
    # every point came from the batched evaluator (no per-edit call), several edits per pass,
    # each distinct edit built once per group of datasets it is asked on
    assert len(calls) == n_calls
    assert batched.batched.edits_evaluated < n_calls / 2 and batched.batched.edits_per_pass(8) > 1
    # the disentanglement grid's axes are the single-task edits: exactly zero on them
    xi = got["disentanglement"]["pairs"]["Toy0+Toy1"]["per_task"]
    zero = symmetric_grid(2.0, 5).index(0.0)
    assert all(xi["Toy0"][i][zero] == 0.0 for i in range(5)) and all(xi["Toy1"][zero][j] == 0.0 for j in range(5))


def test_prefetched_points_are_evaluated_once(world):
    s = session(world, batched=True)
    edits = [Edit.scaled(world.tasks, a) for a in (0.5, 0.5, 1.0)] + [Edit.per_task_coefs({t: 1.0 for t in world.tasks})]
    s.prefetch([(e, t, "val") for e in edits for t in world.tasks])
    assert s.batched.edits_evaluated == 2  # 0.5 twice, and 1.0 as one group or per task: same weights
    s.accuracy(edits[-1], world.tasks[0], "val")
    s.predictions(edits[0], world.tasks[1], "val")
    assert s.batched.edits_evaluated == 2


def test_stacked_forward_matches_the_module_and_shares_unchanged_prefix():
    torch.manual_seed(0)
    visual = create_clip(ModelSpec("TinyCLIP"))[0].visual.eval()
    params = {k: v.detach() for k, v in visual.named_parameters()}
    images = torch.randn(3, 3, 32, 32)
    copies = [{k: v + 0.1 * i * torch.randn_like(v) for k, v in params.items()} for i in range(3)]
    prefix = ("conv1.weight", "class_embedding", "positional_embedding", "ln_pre.weight", "ln_pre.bias")
    for copy in copies:
        copy.update({k: params[k] for k in prefix})  # the edits leave the embedding unchanged
    with torch.inference_mode():
        expected = torch.stack([functional_call(visual, c, (images,)) for c in copies])
        weights = StackedWeights(3, {k: params[k] for k in prefix}, {k: torch.stack([c[k] for c in copies]) for k in params if k not in prefix})
        assert torch.allclose(stacked_forward(visual, weights, images), expected, atol=1e-5)
        every = StackedWeights(3, {}, {k: torch.stack([c[k] for c in copies]) for k in params})
        assert torch.allclose(stacked_forward(visual, every, images), expected, atol=1e-5)
        alone = StackedWeights(1, params, {})
        assert torch.allclose(stacked_forward(visual, alone, images)[0], visual(images), atol=1e-5)


def test_other_architectures_fall_back_to_one_call_per_edit(world):
    s = session(world, batched=True)
    s.theta0.visual.register_forward_hook(lambda *_: None)  # any structure the stacked forward does not reproduce
    fallback = BatchedEvaluator(s.direct)
    assert not fallback.stacked
    edits = [Edit.scaled([world.tasks[0]], 0.7), Edit.per_task_coefs({world.tasks[0]: 0.3, world.tasks[1]: -0.4})]
    out = fallback.evaluate([EditRequest(e, {(world.tasks[0], "test")}) for e in edits])
    for e in edits:
        logits, labels = out[(e.key(), world.tasks[0], "test")]
        ref_logits, ref_labels = s.direct.logits(e, world.tasks[0], "test")
        assert torch.equal(labels, ref_labels) and torch.allclose(logits, ref_logits, atol=1e-5)


def test_edits_per_pass_follows_the_memory_budget(world):
    s = session(world, batched=True)
    evaluator = s.batched
    small, large = BatchedEvaluator(s.direct, memory_mb=1), BatchedEvaluator(s.direct, memory_mb=4096)
    assert small.edits_per_pass(8) == 1
    assert large.edits_per_pass(8) >= evaluator.edits_per_pass(8) > 1
    assert large.edits_per_pass(8) >= large.edits_per_pass(128)


@contextlib.contextmanager
def vit_b32_world(folder):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "_BENCHMARK_LOADERS", {})
        mp.setattr(registry, "_TASKS", dict(registry._TASKS))
        yield build_toy_world(folder, n_tasks=2, n_val=2, n_test=2, recipes=(("standard", "none"),), model="ViT-B-32", prefix="Big")


def test_vit_b32_random_weights_batched_equals_per_edit(tmp_path):
    with vit_b32_world(tmp_path) as big:
        a, b = big.tasks
        edits = [Edit.zeroshot(), Edit.scaled([a], 1.0), Edit.scaled([a, b], 0.5), Edit.per_task_coefs({a: 0.8, b: -0.6})]
        selection = RunSelection(big.spec, big.layout, big.data_location, EvaluatedRun.parse("standard"), big.tasks)
        options = dict(device="cpu", batch_size=2, disk_cache=False, use_cache=False)
        per_edit = EvalSession(selection, EvalOptions(batched=False, **options))
        expected = {(i, d): (per_edit.accuracy(e, d, "test"), per_edit.predictions(e, d, "test")) for i, e in enumerate(edits) for d in (a, big.control)}
        del per_edit
        batched = EvalSession(selection, EvalOptions(batched=True, batch_memory_mb=1024, **options))
        batched.prefetch([(e, d, "test") for e in edits for d in (a, big.control)])
        assert batched.batched.edits_per_pass(2) >= 2 and batched.batched.edits_evaluated == len(edits)
        for (i, d), (accuracy, predictions) in expected.items():
            assert batched.accuracy(edits[i], d, "test") == accuracy
            assert torch.equal(batched.predictions(edits[i], d, "test"), predictions)
