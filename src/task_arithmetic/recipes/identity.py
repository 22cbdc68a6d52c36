"""Typed identities built from the plug-in registry: a run, a run as evaluated, a study recipe.

    RunId           one fine-tuning run: its mode and regulariser plug-ins, variant and tag;
                    its folder name is <mode>[-<reg>[_<variant>]][-<tag>] (parse and format here)
    EvaluatedRun    a run read out in a given way (Readout): linear runs linearised, the others
                    non-linearly, and any non-linear run also linearised "post hoc"
    Recipe          what the study's --recipes names: the runs it trains (or reads), how they are
                    evaluated, the options the study sets for them, its group (paper / field / ...)

Every script, the study, the Slurm graph, the pools, the report and the claims carry these values;
names are parsed and formatted here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ..errors import UserError
from .base import Mode, Readout, Regularizer

POSTHOC = "posthoc"  # the evaluation-only spelling: a non-linear run read out linearised
TAG_CHARACTERS = "_.+"  # besides letters and digits; never '-', which separates the name's parts


@dataclass(frozen=True)
class Names:
    """What names exist: handed over by the registry once it has loaded the plug-ins (registry.py
    imports the plug-in modules, which import this module, so this module cannot import it)."""

    MODES: Mapping[str, Mode[Any, Any]]
    REGULARIZERS: Mapping[str, Regularizer[Any, Any]]
    NO_REGULARIZER: str

    def default_mode_name(self) -> str:
        return next(iter(self.MODES))  # plain fine-tuning, which post-hoc linearisation reads by default

    def mode(self, name: str) -> Mode[Any, Any]:
        if name not in self.MODES:
            extra = f" (evaluation scripts also take {POSTHOC})" if name != POSTHOC else "; --mode posthoc only applies to evaluation"
            raise UserError(f"unknown --mode '{name}'; choose one of {', '.join(self.MODES)}{extra}")
        return self.MODES[name]

    def regularizer(self, name: str) -> Regularizer[Any, Any]:
        if name not in self.REGULARIZERS:
            raise UserError(f"unknown --reg '{name}'; choose one of {', '.join(self.REGULARIZERS)}")
        return self.REGULARIZERS[name]

    def reserved_words(self) -> frozenset[str]:
        """Names a tag may not take: they would read as part of a run name."""
        variants = {v for r in self.REGULARIZERS.values() for v in r.variants}
        return frozenset({*self.MODES, *self.REGULARIZERS, *variants, POSTHOC})


_names: Names | None = None


def bind(names: Names) -> None:
    global _names
    _names = names


def _registry() -> Names:
    if _names is None:  # cannot happen through the package: recipes/__init__ loads the registry first
        raise RuntimeError("the recipe registry is not loaded; import task_arithmetic.recipes")
    return _names


def check_tag(tag: str, what: str = "--tag") -> None:
    if tag and not all(c.isalnum() or c in TAG_CHARACTERS for c in tag):
        raise UserError(f"{what} '{tag}' may only contain letters, digits, '_', '.' and '+' (it becomes part of a folder name)")
    if tag and tag in _registry().reserved_words():
        raise UserError(f"{what} '{tag}' is the name of a recipe plug-in or variant, which would make run names ambiguous; choose another tag")


@dataclass(frozen=True)
class RunId:
    """One fine-tuning run of a model and task, identified by the plug-ins that train it."""

    mode: Mode
    reg: Regularizer
    variant: str = ""  # "": the regulariser's default (first) variant
    tag: str = ""

    def __post_init__(self) -> None:
        if not self.variant:
            object.__setattr__(self, "variant", self.reg.variants[0])
        if self.variant not in self.reg.variants:
            owners = [r.name for r in _registry().REGULARIZERS.values() if self.variant in r.variants]
            if not owners:
                raise UserError(f"unknown --variant '{self.variant}'; --reg {self.reg.name} has {', '.join(self.reg.variants)}")
            raise UserError(f"--variant {self.variant} only applies to --reg {owners[0]}; add --reg {owners[0]} or drop --variant")
        check_tag(self.tag)

    # -- names ----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The run's folder name under checkpoints/<model_id>/<task>/."""
        return _format(self.mode.name, self)

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, name: str) -> "RunId":
        evaluated = EvaluatedRun.parse(name)
        if evaluated.readout is not evaluated.run.readout:
            raise UserError(f"'{name}' names a post-hoc evaluation of the run {evaluated.run.name}, not a fine-tuning run; use {evaluated.run.name}")
        return evaluated.run

    @classmethod
    def of(cls, mode: str | None = None, reg: str | None = None, variant: str | None = None, tag: str = "") -> "RunId":
        """From flag values; a missing mode is the regulariser's default mode (linear for tau_jp),
        so the same flags name the same run in training and evaluation."""
        registry = _registry()
        reg_plugin = registry.regularizer(reg or registry.NO_REGULARIZER)
        mode_plugin = registry.mode(mode or reg_plugin.default_mode)
        return cls(mode_plugin, reg_plugin, variant or reg_plugin.variants[0], tag)

    # -- what it is -----------------------------------------------------------------------------
    @property
    def readout(self) -> Readout:
        return self.mode.readout

    def tagged(self, tag: str) -> "RunId":
        return dataclasses.replace(self, tag=tag)

    def untagged(self) -> "RunId":
        return dataclasses.replace(self, tag="")

    def describe(self) -> str:
        """For reports: the plug-ins' summaries."""
        base = self.mode.summary
        text = base if self.reg.name == _registry().NO_REGULARIZER else f"{base} + {self.reg.summary}"
        if self.variant != self.reg.variants[0]:
            text += f" ({self.variant})"
        return text


