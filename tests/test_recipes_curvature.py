"""The 2025-2026 recipes (TAK, diagonal GGN, OrthoReg) against independent computations, and
through src/finetune.py as a user runs them."""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from test_training_support import REPO, register_tasks, subprocess_env

from task_arithmetic.models.factory import ModelSpec
from task_arithmetic.models.pretrained import zeroshot_encoder
from task_arithmetic.paths import Layout
from task_arithmetic.recipes import tak
from task_arithmetic.recipes.diag_ggn import task_diagonal
from task_arithmetic.recipes.orthoreg import orthogonality

register_tasks()


@pytest.fixture(scope="module")
def theta0(tmp_path_factory):
    torch.manual_seed(0)
    visual = zeroshot_encoder(ModelSpec("TinyCLIP"), Layout(tmp_path_factory.mktemp("ck"))).visual.double()
    return visual.requires_grad_(False).eval()


def images(n: int) -> torch.utils.data.TensorDataset:
    x = torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    return torch.utils.data.TensorDataset(x, torch.zeros(n, dtype=torch.long))


def probe_noise(n: int, dim: int) -> torch.Tensor:
    """The Monte-Carlo probes tak.probe_batches draws for one batch of n inputs."""
    return torch.randn((n, dim), generator=torch.Generator().manual_seed(tak.FACTOR_SEED + 1))


