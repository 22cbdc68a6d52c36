"""The paper's own recipes: standard and linearised fine-tuning, no regulariser."""

from __future__ import annotations

from typing import Any

from .base import Context, Mode, NoSettings, Penalty, PenaltySetup, Regularizer, Settings


class Standard(Mode):
    name = "standard"
    summary = "non-linear FT"


class Linear(Mode):
    name = "linear"
    summary = "linear FT"
    linearized = True


class NoRegularizer(Regularizer):
    name = "none"
    summary = "no regulariser"

    def resolve(self, options: Any, ctx: Context) -> Settings:
        return NoSettings()

    def build(self, settings: Settings, setup: PenaltySetup) -> Penalty | None:
        return None