def _format(first: str, run: RunId) -> str:
    name = first
    if run.reg.name != _registry().NO_REGULARIZER:
        name += f"-{run.reg.name}"
        if run.variant != run.reg.variants[0]:
            name += f"_{run.variant}"
    if run.tag:
        name += f"-{run.tag}"
    return name


@dataclass(frozen=True)
class EvaluatedRun:
    """A run as an evaluation reads it out. Its name is the results folder under
    results/<model_id>/: the run's own name, or `posthoc[_<mode>]...` for a non-linear run read
    out linearised (`posthoc` alone: the standard run)."""

    run: RunId
    readout: Readout

    def __post_init__(self) -> None:
        if self.run.readout is Readout.LINEARIZED and self.readout is Readout.NONLINEAR:
            raise UserError(f"the linear run {self.run.name} is only evaluated linearised")

    @classmethod
    def natural(cls, run: RunId) -> "EvaluatedRun":
        return cls(run, run.readout)

    @property
    def posthoc(self) -> bool:
        return self.readout is not self.run.readout

    @property
    def name(self) -> str:
        if not self.posthoc:
            return self.run.name
        default = _registry().default_mode_name()
        return _format(POSTHOC if self.run.mode.name == default else f"{POSTHOC}_{self.run.mode.name}", self.run)

    def __str__(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"{self.run.describe()}, post-hoc linearised" if self.posthoc else self.run.describe()

    @classmethod
    def parse(cls, name: str) -> "EvaluatedRun":
        """From a run or results folder name; one UserError naming the valid forms otherwise."""
        found = try_parse(name)
        if found is None:
            raise UserError(
                f"'{name}' is not a run name; run names are <mode>[-<reg>[_<variant>]][-<tag>] with a mode of "
                f"{', '.join(_registry().MODES)} (or {POSTHOC}) and a regulariser of {', '.join(_registry().REGULARIZERS)}"
            )
        return found


def try_parse(name: str) -> EvaluatedRun | None:
    """The EvaluatedRun a folder name made by this module stands for; None if it is not one."""
    registry = _registry()
    first, _, rest = name.partition("-")
    readout = None
    if first == POSTHOC:
        first, readout = registry.default_mode_name(), Readout.LINEARIZED
    elif first.startswith(f"{POSTHOC}_"):
        first, readout = first[len(POSTHOC) + 1 :], Readout.LINEARIZED
    if first not in registry.MODES:
        return None
    mode = registry.MODES[first]
    head, _, tail = rest.partition("-")
    reg, variant, tag = registry.REGULARIZERS[registry.NO_REGULARIZER], "", rest
    for candidate in registry.REGULARIZERS.values():
        for v in candidate.variants:
            suffix = candidate.name if v == candidate.variants[0] else f"{candidate.name}_{v}"
            if head == suffix:
                reg, variant, tag = candidate, v, tail
    try:
        run = RunId(mode, reg, variant, tag)
        return EvaluatedRun(run, readout or run.readout)
    except UserError:
        return None


def from_flags(mode: str | None, reg: str | None, variant: str | None, tag: str, run: str | None) -> EvaluatedRun:
    """What a script's run-locating flags name. `--run NAME` names it whole (a run or results
    folder name); `--mode/--reg/--variant/--tag` name it by parts, a missing mode being the
    regulariser's default mode (so `--reg tau_jp` is linear-tau_jp in every script), and
    `--mode posthoc` the standard run read out linearised. Both at once must agree."""
    by_parts: EvaluatedRun | None = None
    if mode is not None or reg is not None or variant is not None or tag:
        linearized = mode == POSTHOC
        base = RunId.of(_registry().default_mode_name() if linearized else mode, reg, variant, tag)
        by_parts = EvaluatedRun(base, Readout.LINEARIZED if linearized else base.readout)
    if run is None:
        return by_parts if by_parts is not None else EvaluatedRun.natural(RunId.of())
    named = EvaluatedRun.parse(run)
    if by_parts is not None and by_parts != named:
        raise UserError(f"--run {run} and --mode/--reg/--variant/--tag (which name {by_parts.name}) disagree; give one of them")
    return named


# ----------------------------------------------------------------------------------------------
# study recipes


class Group(enum.Enum):
    """Which study sets include a recipe (`--recipes all` includes every group)."""

    PAPER = "paper"  # the default study: the tau-Jp paper's recipes
    FIELD = "field"  # the field's recipes the paper is compared with
    EXPERIMENT = "experiment"  # the paper's further experiments


@dataclass(frozen=True)
class RecipeContext:
    """What a recipe's study options may depend on."""

    tasks: tuple[str, ...]  # the study's tasks, in its order
    task: str  # the run's task
    control: str | None  # the study's control task
    suite: str | None  # the smallest benchmark holding every study task (None: no benchmark does)
    run_weights: Callable[[RunId], str]  # the weights file of a run of this task, in this study's layout


StudyOptions = Callable[[RecipeContext], Mapping[str, Any]]


def no_options(ctx: RecipeContext) -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class Recipe:
    """A study recipe: the runs it trains (or, tagged, only reads) and how it is evaluated."""

    name: str
    run: RunId
    readout: Readout
    group: Group
    summary: str  # the report's description
    study_options: StudyOptions = field(default=no_options, compare=False)  # plug-in options the study sets per run
    trains: bool = True  # False: it reads runs made elsewhere (tagged, e.g. imported ones)
    requires: tuple[RunId, ...] = field(default=(), compare=False)  # runs its runs read, which the study trains first
    fixed: tuple[tuple[str, float], ...] = ()  # plug-in options a sweep point sets (swept)

    @property
    def evaluated(self) -> EvaluatedRun:
        return EvaluatedRun(self.run, self.readout)

    def options(self, ctx: RecipeContext) -> dict[str, Any]:
        return {**self.study_options(ctx), **dict(self.fixed)}

    def swept(self, option: str, value: float) -> "Recipe":
        """This recipe with one plug-in option set (a point of `--sweep option=...`), on runs of their own."""
        owned = (*self.run.mode.option_names(), *self.run.reg.option_names())
        if option not in owned:
            raise UserError(f"--sweep {option}: the recipe {self.name} has no such option (its runs take {', '.join(owned) or 'none'})")
        if not self.trains:
            raise UserError(f"--sweep cannot sweep {self.name}: it reads runs made elsewhere")
        tag = sweep_tag(option, value)
        return dataclasses.replace(self, name=f"{self.name}~{option}={value:g}", run=self.run.tagged(tag), fixed=(*self.fixed, (option, value)))

    def tagged(self, tag: str) -> "Recipe":
        """`name@tag`: the same recipe on the runs tagged `tag` (e.g. imported), which the study
        reads but never trains."""
        check_tag(tag, f"the tag of '{self.name}@{tag}'")
        return dataclasses.replace(self, name=f"{self.name}@{tag}", run=self.run.tagged(tag), trains=False, requires=())


def sweep_tag(option: str, value: float) -> str:
    """The run tag of a sweep point: the option's name and value (a '-' of the value written 'm')."""
    return f"{option}{value:g}".replace("-", "m")


def parse_sweep_tag(tag: str, options: Sequence[str]) -> tuple[str, float] | None:
    """(option, value) of a tag made by sweep_tag, for one of these option names; None otherwise."""
    for option in sorted(options, key=len, reverse=True):
        if tag.startswith(option):
            try:
                return option, float(tag[len(option):].replace("m", "-"))
            except ValueError:
                return None
    return None
