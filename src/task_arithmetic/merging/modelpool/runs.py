"""A pool over this suite's own fine-tuning runs, located by the shared path scheme.

models: '_pretrained_' = layout.zeroshot(model_id) (created on first use), and one fine-tuned
encoder per task at layout.finetuned(model_id, task, run). The pool reads its runs out as the
suite's evaluations do (recipes.Readout): linear runs hold the trainable copy theta and their
merge is the linearised model around theta_0, as is a post-hoc readout of a non-linear run
(`mode: posthoc`, or `run: posthoc...`). One predicate decides it for both the evaluation model
and the forward AdaMerging differentiates, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...data.registry import parse_task_list
from ...errors import UserError
from ...io import metadata_path
from ...models.encoder import ImageEncoder
from ...models.factory import ModelSpec, check_model_name
from ...models.linearize import LinearizedModel
from ...models.pretrained import zeroshot_encoder
from ...paths import DEFAULT_CHECKPOINT_ROOT, Layout
from ...recipes import EvaluatedRun, Readout
from ...recipes.identity import from_flags
from ..streaming import KeyView, SafetensorsReader, encoder_metadata, load_encoder_streaming
from .base import PRETRAINED, BaseModelPool


class RunModelPool(BaseModelPool):
    def __init__(
        self,
        model: str,
        tasks: str | Sequence[str],
        pretrained: str | None = None,
        mode: str | None = None,
        reg: str | None = None,
        variant: str | None = None,
        tag: str = "",
        run: str | None = None,
        cache_dir: str | None = None,
        checkpoint_root: str | Path | None = None,
    ):
        check_model_name(model, pretrained)  # an imported architecture is declared by its weights file
        # the same flags name the same runs as in every script (recipes/identity.py)
        self.evaluated: EvaluatedRun = from_flags(mode, reg, variant, tag or "", run)
        self.spec = ModelSpec(model, pretrained, cache_dir)
        self.tasks = parse_task_list(tasks)
        self.run = self.evaluated.run.name
        self.layout = Layout(Path(checkpoint_root) if checkpoint_root else DEFAULT_CHECKPOINT_ROOT)

    @classmethod
    def of(cls, spec: ModelSpec, layout: Layout, evaluated: EvaluatedRun, tasks: Sequence[str]) -> "RunModelPool":
        return cls(spec.name, list(tasks), spec.pretrained, run=evaluated.name, cache_dir=spec.cache_dir, checkpoint_root=layout.checkpoint_root)

    @property
    def linearized(self) -> bool:
        """The one predicate: merges of these runs are read out linearised around theta_0."""
        return self.evaluated.readout is Readout.LINEARIZED

    @property
    def all_model_names(self) -> list[str]:
        return [PRETRAINED, *self.tasks]

    def finetuned_path(self, task: str) -> Path:
        return self.layout.finetuned(self.spec.model_id, task, self.run)

    def check_available(self) -> None:
        missing = [t for t in self.tasks if not metadata_path(self.finetuned_path(t)).is_file()]
        if missing:
            raise UserError(
                f"no finished '{self.run}' run of {self.spec.model_id} for {', '.join(missing)} "
                f"(expected {self.finetuned_path(missing[0])} and its .json); fine-tune those tasks first "
                "or point checkpoint_root at the folder that holds them"
            )

    def load_model(self, name: str) -> ImageEncoder:
        self.check_name(name)
        if name == PRETRAINED:
            path = self.layout.zeroshot(self.spec.model_id)
            if path.is_file():
                return load_encoder_streaming(path, expect_model=self.spec.name)
            return zeroshot_encoder(self.spec, self.layout)
        self.check_available()
        return load_encoder_streaming(self.finetuned_path(name), expect_model=self.spec.name)

    def load_state(self, name: str) -> Mapping[str, torch.Tensor]:
        if name == PRETRAINED:
            return self.load_model(name).state_dict()
        self.check_name(name)
        self.check_available()
        path = self.finetuned_path(name)
        model_name = encoder_metadata(path).get("model_name")
        if model_name != self.spec.name:
            raise UserError(f"{path} holds a {model_name} encoder, expected {self.spec.name}; check the pool's model")
        return KeyView(SafetensorsReader(path), add="visual.")  # ImageEncoder's key names

    def evaluation_model(self, merged: nn.Module) -> nn.Module:
        if not self.linearized:
            return merged
        if not isinstance(merged, ImageEncoder):
            raise UserError("linearised evaluation needs the merged ImageEncoder from this pool")
        theta0 = self.load_model(PRETRAINED)
        linear = LinearizedModel(merged.visual)
        linear.frozen.load_state_dict(theta0.visual.state_dict())
        # The linearised forward takes theta - theta_0 over the parameters that require grad (so a
        # run that trains only some of them keeps the rest at theta_0); a merge can come back
        # frozen (AdaMerging's does), which would leave theta_0 alone: every parameter counts here.
        linear.trainable.requires_grad_(True)
        return ImageEncoder(linear, {**merged.metadata, "linearized": True}, merged.train_preprocess, merged.val_preprocess).eval()

    def functional_model(self, model: nn.Module, tie_weights: bool = True, strict: bool = False):
        """Linear and post-hoc runs: f(x; theta_0) + J f(x) (theta - theta_0), as evaluation_model runs them."""
        if not self.linearized:
            return super().functional_model(model, tie_weights, strict)
        if not isinstance(model, ImageEncoder):
            raise UserError("linearised AdaMerging needs the ImageEncoder from this pool")
        linear = LinearizedModel(model.visual)
        theta0 = linear.params0()

        def bind(params: dict[str, torch.Tensor]):
            delta = {n: params[f"visual.{n}"] - theta0[n] for n in theta0}

            def call(images: torch.Tensor) -> torch.Tensor:
                out0, tangent = linear.forward_with_tangent(images, delta)
                return out0 + tangent

            return call

        return bind

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model_id": self.spec.model_id, "run": self.evaluated.name, "readout": self.evaluated.readout.value,
                "checkpoint_root": str(self.layout.checkpoint_root)}
