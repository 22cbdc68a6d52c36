"""Contrastive (CLIP InfoNCE) pretraining of the whole TinyCLIP on the generated corpus.

Both towers start from open_clip's random initialisation and the real open_clip tokenizer. The
recipe follows CLIP's: AdamW without weight decay on gains and biases, warm-up then cosine decay,
a learnable temperature clamped at 100. One deviation: the corpus is generated from a small
vocabulary, so a batch holds many images a caption is true of ("the number 7" and every 7).
Plain InfoNCE would push those apart as false negatives; here every true (image, caption) pair
in the batch is a positive, with the target probability shared among them (multi-positive
InfoNCE). Which pairs are true is known exactly from the generator's facts (captions.py).

Stopping: a stop signal (SIGTERM/SIGUSR1) or Ctrl-C ends the corpus build or the training
within a step (StopRequested, or KeyboardInterrupt); nothing is saved, and the same command
starts pretraining again from its beginning (restartable, not resumable: about 4 minutes).
"""

from __future__ import annotations

import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from ..models.factory import ModelSpec, OpenClipModel, create_clip
from ..runtime import usable_cores
from ..stop_signals import raise_if_stopped
from ..training.tracking import PeriodicLog, duration
from .captions import caption_matches
from .corpus import Corpus, build_corpus
from .datasets import normalise
from .presets import PretrainConfig

MODEL_NAME = "TinyCLIP"
MAX_LOGIT_SCALE = math.log(100.0)

# Core-seconds per corpus pair and per trained image, from the default preset on 2 idle cores
# (README: corpus 30 s, 2700 steps of 128 in 200 s, two lanes): what the notice's estimate uses.
CORPUS_CORE_SECONDS_PER_PAIR = 30.0 * 2 / 192000
STEP_CORE_SECONDS_PER_IMAGE = 200.0 * 2 / (2700 * 128)


def estimated_seconds(cfg: PretrainConfig, cores: int | None = None) -> float:
    """Wall time of pretrain_clip on `cores` idle CPU cores: the corpus's families render in up to
    one thread each, a step runs in two lanes at most (a loaded machine or a GPU differs)."""
    cores = cores or usable_cores()
    corpus = cfg.corpus_size * CORPUS_CORE_SECONDS_PER_PAIR / min(cores, 7)
    return corpus + cfg.steps * cfg.batch_size * STEP_CORE_SECONDS_PER_IMAGE / min(cores, 2)


def notice(what: str, cfg: PretrainConfig) -> str:
    """The one line printed before an implicit pretraining: what, how long, how to stop it."""
    return (f"{what}: building a {cfg.corpus_size:,}-pair corpus and pretraining {cfg.steps} steps now (about "
            f"{duration(estimated_seconds(cfg))} on {usable_cores()} idle CPU cores; once, then cached); "
            "Ctrl-C or SIGTERM stops it within seconds and the same command starts it again")


def tokenize_captions(captions: list[tuple[str, ...]]) -> torch.Tensor:
    """(N, variants, context) token ids, with the model's own tokenizer."""
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)
    flat = [c for caps in captions for c in caps]
    # The vocabulary is small, so most captions repeat: tokenise each distinct one once.
    unique = sorted(set(flat))
    position = {c: i for i, c in enumerate(unique)}
    table = tokenizer(unique)
    index = torch.tensor([position[c] for c in flat])
    return table[index].view(len(captions), len(captions[0]), -1)


def _param_groups(model: nn.Module, wd: float) -> list[dict[str, Any]]:
    def no_decay(name: str, p: torch.Tensor) -> bool:
        return p.ndim < 2 or "ln" in name or "bias" in name or "logit_scale" in name

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0},
        {"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": wd},
    ]


def lr_at(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * progress))


def contrastive_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor, matches: torch.Tensor) -> torch.Tensor:
    """Symmetric multi-positive InfoNCE; matches[i, j] says caption j is true of image i.

    With only the diagonal true this is exactly CLIP's loss.
    """
    logits = logit_scale.exp() * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).t()
    targets = matches.float()
    loss_i = -(targets / targets.sum(dim=1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_t = -(targets.t() / targets.t().sum(dim=1, keepdim=True) * F.log_softmax(logits.t(), dim=1)).sum(dim=1).mean()
    return (loss_i + loss_t) / 2


class TwoLanes:
    """A CPU step as two single-threaded lanes, whatever the number of cores: the same split, the
    same operations and the same summation order on 1, 2 or 16 threads, so theta_0 does not depend
    on the machine's core count (only on its processor's kernels). On two cores the lanes run side
    by side, which also pays more than one two-threaded process (this model's matrices are too small
    for two intra-op threads: 1.54x one thread; two lanes: 1.76x, benchmarks/bench_pretrain.py); on
    one core they take turns. Lane A encodes the first 3/4 of the images,
    lane B the rest and every caption (an image costs about twice a caption forward and backward,
    so the lanes take about equally long); the loss is taken on their detached features, and each lane back-propagates
    its own share with autograd.grad. Gradients are summed in a fixed order, never accumulated
    concurrently, so a run is deterministic. Exact: a ViT treats each image alone, so splitting
    the batch only changes rounding.
    """

    IMAGE_SHARE = 0.75

    def __init__(self, model: OpenClipModel) -> None:
        self.model = model
        self.visual = [p for p in model.visual.parameters() if p.requires_grad]
        seen = {id(p) for p in self.visual} | {id(model.logit_scale)}
        self.text = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="pretrain-lane")
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)  # restored by close()

    def backward(self, images: torch.Tensor, tokens: torch.Tensor, matches: torch.Tensor) -> torch.Tensor:
        split = round(len(images) * self.IMAGE_SHARE)
        lane_a = self.pool.submit(self.model.encode_image, images[:split])
        lane_b = self.pool.submit(lambda: (self.model.encode_image(images[split:]), self.model.encode_text(tokens)))
        img_a, (img_b, txt) = lane_a.result(), lane_b.result()
        image_features = torch.cat([img_a, img_b]).detach().requires_grad_()
        text_features = txt.detach().requires_grad_()
        loss = contrastive_loss(image_features, text_features, self.model.logit_scale, matches)
        loss.backward()  # d loss / d features, and logit_scale's own gradient
        d_img, d_txt = image_features.grad, text_features.grad
        assert d_img is not None and d_txt is not None  # leaves that required grad, after backward
        grads_a = self.pool.submit(torch.autograd.grad, img_a, self.visual, d_img[:split])
        params_b = self.visual + self.text
        grads_b = self.pool.submit(torch.autograd.grad, (img_b, txt), params_b, (d_img[split:], d_txt), allow_unused=True)
        ga, gb = grads_a.result(), grads_b.result()
        for i, p in enumerate(params_b):
            g = gb[i] if gb[i] is not None else torch.zeros_like(p)
            p.grad = ga[i] + g if i < len(self.visual) else g
        return loss.detach()

    def close(self) -> None:
        self.pool.shutdown()
        torch.set_num_threads(self.threads)


