"""The paper's own recipes: standard and linearised fine-tuning, no regulariser; and the study
recipes they make: standard, its post-hoc linearisation, and linear."""

from __future__ import annotations

from typing import Any

from .base import Context, NoOptions, NoOptionsMode, NoSettings, Penalty, PenaltySetup, Readout, Regularizer
from .identity import Group, Recipe, RunId


class Standard(NoOptionsMode):
    name = "standard"
    summary = "non-linear FT"

    def recipes(self) -> tuple[Recipe, ...]:
        run = RunId(self, NoRegularizer())
        return (
            Recipe("standard", run, Readout.NONLINEAR, Group.PAPER, "non-linear FT"),
            # the standard runs' task vectors, read out in the linearised model
            Recipe("posthoc", run, Readout.LINEARIZED, Group.PAPER, "non-linear FT, post-hoc linearised"),
        )


class Linear(NoOptionsMode):
    name = "linear"
    summary = "linear FT"
    readout = Readout.LINEARIZED

    def recipes(self) -> tuple[Recipe, ...]:
        return (Recipe("linear", RunId(self, NoRegularizer()), Readout.LINEARIZED, Group.PAPER, "linear FT"),)


class NoRegularizer(Regularizer[NoOptions, NoSettings]):
    name = "none"
    summary = "no regulariser"
    default_mode = "standard"

    def resolve(self, options: Any, ctx: Context) -> NoSettings:
        return NoSettings()

    def build(self, settings: NoSettings, setup: PenaltySetup) -> Penalty | None:
        return None


PLUGINS = (Standard(), Linear(), NoRegularizer())
