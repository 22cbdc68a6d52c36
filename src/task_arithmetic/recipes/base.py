"""The plug-in interface of a fine-tuning recipe: a training mode or a regulariser.

A plug-in declares its options as a dataclass whose fields are its command-line flags (field
`penalty_coef` is `--penalty-coef`; every field defaults to None, "not given"), resolves them into
fully typed settings before any work starts, and builds what it adds to a run:
  - a mode decides how theta is trained: through the linearised model or not, and which
    parameters (or entries) may change (`Mode.prepare` returns an `UpdateRule`);
  - a regulariser adds a term to the objective and logs its metrics (`Regularizer.build`
    returns a `Penalty`), reading theta_0 and, if it wants, inputs of other tasks.
The registry in `recipes/__init__.py` lists them; `recipes/names.py` derives every run name.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Mapping, Sequence

import torch
from torch.utils.data import Dataset

from ..errors import UserError
from ..flags import finite_float

if TYPE_CHECKING:  # annotations only: the trainee module imports models, which is heavier
    from ..training.model import Trainee

DEFAULT_VARIANT = "efficient"  # the only variant of a regulariser that has none of its own


@dataclass(frozen=True)
class NoOptions:
    """Options of a plug-in that takes none."""


@dataclass(frozen=True)
class Settings:
    """Resolved options: every field has its final value; `to_json` is what a run records."""

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


@dataclass(frozen=True)
class NoSettings(Settings):
    pass


@dataclass(frozen=True)
class Context:
    """What a plug-in sees while resolving its options (the run's other, already resolved choices)."""

    task: str
    benchmark: str
    model: str
    mode: str
    variant: str
    batch_size: int
    task_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # TaskSpec.defaults

    def default(self, key: str, paper: Any, large_model: Any = None) -> Any:
        """A task default ("<key>_<mode>" wins over "<key>"), else ViT-L's value, else the paper's."""
        value = self.task_defaults.get(f"{key}_{self.mode}", self.task_defaults.get(key))
        if value is not None:
            return value
        if large_model is not None and self.model.startswith("ViT-L"):
            return large_model
        return paper


def option(help: str, kind: type = float, tasks: bool = False) -> Any:
    """A plug-in option: a dataclass field that is also a flag. `tasks`: a comma-separated task list."""
    return dataclasses.field(default=None, metadata={"help": help, "kind": kind, "tasks": tasks})


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _task_list(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def need(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def finite(value: float, name: str, minimum: float = 0.0) -> None:
    need(math.isfinite(value) and value >= minimum, f"{flag(name)} must be a finite number >= {minimum:g}, got {value}")


class Plugin(ABC):
    name: ClassVar[str]
    summary: ClassVar[str]  # one line, shown by --help and in the report's method column
    options: ClassVar[type] = NoOptions

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls.options))

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        fields = dataclasses.fields(cls.options)
        if not fields:
            return
        group = parser.add_argument_group(f"{cls.name} options ({cls.summary})")
        for f in fields:
            kind = str if f.metadata.get("tasks") else f.metadata.get("kind", float)
            kind = finite_float if kind is float else kind  # NaN would pass every range check the plug-in makes
            group.add_argument(flag(f.name), dest=f.name, type=kind, default=None, help=f.metadata.get("help"))

    @classmethod
    def request(cls, given: dict[str, Any]) -> Any:
        """Its options dataclass from flag values (comma lists become task tuples)."""
        values = {}
        for f in dataclasses.fields(cls.options):
            value = given.get(f.name)
            if f.metadata.get("tasks") and isinstance(value, str):
                value = _task_list(value)
                need(bool(value), f"{flag(f.name)} is empty; pass at least one task name, comma-separated")
            values[f.name] = value
        return cls.options(**values)

    @abstractmethod
    def resolve(self, options: Any, ctx: Context) -> Settings:
        """Validate the options and fill their defaults; UserError (one line) before any work."""


# ----------------------------------------------------------------------------------------------
# modes


class UpdateRule:
    """What a mode does around each optimiser step beyond plain AdamW on the trainable tensors."""

    def after_backward(self) -> None:
        """Called once the step's gradients are complete (before clipping)."""

    def after_step(self) -> None:
        """Called after optimizer.step()."""

    def summary(self) -> dict[str, Any]:
        """Facts recorded in the run's metadata (e.g. how many entries train)."""
        return {}


CalibrationBatches = Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]]  # n -> (images, labels) batches


class Mode(Plugin):
    linearized: ClassVar[bool] = False  # trained (and evaluated) as f(x; theta_0) + J(x) (theta - theta_0)

    def resolve(self, options: Any, ctx: Context) -> Settings:
        return NoSettings()

    def prepare(self, trainee: "Trainee", settings: Settings, calibration: CalibrationBatches) -> UpdateRule:
        """Choose what trains, at theta_0, before the optimiser is built; every parameter by default."""
        return UpdateRule()


# ----------------------------------------------------------------------------------------------
# regularisers


@dataclass
class PenaltyInputs:
    inputs: torch.Tensor | None  # this process's share
    global_count: int  # inputs over all processes


class Penalty(ABC):
    """One run's regulariser: its term of the objective and its logged metrics.

    Each metric is carried as a (sum, count) pair so that summing over processes and dividing
    gives the global mean.
    """

    metrics: tuple[str, ...] = ()

    def inputs_for_step(self, step: int) -> PenaltyInputs | None:
        """Inputs that must go through J_theta0 f at this step (None: the term needs no tangent)."""
        return None

    @abstractmethod
    def term(self, trainee: "Trainee", tangent: torch.Tensor | None, inputs: PenaltyInputs | None, world: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(this process's share of the objective term, metric (sum, count) pairs, flat)."""

    @abstractmethod
    def record(self, means: dict[str, float]) -> dict[str, float]:
        """Logged values from the global metric means; "penalty" is the term's value."""

    def after_step(self, means: dict[str, float]) -> None:
        """Adapt internal state (e.g. a coefficient) after an optimiser step."""

    def state(self) -> dict[str, float]:
        """State that a resumed run must restore (saved with the training state)."""
        return {}

    def load_state(self, state: dict[str, float]) -> None:
        pass

    def summary(self) -> dict[str, Any]:
        return self.state()


@dataclass(frozen=True)
class PenaltySetup:
    """What a regulariser may use to build its penalty."""

    trainee: "Trainee"
    variant: str
    datasets: Sequence[Dataset]  # the train splits of `Regularizer.data_tasks(settings)`, in order
    seed: int
    start_step: int
    rank: int
    world: int
    num_workers: int
    reference_norms: dict[str, float]  # ||tau|| of each run named by `references`, same model and task


class Regularizer(Plugin):
    variants: ClassVar[tuple[str, ...]] = (DEFAULT_VARIANT,)  # the first is the default (no name suffix)
    default_mode: ClassVar[str] = "standard"  # the mode used when --mode is not given
    needs_theta0: ClassVar[bool] = False  # keep a frozen theta_0 copy (with its JVP) in every mode

    def data_tasks(self, settings: Settings) -> tuple[str, ...]:
        """Tasks whose train inputs the penalty reads."""
        return ()

    def references(self, settings: Settings) -> tuple[str, ...]:
        """Run names (same model and task) whose finished weights the penalty needs to know."""
        return ()

    @abstractmethod
    def build(self, settings: Settings, setup: PenaltySetup) -> Penalty | None:
        """The run's penalty; None adds nothing to the objective."""
