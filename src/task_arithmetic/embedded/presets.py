"""Presets of the embedded study: `default` (the README's main command) and `smoke` (the tests').

A preset fixes the pretraining recipe (and so the weight tag the pretrained TinyCLIP is known by)
and how much of the downstream pipeline to run. Fine-tuning settings per task live in each
task's TaskSpec.defaults; a preset only caps or scales them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import UserError
from ..recipes import Group


@dataclass(frozen=True)
class PretrainConfig:
    corpus_size: int  # generated image-caption pairs
    steps: int  # optimiser steps
    batch_size: int
    lr: float = 2e-3
    wd: float = 0.1
    warmup: int = 30  # steps of linear warm-up before cosine decay
    seed: int = 0

    def digest(self) -> str:
        """Identifies the recipe in the weights' metadata: a cached file is reused only if it matches."""
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Preset:
    name: str
    weight_tag: str  # ModelSpec("TinyCLIP", pretrained=weight_tag)
    pretrain: PretrainConfig
    tasks: tuple[str, ...] | None = None  # None: every embedded task
    max_steps: int | None = None  # cap on optimiser steps per fine-tuning run (None: the task's epochs)
    warmup: int | None = None  # override of the tasks' warm-up steps (a capped run needs a shorter one)
    max_train_samples: int | None = None  # fine-tune on a fixed subset of each train split
    eval_limit: int | None = None  # evaluate on at most this many examples per split
    # study-level evaluation parameters (evaluation/spec.py: alpha_step, grid_points, ...); the rest default
    eval_params: Mapping[str, Any] = field(default_factory=dict)
    # What the study runs: the recipe groups (recipes/identity.py; None: every group) and the
    # evaluations of the registry less `skip_evaluations`.
    recipe_groups: tuple[Group, ...] | None = None
    skip_evaluations: tuple[str, ...] = ()


PRESETS: dict[str, Preset] = {
    "default": Preset(
        name="default",
        weight_tag="embedded",
        # Calibrated on the standard and linear baselines (issue 14; README, "Calibration"): a
        # corpus twelve times larger, each image seen about twice, and three times the steps of
        # the first world (16 000 pairs, 900 steps) bring them near ViT-B/32's regime.
        pretrain=PretrainConfig(corpus_size=192000, steps=2700, batch_size=128),
        # The README's main command: the paper's study within its time budget on 2 cores. The
        # field's recipes, the paper's further experiments and merging x recipe (AdaMerging's Adam
        # steps) more than triple it (README, "The embedded benchmark"): `--recipes all
        # --evaluations all` runs them.
        recipe_groups=(Group.PAPER,),
        skip_evaluations=("merging", "incremental"),
    ),
    "smoke": Preset(
        name="smoke",
        weight_tag="embedded-smoke",
        pretrain=PretrainConfig(corpus_size=3000, steps=60, batch_size=128, warmup=10),
        tasks=("Digits", "LandUse", "Landscapes"),
        max_steps=15,
        warmup=3,
        max_train_samples=256,
        eval_limit=128,
        eval_params={"alpha_step": 0.25, "adamerging_steps": 3, "grid_points": 5},
        # the paper's recipes through every evaluation; the tests add the other groups on top of
        # it (tests/conftest.py, smoke_all) rather than running every recipe in every copy of it
        recipe_groups=(Group.PAPER,),
    ),
}


def with_pretrain_seed(preset: Preset, seed: int) -> Preset:
    """The same preset pretrained from another seed; its weights get their own tag (`<tag>-p<seed>`)."""
    if seed < 0:
        raise UserError(f"a pretraining seed must be >= 0, got {seed}")
    if seed == preset.pretrain.seed:
        return preset
    return dataclasses.replace(
        preset, name=f"{preset.name}-p{seed}", weight_tag=f"{preset.weight_tag}-p{seed}", pretrain=dataclasses.replace(preset.pretrain, seed=seed)
    )


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UserError(f"unknown preset '{name}'; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def preset_for_tag(tag: str) -> Preset:
    for preset in PRESETS.values():
        if preset.weight_tag == tag:
            return preset
        suffix = tag[len(preset.weight_tag) + 2 :]
        if tag.startswith(f"{preset.weight_tag}-p") and suffix.isdigit() and str(int(suffix)) == suffix:
            return with_pretrain_seed(preset, int(suffix))
    raise UserError(f"no embedded preset pretrains weights '{tag}'; valid tags: {', '.join(p.weight_tag for p in PRESETS.values())}")
