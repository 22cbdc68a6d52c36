"""The GPU check's data steps: the real JPEG pipeline's images/s, and a DDP fine-tuning run that is
stopped by SIGTERM and resumed.

Fake EuroSAT and RESISC45 copies come from the tests' fakedata module in their real on-disk
layouts (the dataset tool makes their splits), at 224 px. fakedata paints each image one solid
colour, which JPEG decodes unrealistically fast, so every image is then re-saved with a random
photo-like texture (smooth colour fields plus grain, quality 90): the decode cost of a photo.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from gpu_check_report import StepRecord
from gpu_check_steps import REPO, python_env

FAKE_TASKS = ("EuroSAT", "RESISC45")


def _texture(path: Path, size: int, seed: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((size, size), Image.BICUBIC)
    pixels = np.asarray(coarse, dtype=np.int16) + rng.integers(-24, 25, (size, size, 3))
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)


def fake_data(ctx) -> Path:
    """The fake datasets (made once per check run), ready for load_dataset."""
    root = ctx.work / "data"
    if (root / ".ready").is_file():
        return root
    sys.path.insert(0, str(REPO / "tests"))
    import fakedata

    from task_arithmetic.data.real import tool

    size, per_class = ctx.sizes.image_size, ctx.sizes.per_class
    fakedata.SIZE = size  # fakedata's image size is a module constant (8 px for the tests)
    fakedata.make_eurosat_raw(root, per_class=per_class)
    fakedata.make_resisc45_raw(root, per_class=max(10, per_class // 4))
    for i, path in enumerate(sorted(root.rglob("*.jpg"))):
        _texture(path, size, i)
    tool.split(root)
    (root / ".ready").write_text("")
    return root


# --- 6. data loading ------------------------------------------------------------------------


def _loader_rate(ctx, dataset, batch: int, workers: int, device) -> tuple[float, float]:
    """(seconds to the first batch, images/s after it) of the training loader over two epochs."""
    import torch

    from task_arithmetic.data.sampling import EpochPlan, epoch_loader

    plan = EpochPlan(dataset_size=len(dataset), global_batch=batch, rank=0, world=1, seed=0)
    started = time.perf_counter()
    first = None
    count = 0
    for epoch in range(2):  # the second epoch reuses nothing: each epoch starts its own workers, as in training
        for images, _ in epoch_loader(dataset, plan, epoch, 0, workers, device.type == "cuda"):
            images = images.to(device, non_blocking=True)
            if first is None:
                first = time.perf_counter() - started
                started = time.perf_counter()
            else:
                count += images.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return first or 0.0, (count / seconds if seconds > 0 else float("nan"))


def step_data(ctx, record: StepRecord) -> None:
    """The training loader's images/s, decoding JPEGs every pass against the decode-once cache
    (data/decoded.py: the evaluation transform's records, and --train-crop cache), each with the
    default --num-workers, against each training step's images/s."""
    import torch

    from task_arithmetic.data.decoded import cached_dataset, load_images
    from task_arithmetic.data.sampling import loader_workers
    from task_arithmetic.data.splits import load_dataset
    from task_arithmetic.models.factory import ModelSpec, transforms_for

    started = time.perf_counter()
    root = fake_data(ctx)
    record.add("fake JPEGs made", round(time.perf_counter() - started, 1), "s", f"{ctx.sizes.image_size} px, textured, quality 90")
    device = torch.device(ctx.device)
    train_tf, val_tf = transforms_for(ModelSpec(ctx.sizes.base_model))
    workers = loader_workers(None, device, tensor_native=False)  # what --num-workers defaults to
    batch = ctx.sizes.loader_batch
    started = time.perf_counter()
    readers = {
        "train, decode every pass": load_dataset("EuroSAT", "train", root, train_tf),
        "train, --train-crop cache": load_images("EuroSAT", "train", root, train_tf, train_crop=True),
        "eval, decode every pass": load_dataset("EuroSAT", "train", root, val_tf),
        "eval, decode cache": cached_dataset("EuroSAT", "train", root, val_tf),
    }
    record.add("decode caches built", round(time.perf_counter() - started, 1), "s", "one decoding pass each, written to <data>/decoded/")
    record.add("setting", f"EuroSAT train {len(readers['train, decode every pass'])} images, batch {batch}, {workers} workers "
                          f"(the default on {device.type}), pin_memory {device.type == 'cuda'}, {ctx.sizes.base_model} transforms")
    rates = {}
    for name, dataset in readers.items():
        first, rate = _loader_rate(ctx, dataset, batch, workers, device)
        rates[name] = rate
        record.add(f"{name}: first batch (workers start)", round(first, 2), "s")
        record.add(f"{name}: images/s", round(rate, 1), "images/s", "after the first batch, to the device")
    for kind in ("train", "eval"):
        decode, cache = rates[f"{kind}, decode every pass"], rates[f"{kind}, {'--train-crop cache' if kind == 'train' else 'decode cache'}"]
        record.add(f"{kind}: cache / decode", round(cache / decode, 2), "x", f"{workers} workers each")
    for model, step_rates in ctx.train_rate.items():
        for kind, step_rate in step_rates.items():
            for name in ("train, decode every pass", "train, --train-crop cache"):
                verdict = "loading keeps up" if rates[name] >= step_rate else "loading starves the step"
                record.add(f"vs {model}: {kind} step, {name}", round(rates[name] / step_rate, 2), "x", f"step {step_rate:.0f} images/s: {verdict}")


# --- 7. DDP run, stopped and resumed --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_steps(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()] if path.is_file() else []


def step_ddp(ctx, record: StepRecord) -> None:
    import torch

    from task_arithmetic.io import load_weights, read_json
    from task_arithmetic.models.factory import ModelSpec
    from task_arithmetic.paths import Layout

    s = ctx.sizes
    data = fake_data(ctx)
    model_id = ModelSpec(s.ddp_model).model_id
    run = "linear-tau_jp"

    def command(root: Path) -> list[str]:
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
                str(REPO / "src/finetune.py"), "--task", "EuroSAT", "--model", s.ddp_model, "--pretrained", "none", "--device", ctx.device,
                "--reg", "tau_jp", "--penalty-tasks", "RESISC45", "--batch-size", str(s.ddp_batch), "--penalty-batch", "4",
                "--max-steps", str(s.ddp_steps), "--save-every", str(s.ddp_steps), "--seed", "3", "--no-progress",
                "--data-location", str(data), "--checkpoint-root", str(root / "ck"), "--results-root", str(root / "res")]

    def launch(root: Path, name: str) -> subprocess.Popen:
        log = open(ctx.work / f"ddp-{name}.log", "w")
        return subprocess.Popen(command(root), cwd=REPO, env=python_env(ctx), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def finish(process: subprocess.Popen, name: str, timeout: float) -> int:
        try:
            rc = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            rc = process.wait()
            raise RuntimeError(f"the {name} run did not end within {timeout:.0f} s") from None
        finally:
            ctx.log(f"--- DDP {name} run (rc {process.returncode}) ---\n" + (ctx.work / f"ddp-{name}.log").read_text())
        return rc

    backend = "NCCL" if ctx.device == "cuda" else "gloo"
    record.add("setting", f"torchrun 1 process ({backend}), {s.ddp_model} random weights, linear + tau-Jp on fake EuroSAT "
                          f"(penalty: fake RESISC45), batch {s.ddp_batch}, {s.ddp_steps} steps, default --num-workers")
    reference = launch(ctx.work / "ddp-ref", "reference")
    layout = Layout(ctx.work / "ddp-run" / "ck")
    log = layout.train_log(model_id, "EuroSAT", run)
    started = time.perf_counter()
    first = launch(ctx.work / "ddp-run", "first")
    deadline = time.monotonic() + ctx.timeout(150)
    while len(_log_steps(log)) < s.ddp_stop_after:
        if first.poll() is not None:
            finish(first, "first", 1)
            raise RuntimeError(f"the first run ended (rc {first.returncode}) before step {s.ddp_stop_after}; see the log")
        if time.monotonic() > deadline:
            os.killpg(first.pid, signal.SIGKILL)
            raise RuntimeError(f"no step {s.ddp_stop_after} within the time limit")
        time.sleep(0.02)
    record.add("start to step " + str(s.ddp_stop_after), round(time.perf_counter() - started, 1), "s", "process start, theta_0, heads, loaders")
    os.killpg(first.pid, signal.SIGTERM)  # as Slurm does: every process of the job
    rc = finish(first, "first", ctx.timeout(60))
    state = layout.train_state(model_id, "EuroSAT", run) / "state.json"
    saved_at = read_json(state)["step"] if state.is_file() else None
    record.add("torchrun exit code after SIGTERM", rc, note="non-zero, as for a stopped job (it does not report the worker's 75)")
    said = "stop signal received; state saved at step" in (ctx.work / "ddp-first.log").read_text()
    record.add("training process saved on the signal", said)
    record.add("state saved at step", saved_at if saved_at is not None else "none")
    if saved_at is None or not said:
        raise RuntimeError("SIGTERM left no saved training state")
    if saved_at >= s.ddp_steps:
        raise RuntimeError("the run had finished before the signal; raise ddp_steps")
    second = launch(ctx.work / "ddp-run", "resumed")
    rc2 = finish(second, "resumed", ctx.timeout(150))
    resumed_text = (ctx.work / "ddp-resumed.log").read_text()
    record.add("resumed run exit code", rc2, note="resumed" if "resuming at step" in resumed_text else "did NOT resume")
    steps = _log_steps(log)
    record.add("logged steps contiguous 1..N", steps == list(range(1, s.ddp_steps + 1)), note=f"{len(steps)} records")
    rc_ref = finish(reference, "reference", ctx.timeout(150))
    if rc2 != 0 or rc_ref != 0 or "resuming at step" not in resumed_text or steps != list(range(1, s.ddp_steps + 1)):
        raise RuntimeError(f"resume failed (resumed rc {rc2}, reference rc {rc_ref}); see the log")
    ours, _ = load_weights(layout.finetuned(model_id, "EuroSAT", run))
    ref, _ = load_weights(Layout(ctx.work / "ddp-ref" / "ck").finetuned(model_id, "EuroSAT", run))
    start, _ = load_weights(layout.zeroshot(model_id))
    flat = lambda w: torch.cat([w[k].flatten().double() for k in sorted(w)])  # noqa: E731
    update, diff = flat(ref) - flat(start), flat(ours) - flat(ref)
    record.add("resumed vs uninterrupted: max abs difference", float(diff.abs().max()), note="0 means bit-identical")
    record.add("resumed vs uninterrupted: difference norm / update norm", float(diff.norm() / update.norm().clamp_min(1e-30)),
               note="GPU kernels may not be deterministic; the CPU is bit-identical (test_training_faults)")