def per_example_grads(theta0, x: torch.Tensor, eps: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Independent: autograd of eps_n^T normalize(f(x_n)) for each example alone."""
    params = dict(theta0.named_parameters())
    out = []
    for n in range(x.shape[0]):
        with torch.enable_grad():
            for p in params.values():
                p.requires_grad_(True)
            value = (F.normalize(theta0(x[n : n + 1]), dim=-1)[0] * eps[n].to(x)).sum()
            grads = torch.autograd.grad(value, list(params.values()))
            for p in params.values():
                p.requires_grad_(False)
        out.append(dict(zip(params, grads)))
    return out


def test_the_probes_reconstruct_every_gradient(theta0):
    """Per site, sum over tokens of g a^T is the weight gradient (bias: the ones column); LayerNorm
    and class-token gradients come out of the hooks as autograd gives them."""
    data = images(3)
    [probe] = list(tak.probe_batches(theta0, data, 3, torch.device("cpu")))
    eps = probe_noise(3, theta0.output_dim)
    expected = per_example_grads(theta0, probe.images, eps)
    params = dict(theta0.named_parameters())
    for site in tak.linear_sites(theta0):
        bias = site.bias is not None
        grad = torch.einsum("nto,nti->noi", probe.grads[site.key], tak.with_ones(probe.inputs[site.key], bias))
        weight = grad[..., :-1] if bias else grad
        for n in range(3):
            torch.testing.assert_close(weight[n].T if site.key == "proj" else weight[n], expected[n][site.key], rtol=1e-6, atol=1e-9)
            if bias:
                torch.testing.assert_close(grad[n, :, -1], expected[n][site.bias], rtol=1e-6, atol=1e-9)
    for key, grad in tak.norm_grads(probe).items():
        if key in params:
            for n in range(3):
                scale = float(expected[n][key].abs().max())  # the norm hooks work in float32
                torch.testing.assert_close(grad[n].double(), expected[n][key], rtol=1e-4, atol=1e-6 * scale)
    assert {s.key for s in tak.linear_sites(theta0)} >= {"proj", "transformer.resblocks.0.attn.in_proj_weight", "transformer.resblocks.0.mlp.c_fc.weight"}


def test_kfac_penalty_is_the_kronecker_quadratic_form():
    g = torch.Generator().manual_seed(0)
    delta, a, b = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(3, 3, generator=g, dtype=torch.float64), torch.randn(4, 4, generator=g, dtype=torch.float64)
    a, b = a @ a.T, b @ b.T  # covariances
    vec = delta.reshape(-1)  # row-major: B kron A
    assert float(tak.quadratic(delta, a, b)) == pytest.approx(float(vec @ torch.kron(b, a) @ vec), rel=1e-12)


def test_merged_factors_weight_a_by_data_size_and_sum_b():
    f1 = {"A.w": torch.eye(2), "B.w": torch.eye(3), "F.n": torch.eye(2)}
    f2 = {"A.w": 3 * torch.eye(2), "B.w": 2 * torch.eye(3), "F.n": 5 * torch.eye(2)}
    merged = tak.merge([f1, f2], [0.25, 0.75])
    assert torch.equal(merged["A.w"], 2.5 * torch.eye(2)) and torch.equal(merged["B.w"], 3 * torch.eye(3)) and torch.equal(merged["F.n"], 4 * torch.eye(2))


def test_factors_equal_their_definition(theta0):
    data = images(4)
    factors = tak.task_factors(theta0, data, 4, torch.device("cpu"))
    [probe] = list(tak.probe_batches(theta0, data, 4, torch.device("cpu")))
    key = "transformer.resblocks.1.mlp.c_fc.weight"
    a = tak.with_ones(probe.inputs[key], True)  # [N, T, in + 1]
    tokens = a.shape[1]
    expected_a = sum(a[n].T @ a[n] for n in range(4)) / tokens / 4
    torch.testing.assert_close(factors[f"A.{key}"], expected_a.float(), rtol=1e-5, atol=1e-7)
    g = probe.grads[key]
    torch.testing.assert_close(factors[f"B.{key}"], (sum(g[n].T @ g[n] for n in range(4)) / tokens / 4).float(), rtol=1e-5, atol=1e-10)
    expected = per_example_grads(theta0, probe.images, probe_noise(4, theta0.output_dim))
    full = sum(torch.outer(e["class_embedding"], e["class_embedding"]) for e in expected) / 4
    torch.testing.assert_close(factors["F.class_embedding"], full.float(), rtol=1e-4, atol=1e-6 * float(full.abs().max()))


def test_the_diagonal_is_the_mean_squared_per_example_gradient(theta0):
    data = images(3)
    diagonal = task_diagonal(theta0, data, 3, torch.device("cpu"))
    [probe] = list(tak.probe_batches(theta0, data, 3, torch.device("cpu")))
    expected = per_example_grads(theta0, probe.images, probe_noise(3, theta0.output_dim))
    assert set(diagonal) == set(dict(theta0.named_parameters()))  # every parameter, patch and positional embeddings included
    for key, value in diagonal.items():
        mean_square = sum(e[key] ** 2 for e in expected) / 3
        torch.testing.assert_close(value, mean_square.float(), rtol=2e-4, atol=1e-12, msg=key)


def test_orthogonality_terms():
    g = torch.Generator().manual_seed(0)
    tall = torch.randn(5, 3, generator=g, dtype=torch.float64)
    code = orthogonality(tall, "code")
    assert float(code) == pytest.approx(float(torch.linalg.matrix_norm(tall.T @ tall - torch.eye(3, dtype=torch.float64))), rel=1e-12)
    wide = tall.T  # the smaller Gram, whichever side
    assert float(orthogonality(wide, "code")) == pytest.approx(float(code), rel=1e-12)
    printed = float(((wide.T @ wide - torch.eye(5, dtype=torch.float64)) ** 2).sum())  # as printed: ||dW^T dW - I_cols||_F^2
    assert float(orthogonality(wide, "paper")) == pytest.approx(printed, rel=1e-10)


@pytest.mark.parametrize("flags, run, metric", [
    (["--reg", "tak"], "linear-tak", "curvature"),
    (["--reg", "tak", "--variant", "per_task"], "linear-tak_per_task", "curvature"),
    (["--reg", "diag_ggn"], "linear-diag_ggn", "curvature"),
    (["--reg", "orthoreg", "--mode", "attn_only"], "attn_only-orthoreg", "orthogonality"),
])
def test_each_recipe_runs_as_the_user_runs_it(tmp_path, flags, run, metric):
    import json

    cmd = [sys.executable, "src/finetune.py", "--task", "TrainToyA", "--model", "TinyCLIP", "--pretrained", "none", "--device", "cpu",
           "--max-steps", "2", "--batch-size", "8", "--no-progress", "--checkpoint-root", str(tmp_path / "ck"),
           "--data-location", str(tmp_path / "data"), *flags]
    done = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "ck" / "TinyCLIP-random" / "TrainToyA" / run
    log = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(record[metric] > 0 and record["penalty"] > 0 for record in log[1:])
    assert json.loads((folder / "finetuned.json").read_text())["run"] == run
