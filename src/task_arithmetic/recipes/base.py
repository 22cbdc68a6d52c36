"""The plug-in interface of a fine-tuning recipe: a training mode or a regulariser.

A plug-in declares its options as a dataclass whose fields are its command-line flags (field
`penalty_coef` is `--penalty-coef`; every field defaults to None, "not given"), resolves them into
fully typed settings before any work starts, and builds what it adds to a run:
  - a mode decides how theta is trained and read out: through the linearised model or not
    (`readout`), and which parameters (or entries) may change (`Mode.prepare` returns an
    `UpdateRule`);
  - a regulariser adds a term to the objective and logs its metrics (`Regularizer.build` returns a
    `Penalty`), reading theta_0, the task vectors of the runs it references and, if it wants,
    inputs of other tasks.
A plug-in may also bring study recipes (`recipes()`, identity.py), which is how it reaches the
study, its cost plan, the Slurm graph and the report. The registry (registry.py) lists the
plug-in modules, one line each.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generic, Iterator, Mapping, Sequence, TypeVar

from ..errors import UserError
from ..flags import finite_float
from ..lazy import torch  # imported on first use: every script's parser reads the plug-ins

if TYPE_CHECKING:  # annotations only: these import models (heavier) or this module
    from torch.utils.data import Dataset

    from ..training.model import Trainee
    from ..vectors.task_vector import TaskVector
    from .identity import Recipe, RunId

DEFAULT_VARIANT = "efficient"  # the only variant of a regulariser that has none of its own


class Readout(enum.Enum):
    """How a run's weights theta are read out, in training and in every evaluation."""

    NONLINEAR = "nonlinear"  # f(x; theta)
    LINEARIZED = "linearized"  # f(x; theta_0) + J_theta0 f(x) (theta - theta_0)


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


@dataclass(frozen=True)
class StepCost:
    """Image passes (forward + backward) of one optimiser step, by kind, for the dry-run plan."""

    plain: int = 0
    linearized: int = 0

    def __add__(self, other: "StepCost") -> "StepCost":
        return StepCost(self.plain + other.plain, self.linearized + other.linearized)

    def __mul__(self, times: int) -> "StepCost":
        return StepCost(self.plain * times, self.linearized * times)


OptionsT = TypeVar("OptionsT")
SettingsT = TypeVar("SettingsT", bound=Settings)


class Plugin(ABC, Generic[OptionsT, SettingsT]):
    """A mode or a regulariser. Plug-ins are compared by name, so a copy rebuilt in another
    process (a worker, a Slurm job) is the same plug-in."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line, shown by --help and in the report's method column
    options: ClassVar[type[Any]] = NoOptions

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.name))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

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
    def request(cls, given: Mapping[str, Any]) -> OptionsT:
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
    def resolve(self, options: OptionsT, ctx: Context) -> SettingsT:
        """Validate the options and fill their defaults; UserError (one line) before any work."""

    def recipes(self) -> tuple["Recipe", ...]:
        """The study recipes this plug-in brings (identity.py); none by default."""
        return ()


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


CalibrationBatches = Callable[[int], Iterator[tuple["torch.Tensor", "torch.Tensor"]]]  # n -> (images, labels) batches


class Mode(Plugin[OptionsT, SettingsT]):
    readout: ClassVar[Readout] = Readout.NONLINEAR  # how the run trains and is evaluated

    @property
    def linearized(self) -> bool:
        return self.readout is Readout.LINEARIZED

    def prepare(self, trainee: "Trainee", settings: SettingsT, calibration: CalibrationBatches) -> UpdateRule:
        """Choose what trains, at theta_0, before the optimiser is built; every parameter by default."""
        return UpdateRule()

    def step_cost(self, batch: int) -> StepCost:
        """The training batch's passes: a linearised pass costs a JVP, a plain one does not."""
        return StepCost(linearized=batch) if self.linearized else StepCost(plain=batch)


class NoOptionsMode(Mode[NoOptions, NoSettings]):
    """A mode without options of its own."""

    def resolve(self, options: NoOptions, ctx: Context) -> NoSettings:
        return NoSettings()


# ----------------------------------------------------------------------------------------------
# regularisers


@dataclass
class PenaltyInputs:
    inputs: torch.Tensor | None  # this process's share
    global_count: int  # inputs over all processes


@dataclass(frozen=True)
class MetricSum:
    """One logged metric of this process as (sum, count): summing over processes and dividing
    gives the global mean."""

    total: torch.Tensor
    count: torch.Tensor


@dataclass(frozen=True)
class PenaltyTerm:
    value: torch.Tensor  # this process's share of the objective term
    metrics: dict[str, MetricSum]  # the names of Penalty.metrics, each present


class Penalty(ABC):
    """One run's regulariser: its term of the objective and its logged metrics."""

    metrics: tuple[str, ...] = ()

    def inputs_for_step(self, step: int) -> PenaltyInputs | None:
        """Inputs that must go through J_theta0 f at this step (None: the term needs no tangent)."""
        return None

    @abstractmethod
    def term(self, trainee: "Trainee", tangent: torch.Tensor | None, inputs: PenaltyInputs | None, world: int) -> PenaltyTerm:
        """This process's share of the term, and its metrics."""

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


def metric(total: torch.Tensor, count: float | torch.Tensor = 1.0) -> MetricSum:
    """A MetricSum in float64 on the total's device, detached."""
    count_t = torch.as_tensor(count, dtype=torch.float64, device=total.device)
    return MetricSum(total.detach().double(), count_t)


@dataclass(frozen=True)
class PenaltySetup:
    """What a regulariser may use to build its penalty."""

    trainee: "Trainee"
    variant: str
    theta0: Mapping[str, torch.Tensor]  # the encoder's parameters at theta_0 (visual keys), read-only; empty unless needs_theta0
    datasets: Sequence[Dataset]  # the train splits of `Regularizer.data_tasks(settings)`, in order
    references: Mapping["RunId", "TaskVector"]  # the task vectors of `references(settings)`, same model and task
    cache: Path  # a folder for what the regulariser derives from theta_0 and data (shared by the model's runs; write atomically)
    seed: int
    start_step: int
    rank: int
    world: int
    num_workers: int


class Regularizer(Plugin[OptionsT, SettingsT]):
    variants: ClassVar[tuple[str, ...]] = (DEFAULT_VARIANT,)  # the first is the default (no name suffix)
    default_mode: ClassVar[str]  # the name of the mode used when --mode is not given
    needs_tangent: ClassVar[bool] = False  # the term reads J_theta0 f(x) . (theta - theta_0): keep a frozen copy
    needs_theta0: ClassVar[bool] = False  # the term reads theta_0's weights (PenaltySetup.theta0)

    def data_tasks(self, settings: SettingsT) -> tuple[str, ...]:
        """Tasks whose train inputs the penalty reads."""
        return ()

    def references(self, settings: SettingsT) -> tuple["RunId", ...]:
        """Runs (same model and task) whose finished weights the penalty reads, as task vectors."""
        return ()

    def step_cost(self, settings: SettingsT) -> StepCost:
        """Image passes the term adds to one step (its inputs through J_theta0 f)."""
        return StepCost()

    def setup_cost(self, settings: SettingsT) -> StepCost:
        """Image passes spent once before training (e.g. estimating curvature at theta_0)."""
        return StepCost()

    @abstractmethod
    def build(self, settings: SettingsT, setup: PenaltySetup) -> Penalty | None:
        """The run's penalty; None adds nothing to the objective."""
