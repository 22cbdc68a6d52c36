import copy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from task_arithmetic.errors import UserError
from task_arithmetic.io import save_weights
from task_arithmetic.models.encoder import build_encoder, load_encoder
from task_arithmetic.models.factory import ModelSpec
from task_arithmetic.models.linearize import functorch_jvp
from task_arithmetic.vectors import TaskVector, combine, stack_checkpoints, sum_checkpoints

TINY = ModelSpec("TinyCLIP")


@pytest.fixture(scope="module")
def encoders():
    torch.manual_seed(0)
    base = build_encoder(TINY)
    tuned = []
    for i in range(3):
        enc = copy.deepcopy(base)
        g = torch.Generator().manual_seed(10 + i)
        with torch.no_grad():
            for p in enc.visual.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=g))
        tuned.append(enc)
    return base, tuned


def flat(vector: TaskVector) -> torch.Tensor:
    return torch.cat([vector.tensors[k].flatten().double() for k in sorted(vector.tensors)])


def flat_diff(a, b) -> torch.Tensor:
    wa, wb = a.weights(), b.weights()
    return torch.cat([(wa[k].double() - wb[k].double()).flatten() for k in sorted(wa)])


def test_vector_is_weight_difference_and_arithmetic_matches_flat_algebra(encoders):
    base, tuned = encoders
    t1, t2, t3 = (TaskVector.from_encoders(base, t) for t in tuned)
    d1, d2, d3 = (flat_diff(t, base) for t in tuned)
    assert torch.allclose(flat(t1), d1, atol=1e-7)
    assert torch.allclose(flat(t1 + t2), d1 + d2, atol=1e-6)
    assert torch.allclose(flat(t1 - t2), d1 - d2, atol=1e-6)
    assert torch.allclose(flat(-t3), -d3, atol=1e-7)
    assert torch.allclose(flat(0.3 * t1), 0.3 * d1, atol=1e-7)
    assert torch.allclose(flat(t1 * 0.3), 0.3 * d1, atol=1e-7)
    assert torch.allclose(flat(sum([t1, t2, t3])), d1 + d2 + d3, atol=1e-6)
    assert torch.allclose(flat(combine([t1, t2], [0.5, -2.0])), 0.5 * d1 - 2.0 * d2, atol=1e-6)
    assert t1.norm() == pytest.approx(d1.norm().item(), rel=1e-6)
    cos = torch.nn.functional.cosine_similarity(d1, d2, dim=0).item()
    assert t1.cosine_similarity(t2) == pytest.approx(cos, abs=1e-6)
    assert t1.cosine_similarity(t1) == pytest.approx(1.0, abs=1e-9)
    # operands untouched
    assert torch.allclose(flat(t1), d1, atol=1e-7)
    with pytest.raises(TypeError):
        t1 * t2  # noqa: B018


def test_apply_to_returns_new_model_and_leaves_inputs(encoders):
    base, tuned = encoders
    tau = TaskVector.from_encoders(base, tuned[0])
    before = {k: v.clone() for k, v in base.weights().items()}
    tau_before = {k: v.clone() for k, v in tau.tensors.items()}
    edited = tau.apply_to(base, 0.5)
    assert edited is not base and edited.visual is not base.visual
    for k, v in base.weights().items():
        assert torch.equal(v, before[k]), k
        assert torch.allclose(edited.weights()[k], before[k] + 0.5 * tau_before[k], atol=1e-7), k
    for k, v in tau.tensors.items():
        assert torch.equal(v, tau_before[k])
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        full = tau.apply_to(base, 1.0)(x)
        assert torch.allclose(full, tuned[0](x), atol=1e-4)
        assert not torch.allclose(edited(x), base(x), atol=1e-4)


def test_apply_linearized_is_first_order_expansion(encoders):
    base, tuned = encoders
    tau = TaskVector.from_encoders(base, tuned[1])
    model = tau.apply_linearized(base, 0.7)
    x = torch.randn(3, 3, 32, 32)
    params0 = {k: v.detach() for k, v in base.visual.named_parameters()}
    delta = {k: 0.7 * tau.tensors[k] for k in params0}
    with torch.no_grad():
        out0, tangent = functorch_jvp(base.visual, params0, delta, x)
        assert torch.allclose(model(x), out0 + tangent, atol=1e-5)
    assert all(torch.equal(base.weights()[k], v) for k, v in model.frozen.state_dict().items())
    frozen_base = copy.deepcopy(base).requires_grad_(False)  # an inference-only source still edits
    with torch.no_grad():
        assert torch.allclose(tau.apply_linearized(frozen_base, 0.7)(x), out0 + tangent, atol=1e-5)


