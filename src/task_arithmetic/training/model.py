"""What is being trained: the encoder's weights theta, seen through the chosen mode.

In every mode the trainable weights are the encoder's visual tower itself, so the fine-tuned
checkpoint is always `encoder.save()`: for linear mode that is the trainable copy theta.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from ..models.encoder import ImageEncoder
from ..models.heads import ClassificationHead
from ..models.jvp_reference import functorch_jvp
from ..models.linearize import LinearizedModel, select_jvp
from ..recipes.base import Mode


@dataclass
class Trainee:
    encoder: ImageEncoder
    head: ClassificationHead
    linearized: bool  # trained through f(x; theta_0) + J(x) (theta - theta_0) (linear mode)
    # The frozen theta_0 copy with its JVP: present in linear mode and whenever a penalty is used.
    linear: LinearizedModel | None

    @property
    def visual(self) -> nn.Module:
        return self.encoder.visual

    @property
    def device(self) -> torch.device:
        return next(self.visual.parameters()).device

    def parameters(self) -> list[nn.Parameter]:
        return [p for p in self.visual.parameters() if p.requires_grad]

    def theta0(self) -> dict[str, torch.Tensor]:
        """The encoder's parameters at theta_0 (visual keys, detached): the frozen copy's where
        there is one, else a copy taken now (call before the first update)."""
        if self.linear is not None:
            return {n: p.detach() for n, p in self.linear.frozen.named_parameters()}
        return {n: p.detach().clone() for n, p in self.visual.named_parameters()}

    def train(self) -> None:
        self.encoder.train()
        if self.linear is not None:
            self.linear.frozen.eval()

    def set_grad_checkpointing(self, enabled: bool) -> None:
        """Activation checkpointing: each transformer block keeps only its input and recomputes the
        rest in the backward. open_clip's switch serves the standard forward; the same switch on
        the frozen theta_0 copy makes the fast JVP (linear mode, the tau-Jp penalty) do the same."""
        modules = [self.visual] + ([self.linear.frozen] if self.linear is not None else [])
        if enabled and not all(hasattr(m, "set_grad_checkpointing") for m in modules):
            raise UserError(f"--grad-checkpointing needs an open_clip transformer encoder; {type(self.visual).__name__} has no such switch")
        if enabled and self.linear is not None and select_jvp(self.linear.frozen) is functorch_jvp:
            # torch.func's forward-mode pass keeps no per-block activations to trade; it runs as before
            print("--grad-checkpointing: this encoder's JVP uses torch.func, which runs without checkpointing", flush=True)
            modules = modules[:1]
        for module in modules:
            switch = getattr(module, "set_grad_checkpointing", None)  # open_clip's encoders have one
            if switch is not None:
                switch(enabled)

    def forward(self, images: torch.Tensor, penalty_inputs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(embeddings of `images`, J_theta0 f(penalty_inputs) . (theta - theta_0) or None)."""
        if self.linearized:
            assert self.linear is not None
            if penalty_inputs is None:
                return self.linear(images), None
            # One JVP over both batches: the penalty needs only the tangent, which the linearised
            # forward computes anyway, and one larger call beats two small ones.
            out0, tangent = self.linear.forward_with_tangent(torch.cat([images, penalty_inputs]))
            n = images.shape[0]
            return out0[:n] + tangent[:n], tangent[n:]
        features = self.visual(images)
        if penalty_inputs is None:
            return features, None
        assert self.linear is not None, "a penalty in standard mode needs the frozen theta_0 copy"
        return features, self.linear.tangent(penalty_inputs)


def build_trainee(
    encoder: ImageEncoder, head: ClassificationHead, mode: Mode, needs_tangent: bool, init_weights: dict[str, torch.Tensor] | None
) -> Trainee:
    """Wrap `encoder` (holding theta_0) for training; `init_weights` (e.g. --init-from) become theta."""
    linearized = mode.linearized
    for p in head.parameters():
        p.requires_grad_(False)
    # The frozen copy must be taken before init_weights replace theta.
    linear = LinearizedModel(encoder.visual) if (linearized or needs_tangent) else None
    if init_weights is not None:
        encoder.visual.load_state_dict(init_weights)
    return Trainee(encoder=encoder, head=head, linearized=linearized, linear=linear)
