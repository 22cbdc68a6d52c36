"""The tau-Jp regulariser (Yoshida et al. 2025):

    penalty_coef * mean_x || J_theta0 f(x) . (theta - theta_0) ||_2

over inputs x of OTHER tasks (labels unused); f is the embedding before normalisation and the
norm is not squared. Which tasks feed a step depends on the variant:
  efficient  one penalty task per step, round-robin (the default);
  strict     every penalty task every step (one batch each, averaged);
  continual  only tasks learned earlier in --task-order, plus the control task, round-robin like
             efficient (incremental learning: future tasks are unknown). The first task of the order
             has no earlier task: it is regularised on the control task alone (the one set every
             recipe may read), and trains without a penalty when the benchmark has no control.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..data.registry import benchmark_names, benchmark_tasks, control_task, get_task, parse_task_list
from ..errors import UserError
from ..lazy import torch  # imported on first use: every script's parser reads the plug-ins
from .base import Context, Penalty, PenaltyInputs, PenaltySetup, PenaltyTerm, Readout, Regularizer, Settings, StepCost, finite, metric, need, option
from .basic import Linear, NoRegularizer, Standard
from .identity import Group, Recipe, RecipeContext, RunId, check_tag

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from ..data.sampling import PenaltyStream

FROM_FRACTION = 0.25  # tau-Jp from existing fine-tuned models: this fraction of the original steps (our choice)

PAPER_COEF = 0.1
PAPER_BATCH, LARGE_MODEL_BATCH = 16, 4  # ViT-L needs a smaller penalty batch to fit in memory (protocol.md)


@dataclass(frozen=True)
class TauJpOptions:
    penalty_coef: float | None = option("tau-Jp coefficient (default 0.1)")
    penalty_batch: int | None = option("penalty inputs per task per step (default 16, 4 for ViT-L)", int)
    penalty_tasks: tuple[str, ...] | None = option("comma-separated; default: the benchmark's other tasks + its control task", tasks=True)
    task_order: tuple[str, ...] | None = option("comma-separated learning order, for --variant continual", tasks=True)


@dataclass(frozen=True)
class TauJpSettings(Settings):
    penalty_coef: float
    penalty_batch: int
    penalty_tasks: tuple[str, ...]
    task_order: tuple[str, ...] | None  # the learning order; only for variant continual
    variant: str  # which penalty tasks feed each step (the module docstring)


def tasks_for_step(variant: str, step: int, n_tasks: int) -> list[int]:
    """Indices (into the penalty task list) whose inputs feed the penalty at optimiser step `step`."""
    if variant == "strict":
        return list(range(n_tasks))
    return [step % n_tasks]


def draws_done(variant: str, step: int, slot: int, n_tasks: int) -> int:
    """Penalty batches task `slot` has supplied before `step`: where its stream resumes."""
    from ..data.sampling import draws_before  # torch's samplers: imported on first use

    return step if variant == "strict" else draws_before(step, slot, n_tasks)


def tau_jp_sum(tangent: torch.Tensor) -> torch.Tensor:
    """Sum over inputs of ||J f(x) . delta||_2 (callers divide by the global input count)."""
    return torch.linalg.vector_norm(tangent.flatten(1), dim=1).sum()


@dataclass
class PenaltySource:
    """Serves each step's penalty inputs for this process, deterministically by step."""

    variant: str
    streams: list[PenaltyStream]
    batch: int  # global inputs per task per step

    @classmethod
    def create(
        cls, variant: str, datasets: Sequence[Dataset], batch: int, seed: int, start_step: int, rank: int, world: int, num_workers: int
    ) -> "PenaltySource":
        from ..data.sampling import PenaltyStream  # torch's samplers: imported on first use

        n = len(datasets)
        streams = [
            PenaltyStream(ds, batch, seed=seed + 7919 * (slot + 1), start_draw=draws_done(variant, start_step, slot, n),
                          rank=rank, world=world, num_workers=num_workers)
            for slot, ds in enumerate(datasets)
        ]
        return cls(variant, streams, batch)

    def inputs_for_step(self, step: int) -> tuple[torch.Tensor | None, int]:
        """(this process's penalty inputs, global number of penalty inputs) for optimiser step `step`."""
        from ..data.sampling import stack_nonempty

        slots = tasks_for_step(self.variant, step, len(self.streams))
        return stack_nonempty([self.streams[s].next_inputs() for s in slots]), self.batch * len(slots)


