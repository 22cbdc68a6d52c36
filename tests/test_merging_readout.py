"""The forward AdaMerging differentiates is the forward the merging evaluation runs, for every
recipe of the registry: one readout predicate decides both (it once decided them apart, and
attention-only and TaLoS merges were learned linearised but evaluated non-linearly)."""

import pytest
import torch

from task_arithmetic.data import registry
from task_arithmetic.evaluation.session import EvalOptions, EvalSession, RunSelection
from task_arithmetic.recipes import RECIPES, Readout


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from toyruns import build_toy_world

    runs = sorted({r.run.name for r in RECIPES.values()})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "_BENCHMARK_LOADERS", {})
        mp.setattr(registry, "_TASKS", dict(registry._TASKS))
        yield build_toy_world(tmp_path_factory.mktemp("readout"), n_tasks=2, n_val=4, n_test=4, recipes=runs)


@pytest.mark.parametrize("name", list(RECIPES))
def test_adamerging_learns_through_the_forward_the_evaluation_runs(world, name):
    recipe = RECIPES[name]
    session = EvalSession(RunSelection(world.spec, world.layout, world.data_location, recipe.evaluated, world.tasks),
                          EvalOptions(device="cpu", use_cache=False))
    pool = session.model_pool()
    assert pool.linearized == (recipe.readout is Readout.LINEARIZED)
    model = pool.load_pretrained_model()
    theta0 = {k: v.detach() for k, v in model.named_parameters()}
    tuned = [pool.load_state(t) for t in world.tasks]
    merged = {k: v + 0.4 * sum(state[k] - v for state in tuned) for k, v in theta0.items()}
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        learned_through = pool.functional_model(model)(merged)(images)  # what AdaMerging differentiates
        evaluated = session.direct.embed_weights({k.removeprefix("visual."): v for k, v in merged.items()})(images)
    torch.testing.assert_close(learned_through, evaluated, rtol=1e-5, atol=1e-5)
    # and the readout matters here: the other one gives another output
    with torch.no_grad():
        plain = torch.func.functional_call(model, merged, (images,))
    assert ((learned_through - plain).abs().max() > 1e-4) == pool.linearized
