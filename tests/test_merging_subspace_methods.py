"""TSV-M, Iso-C and Iso-CTS against independent NumPy/SciPy computations on small modules."""

import copy

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from task_arithmetic.errors import UserError
from task_arithmetic.merging import ISO_C_Merge, ISO_CTS_Merge, TaskSingularVectorMerging


def pool(n_tasks=3, seed=0):
    torch.manual_seed(seed)
    base = nn.Sequential(nn.Linear(12, 9), nn.LayerNorm(9))
    models = {"_pretrained_": base}
    for i in range(n_tasks):
        m = copy.deepcopy(base)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p))
        models[f"t{i}"] = m
    return models


def taus(models, key):
    base = models["_pretrained_"].state_dict()[key].double().numpy()
    return [m.state_dict()[key].double().numpy() - base for n, m in models.items() if n != "_pretrained_"]


def polar(a):
    return scipy.linalg.polar(a)[0]  # a = U P with U the nearest matrix with orthonormal columns


def check(merged, models, alpha, matrix_reference):
    state = merged.state_dict()
    base = models["_pretrained_"].state_dict()
    for key in state:
        t = taus(models, key)
        expected = matrix_reference(t) if t[0].ndim == 2 else np.mean(t, axis=0)
        got = state[key].double().numpy() - base[key].double().numpy()
        np.testing.assert_allclose(got, alpha * expected, atol=2e-4)


def tsv_reference(t):
    k = min(t[0].shape) // len(t)
    svds = [np.linalg.svd(x, full_matrices=False) for x in t]
    u = polar(np.concatenate([s[0][:, :k] for s in svds], axis=1))
    v = polar(np.concatenate([s[2][:k].T for s in svds], axis=1))
    return u @ np.diag(np.concatenate([s[1][:k] for s in svds])) @ v.T


def iso_c_reference(t):
    u, s, vh = np.linalg.svd(np.sum(t, axis=0), full_matrices=False)
    return s.mean() * u @ vh


def iso_cts_reference(fraction):
    def reference(t):
        r, n = min(t[0].shape), len(t)
        common = r - round((r - int(r * fraction)) / n) * n
        per = (r - common) // n
        u, s, vh = np.linalg.svd(np.sum(t, axis=0), full_matrices=False)
        uc = u[:, :common]
        lefts, values, rights = [uc], [s[:common]], [vh[:common].T]
        for x in t:
            ut, st, vt = np.linalg.svd((np.eye(uc.shape[0]) - uc @ uc.T) @ x, full_matrices=False)
            lefts.append(ut[:, :per]), values.append(st[:per]), rights.append(vt[:per].T)
        return np.concatenate(values).mean() * polar(np.concatenate(lefts, 1)) @ polar(np.concatenate(rights, 1)).T

    return reference


def test_tsv_m_matches_reference():
    models = pool()
    check(TaskSingularVectorMerging(alpha=0.8).run(models), models, 0.8, tsv_reference)


def test_iso_c_matches_reference_and_has_a_flat_spectrum():
    models = pool(seed=1)
    merged = ISO_C_Merge(scaling_factor=0.5).run(models)
    check(merged, models, 0.5, iso_c_reference)
    delta = merged.state_dict()["0.weight"] - models["_pretrained_"].state_dict()["0.weight"]
    s = torch.linalg.svdvals(delta)
    assert torch.allclose(s, s.mean().expand_as(s), rtol=1e-3)


@pytest.mark.parametrize("fraction", [0.8, 0.5, 0.0])
def test_iso_cts_matches_reference(fraction):
    models = pool(seed=2)
    check(ISO_CTS_Merge(scaling_factor=1.0, common_space_fraction=fraction).run(models), models, 1.0, iso_cts_reference(fraction))


def test_exclude_keys_take_the_mean_and_unknown_keys_are_refused():
    models = pool(seed=3)
    merged = ISO_C_Merge(1.0, exclude_keys=["0.weight"]).run(models)
    check(merged, models, 1.0, lambda t: np.mean(t, axis=0))
    with pytest.raises(UserError, match="exclude_keys"):
        TaskSingularVectorMerging(exclude_keys=["nope"]).run(models)