def test_mismatches_are_user_errors(encoders, tmp_path):
    base, tuned = encoders
    tau = TaskVector.from_encoders(base, tuned[0])
    missing = TaskVector({k: v for k, v in list(tau.tensors.items())[1:]}, tau.metadata)
    with pytest.raises(UserError, match="different weight keys"):
        tau + missing  # noqa: B018
    reshaped = TaskVector({**tau.tensors, "proj": torch.zeros(3, 3)}, tau.metadata)
    with pytest.raises(UserError, match="shape of proj"):
        tau - reshaped  # noqa: B018
    other_arch = TaskVector(tau.tensors, {"model_name": "ViT-B-32"})
    with pytest.raises(UserError, match="same architecture|one architecture"):
        tau + other_arch  # noqa: B018
    with pytest.raises(UserError, match="one architecture"):
        other_arch.apply_to(base)
    # checkpoints of another architecture
    base_path = base.save(tmp_path / "theta0.safetensors")
    save_weights(tmp_path / "odd.safetensors", {"w": torch.zeros(2)}, {"model_name": "TinyCLIP", "format": "image_encoder"})
    with pytest.raises(UserError, match="different weight keys"):
        TaskVector.from_checkpoints(base_path, tmp_path / "odd.safetensors")
    with pytest.raises(UserError, match="different weight keys"):
        sum_checkpoints([tmp_path / "odd.safetensors"], base_path)


def test_checkpoint_vectors_and_streaming_sum_match_in_memory(encoders, tmp_path):
    base, tuned = encoders
    base_path = base.save(tmp_path / "theta0.safetensors")
    paths = [t.save(tmp_path / f"ft{i}.safetensors", {"mode": "linear", "task": f"T{i}"}) for i, t in enumerate(tuned)]
    vectors = [TaskVector.from_checkpoints(base_path, p) for p in paths]
    assert vectors[0].metadata["task"] == "T0" and vectors[0].model_name == "TinyCLIP"
    for v, t in zip(vectors, tuned):
        assert torch.allclose(flat(v), flat_diff(t, base), atol=1e-7)
    coefs = [0.2, -1.0, 0.5]
    streamed = sum_checkpoints(paths, base_path, coefs)
    assert torch.allclose(flat(streamed), flat(combine(vectors, coefs)), atol=1e-6)
    # the order of task_vectors' TaskVector(pretrained, finetuned), by keyword too; a swapped pair is refused
    by_keyword = TaskVector.from_checkpoints(finetuned=paths[0], pretrained=base_path)
    assert torch.equal(flat(by_keyword), flat(vectors[0]))
    with pytest.raises(UserError, match="look swapped"):
        TaskVector.from_checkpoints(paths[0], base_path)
    with pytest.raises(UserError, match="look swapped"):
        TaskVector.from_encoders(load_encoder(paths[0]), base)
    with pytest.raises(UserError, match="look swapped"):
        TaskVector.from_checkpoints(paths[0], base.weights())  # the earlier (finetuned, pretrained) order with theta_0 in memory
    with pytest.raises(UserError, match="look swapped"):
        sum_checkpoints([base_path], paths[0])
    with pytest.raises(UserError, match="from_checkpoints"):
        TaskVector(base_path, paths[0])  # type: ignore[arg-type]  # task_vectors' constructor call
    with pytest.raises(TypeError):
        TaskVector.from_weights(base.weights(), tuned[0].weights())  # type: ignore[misc]  # keywords only
    keys = sorted(vectors[0].tensors)[:4]
    stacked = stack_checkpoints(paths, base_path, keys)
    for k in keys:
        assert torch.allclose(stacked[k], torch.stack([v.tensors[k] for v in vectors]), atol=1e-7)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads peak RSS from /proc")
def test_streaming_sum_memory_does_not_grow_with_vector_count(tmp_path):
    """Sum of 10 x 16 MB checkpoints: peak RSS must stay far below the 160 MB of loading them all."""
    numel = 4 * 1024 * 1024  # 16 MB of float32 per file
    torch.manual_seed(0)
    base = {"a": torch.zeros(numel // 2), "b": torch.zeros(numel // 2)}
    save_file(base, str(tmp_path / "base.safetensors"))  # plain writes: no fsync needed for a scratch test
    for i in range(10):
        save_file({"a": torch.full((numel // 2,), float(i)), "b": torch.ones(numel // 2)}, str(tmp_path / f"ft{i}.safetensors"))
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from task_arithmetic.vectors.streaming import sum_checkpoints

        def status(field):
            for line in open("/proc/self/status"):
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
        root = Path({str(tmp_path)!r})
        with open("/proc/self/clear_refs", "w") as f:  # reset the peak-RSS mark (VmHWM) to now
            f.write("5")
        before = status("VmRSS")
        total = sum_checkpoints([root / f"ft{{i}}.safetensors" for i in range(10)], root / "base.safetensors")
        assert total.tensors["a"][0].item() == 45.0 and total.tensors["b"][-1].item() == 10.0
        print(status("VmHWM") - before)
        """
    )
    # A fixed malloc mmap threshold returns freed blocks to the OS at once, so the peak measures
    # live memory rather than glibc's cache of freed blocks.
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "PATH": "/usr/bin:/bin", "MALLOC_MMAP_THRESHOLD_": "1048576"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=str(tmp_path), timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    growth_mb = float(out.stdout.strip().splitlines()[-1])
    # theta_0 + result + one mapped file + temporaries ~ 64 MB; holding all ten would need >= 160 MB
    assert growth_mb < 100, growth_mb