class TauJpPenalty(Penalty):
    metrics = ("tau_jp",)

    def __init__(self, coef: float, source: PenaltySource):
        self.coef, self.source = coef, source

    def inputs_for_step(self, step: int) -> PenaltyInputs:
        inputs, count = self.source.inputs_for_step(step)
        return PenaltyInputs(inputs, count)

    def term(self, trainee: Any, tangent: torch.Tensor | None, inputs: PenaltyInputs | None, world: int) -> PenaltyTerm:
        if tangent is None or inputs is None:  # this process drew no penalty inputs this step
            zero = torch.zeros((), device=trainee.device)
            return PenaltyTerm(zero, {"tau_jp": metric(zero, 0.0)})
        norm_sum = tau_jp_sum(tangent)
        return PenaltyTerm(self.coef * norm_sum * (world / inputs.global_count), {"tau_jp": metric(norm_sum, float(tangent.shape[0]))})

    def record(self, means: dict[str, float]) -> dict[str, float]:
        return {"tau_jp": means["tau_jp"], "penalty": self.coef * means["tau_jp"]}


class TauJp(Regularizer[TauJpOptions, TauJpSettings]):
    name = "tau_jp"
    summary = "τJp reg."
    options = TauJpOptions
    variants = ("efficient", "strict", "continual")
    default_mode = "linear"  # as the paper does
    needs_tangent = True

    def recipes(self) -> tuple[Recipe, ...]:
        run = RunId(Linear(), self)
        return (
            Recipe("tau_jp", run, Readout.LINEARIZED, Group.PAPER, "τJp (linear FT + τJp reg.)", study_options=_study_suite),
            # incremental learning: tasks arrive in the study's order, future ones unknown
            Recipe("tau_jp_continual", RunId(Linear(), self, "continual"), Readout.LINEARIZED, Group.EXPERIMENT,
                   "τJp, incremental (earlier tasks + control only)", study_options=_study_order),
            # from existing fine-tuned models: the standard runs (or, @TAG, the runs tagged TAG) continued
            # with the penalty on, standard-mode tau-Jp (the JVP of the non-linear model at theta_0)
            FromFinetuned("tau_jp_from", RunId(Standard(), self, tag="from"), Readout.NONLINEAR, Group.EXPERIMENT,
                          f"τJp from fine-tuned models (standard FT continued, {FROM_FRACTION:g} of its steps)",
                          requires=(RunId(Standard(), NoRegularizer()),)),
            # the intervention: each task regularised against exactly one partner task (a fixed pairing)
            Recipe("tau_jp_paired", RunId(Linear(), self, tag="paired"), Readout.LINEARIZED, Group.EXPERIMENT,
                   "τJp against one partner task", study_options=_study_partner),
        )

    def resolve(self, options: TauJpOptions, ctx: Context) -> TauJpSettings:
        coef = options.penalty_coef if options.penalty_coef is not None else ctx.default("penalty_coef", PAPER_COEF)
        batch = options.penalty_batch if options.penalty_batch is not None else ctx.default("penalty_batch", PAPER_BATCH, LARGE_MODEL_BATCH)
        finite(coef, "penalty_coef")
        need(batch >= 1, f"--penalty-batch must be >= 1, got {batch}")
        tasks, order = _penalty_tasks(options, ctx)
        return TauJpSettings(penalty_coef=float(coef), penalty_batch=int(batch), penalty_tasks=tasks, task_order=order, variant=ctx.variant)

    def data_tasks(self, settings: TauJpSettings) -> tuple[str, ...]:
        return settings.penalty_tasks

    def step_cost(self, settings: TauJpSettings) -> StepCost:
        per_step = len(settings.penalty_tasks) if settings.variant == "strict" else min(1, len(settings.penalty_tasks))
        return StepCost(linearized=settings.penalty_batch * per_step)

    def build(self, settings: TauJpSettings, setup: PenaltySetup) -> Penalty | None:
        if not setup.datasets:  # continual tau-Jp's first task without a control set: nothing to regularise on
            return None
        # Penalty batches are small: one loader worker per penalty task keeps them ahead of the
        # step without starting num_workers processes for every task.
        source = PenaltySource.create(setup.variant, setup.datasets, settings.penalty_batch, setup.seed, setup.start_step,
                                      setup.rank, setup.world, min(setup.num_workers, 1))
        return TauJpPenalty(settings.penalty_coef, source)