def pretrain_clip(
    cfg: PretrainConfig, device: torch.device | str = "cpu", progress: bool = True, lanes: bool = True
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the corpus, train TinyCLIP on it, return (model in eval mode, summary for the metadata).

    lanes=False: one multi-threaded CPU step instead of the two lanes (benchmarks/bench_pretrain.py
    compares; its weights then depend on the thread count).
    """
    started = time.perf_counter()
    corpus = build_corpus(cfg.corpus_size, cfg.seed)
    tokens = tokenize_captions(corpus.captions)
    built = time.perf_counter() - started

    torch.manual_seed(cfg.seed)
    model, _, _ = create_clip(ModelSpec(MODEL_NAME), device)
    model.train()
    # Fused AdamW: one kernel over all tensors. Per-tensor AdamW took a fifth of each step, most of
    # it on the 49408-row token embedding (measured: 26 ms against 2.3 ms a step on one core).
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.wd), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6, fused=True)
    use_lanes = lanes and torch.device(device).type == "cpu" and cfg.batch_size >= 4
    two_lanes = TwoLanes(model) if use_lanes else None
    try:
        losses = _train(model, optimizer, cfg, corpus, tokens, device, two_lanes, progress)
    finally:
        if two_lanes is not None:
            two_lanes.close()
    model.eval()
    summary = {
        "corpus_seconds": round(built, 2),
        "train_seconds": round(time.perf_counter() - started - built, 2),
        "final_loss": float(np.mean(losses[-10:])) if losses else None,
        "first_loss": losses[0] if losses else None,
        "logit_scale": float(model.logit_scale.exp().item()),
    }
    return model, summary


def _train(
    model: OpenClipModel, optimizer: torch.optim.Optimizer, cfg: PretrainConfig, corpus: Corpus, tokens: torch.Tensor,
    device: torch.device | str, lanes: TwoLanes | None, progress: bool,
) -> list[float]:
    img_facts = torch.from_numpy(corpus.image_facts)
    cap_facts = torch.from_numpy(corpus.caption_facts)
    generator = torch.Generator().manual_seed(cfg.seed)
    n, variants = tokens.shape[0], tokens.shape[1]
    order = torch.randperm(n, generator=generator)
    cursor, losses = 0, []
    bar = None
    if progress and sys.stderr.isatty():
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, desc="pretrain TinyCLIP", leave=False)
    log = PeriodicLog("pretrain TinyCLIP", cfg.steps, 0, cfg.batch_size)  # plain lines in a log file or a Slurm job
    for step in range(cfg.steps):
        raise_if_stopped("pretraining TinyCLIP")
        if cursor + cfg.batch_size > n:
            order, cursor = torch.randperm(n, generator=generator), 0
        idx = order[cursor : cursor + cfg.batch_size]
        cursor += cfg.batch_size
        pick = torch.randint(0, variants, (len(idx),), generator=generator)
        batch_tokens = tokens[idx, pick].to(device)
        images = normalise(corpus.images[idx.numpy()]).to(device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        matches = caption_matches(img_facts[idx], cap_facts[idx, pick]).to(device)
        optimizer.zero_grad(set_to_none=True)
        if lanes is None:
            loss = contrastive_loss(model.encode_image(images), model.encode_text(batch_tokens), model.logit_scale, matches)
            loss.backward()
        else:
            loss = lanes.backward(images, batch_tokens, matches)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        losses.append(loss.item())
        if bar is not None:
            bar.update(1)
            if step % 10 == 0 or step == cfg.steps - 1:
                bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
        log.update(step + 1, quiet=bar is not None, loss=float(np.mean(losses[-10:])), lr=lr_at(step, cfg))
    if bar is not None:
        bar.close()
    print(log.summary(), flush=True)
    return losses