def _penalty_tasks(options: TauJpOptions, ctx: Context) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """The tasks whose inputs feed the penalty, and the task order for continual runs."""
    task = ctx.task
    if ctx.variant == "continual":
        if options.task_order is None:
            raise UserError("--variant continual needs --task-order T1,T2,... (the penalty uses the tasks learned before this one)")
        if options.penalty_tasks is not None:
            raise UserError("--variant continual takes its penalty tasks from --task-order; drop --penalty-tasks")
        order = tuple(parse_task_list(list(options.task_order)))
        if task not in order:
            raise UserError(f"--task-order {','.join(order)} does not contain the task {task}; add it at its place in the order")
        control = control_task(ctx.benchmark)
        earlier = order[: order.index(task)] + ((control,) if control is not None and control not in order else ())
        return earlier, order

    if options.task_order is not None:
        raise UserError("--task-order only applies to --variant continual; drop it or add --variant continual")
    benchmark = ctx.benchmark
    names_suite = options.penalty_tasks is not None and len(options.penalty_tasks) == 1 and options.penalty_tasks[0] in benchmark_names()
    if options.penalty_tasks is not None and not names_suite:
        chosen = tuple(dict.fromkeys(parse_task_list(list(options.penalty_tasks))))
        if task in chosen:
            raise UserError(f"--penalty-tasks contains the task being fine-tuned ({task}); the penalty uses OTHER tasks' inputs, so remove it")
    else:
        # `--penalty-tasks real20` means what the default means for a task of real20: the suite's
        # other tasks and its control (a real8 task trained for the 20-task study needs this).
        benchmark = options.penalty_tasks[0] if options.penalty_tasks is not None else benchmark
        control = control_task(benchmark)
        others = [t for t in benchmark_tasks(benchmark) if t != task]
        chosen = tuple(others + ([control] if control is not None and control != task else []))
    if not chosen:
        raise UserError(f"--reg tau_jp needs inputs from other tasks but benchmark {benchmark} has no task besides {task}; pass --penalty-tasks or drop --reg")
    return chosen, None


def _study_suite(ctx: RecipeContext) -> Mapping[str, Any]:
    """A study spanning a larger suite than the task's own (a real8 task in a real20 study) draws
    the penalty's inputs from that suite's other tasks and control, not from the task's suite."""
    wider = ctx.suite is not None and ctx.suite != get_task(ctx.task).benchmark
    return {"penalty_tasks": (ctx.suite,)} if wider else {}


@dataclass(frozen=True)
class FromFinetuned(Recipe):
    """`tau_jp_from@TAG` continues the runs tagged TAG (e.g. imported public checkpoints) and,
    unlike other tagged recipes, trains: its runs are tagged from_TAG."""

    source_tag: str = ""

    def tagged(self, tag: str) -> "Recipe":
        check_tag(tag, f"the tag of '{self.name}@{tag}'")
        # the tagged runs it continues are made elsewhere (imported): nothing required of the study
        return dataclasses.replace(self, name=f"{self.name}@{tag}", run=self.run.tagged(f"from_{tag}"), source_tag=tag, requires=())

    def options(self, ctx: RecipeContext) -> dict[str, Any]:
        source = RunId(Standard(), NoRegularizer(), tag=self.source_tag)
        return {"init_from": ctx.run_weights(source), "steps_fraction": FROM_FRACTION, **dict(self.fixed)}


def pairing(tasks: Sequence[str], control: str | None) -> dict[str, str]:
    """Each task's one partner: the tasks in a fixed shuffled order (seed 0), consecutive ones
    paired; with an odd count the task left over is paired with the control set (or, without one,
    regularised against the first task of the order, one-sidedly)."""
    order = list(tasks)
    random.Random(0).shuffle(order)
    partner = {}
    for a, b in zip(order[0::2], order[1::2]):
        partner[a], partner[b] = b, a
    if len(order) % 2:
        partner[order[-1]] = control if control is not None else order[0]
    return partner


def _study_partner(ctx: RecipeContext) -> Mapping[str, Any]:
    return {"penalty_tasks": (pairing(ctx.tasks, ctx.control)[ctx.task],)}


def _study_order(ctx: RecipeContext) -> Mapping[str, Any]:
    """The incremental recipe learns the study's tasks in the study's order."""
    return {"task_order": ctx.tasks}


PLUGINS = (TauJp(),)
