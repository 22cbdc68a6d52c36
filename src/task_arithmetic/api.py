"""The suite as a library: fine-tune, open a model's runs, build and apply task vectors, measure
accuracy, merge and run the registered evaluations, without the scripts (docs/api.md).

    import task_arithmetic as ta
    ta.finetune("Digits", model="TinyCLIP", pretrained="embedded", max_steps=100)
    runs = ta.open_runs("TinyCLIP", "embedded", run="standard", tasks="embedded")
    tau = ta.combine(runs.task_vectors().values())
    print(runs.accuracy(tau.apply_to(runs.theta0, 0.3), "Digits"))

Everything here names runs, paths and tasks exactly as the scripts do (the same run names, the
same checkpoints/ and results/ layout, the same registries), so results made either way mix.
The built-in plug-ins register themselves on first use: no set-up call is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from . import flags
from .errors import UserError
from .paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_DATA_LOCATION, DEFAULT_RESULTS_ROOT, Layout

if TYPE_CHECKING:
    from torch import nn

    from .evaluation.session import EvalSession
    from .merging.modelpool.runs import RunModelPool
    from .models.encoder import ImageEncoder
    from .vectors.task_vector import TaskVector

__all__ = ["Runs", "finetune", "open_runs"]


def finetune(task: str, *, model: str = "ViT-B-32", pretrained: str | None = "openai", run: str | None = None,
             checkpoint_root: str | Path = DEFAULT_CHECKPOINT_ROOT, data_location: str | Path = DEFAULT_DATA_LOCATION,
             **settings: Any) -> Path:
    """Fine-tune `task` as the run named `run` (e.g. "linear-tau_jp"; None: standard fine-tuning)
    and return its weights file.

    `settings` are src/finetune.py's flags by field name (max_steps=..., lr=..., seed=..., and a
    recipe's own options such as penalty_coef=...); a finished run is skipped, an interrupted one
    resumed. A stop signal leaves the state saved and raises UserError saying so."""
    import dataclasses

    from .training import FinetuneConfig, run_finetune

    known = {f.name for f in dataclasses.fields(FinetuneConfig)}
    options = {k: v for k, v in settings.items() if k not in known}
    plain = {k: v for k, v in settings.items() if k in known}
    cfg = FinetuneConfig(task=task, model=model, pretrained=_pretrained(pretrained), run=run, checkpoint_root=str(checkpoint_root),
                         data_location=str(data_location), options=options, **{"progress": False, **plain})
    result = run_finetune(cfg)
    if result.status == "preempted":
        raise UserError(f"fine-tuning {task} ({cfg.run_id().name}) was stopped at step {result.steps}; its state is saved, call finetune again to resume")
    return result.path


def open_runs(model: str, pretrained: str | None, run: str, tasks: str | Sequence[str], *,
              checkpoint_root: str | Path = DEFAULT_CHECKPOINT_ROOT, results_root: str | Path = DEFAULT_RESULTS_ROOT,
              data_location: str | Path = DEFAULT_DATA_LOCATION, device: str = "auto", max_eval_samples: int | None = None,
              cache_dir: str | None = None) -> "Runs":
    """A model's finished runs of one recipe on `tasks` (a list or a benchmark name), read out as
    that run is (`run="posthoc"` reads the standard runs linearised). A missing run is a UserError
    naming the src/finetune.py command that makes it."""
    from .data.registry import parse_task_list
    from .evaluation.session import EvalOptions, EvalSession, RunSelection
    from .models.factory import ModelSpec
    from .recipes.identity import EvaluatedRun

    spec = ModelSpec(model, _pretrained(pretrained), cache_dir)
    selection = RunSelection(spec, Layout(Path(checkpoint_root), Path(results_root)), Path(data_location), EvaluatedRun.parse(run),
                             tuple(parse_task_list(tasks)))
    return Runs(EvalSession(selection, EvalOptions(device=device, max_eval_samples=max_eval_samples)))


class Runs:
    """One model's runs of one recipe: theta_0, the task vectors, accuracy of any weights of the
    encoder (read out as the runs are: linearised around theta_0 for linear and post-hoc runs),
    the runs as a merging model pool, and the registered evaluations."""

    def __init__(self, session: "EvalSession"):
        self.session = session

    @property
    def tasks(self) -> list[str]:
        return list(self.session.tasks)

    @property
    def theta0(self) -> "ImageEncoder":
        """The pre-trained image encoder (read-only: apply task vectors with TaskVector.apply_to)."""
        return self.session.theta0

    @property
    def checkpoints(self) -> dict[str, Path]:
        """{task: the run's finetuned.safetensors}."""
        return dict(self.session.checkpoints)

    def task_vectors(self) -> dict[str, "TaskVector"]:
        """{task: tau_t = theta_t - theta_0}."""
        from .vectors.task_vector import TaskVector

        return {t: TaskVector.from_checkpoints(pretrained=self.session.theta0_path, finetuned=p) for t, p in self.session.checkpoints.items()}

    def accuracy(self, model: "nn.Module", task: str, split: str = "test") -> float:
        """Accuracy of `model` (an encoder of this architecture: theta_0 + alpha tau, a merge) on
        `task`'s Val part ("val") or test set ("test"), with the task's zero-shot head."""
        if split not in ("val", "test"):
            raise UserError(f"split must be 'val' or 'test', got {split!r}")
        return self.session.model_accuracy(model, task, split)

    def finetuned_accuracy(self, task: str, split: str = "test") -> float:
        """The task's own fine-tuned model: what normalised accuracy divides by."""
        return self.session.finetuned_accuracy(task, split)

    def model_pool(self) -> "RunModelPool":
        """The runs as a FusionBench-style model pool ('_pretrained_' and one model per task) for
        any task_arithmetic.merging algorithm's run()."""
        return self.session.model_pool()

    def evaluate(self, evaluation: str, force: bool = False, **params: Any) -> tuple[Path, Any]:
        """Run a registered evaluation (single_task, addition, negation, ...) with its parameters by
        field name and write its results file as src/evaluate.py does: (path, typed result)."""
        from .evaluation.cli import check_evaluation, run_evaluation
        from .evaluation.registry import EVALUATIONS

        check_evaluation(evaluation)
        spec = EVALUATIONS[evaluation]
        unknown = set(params) - {f.name for f in spec.fields()}
        if unknown:
            raise UserError(f"evaluation {evaluation} has no parameter {', '.join(sorted(unknown))}; its parameters: "
                            f"{', '.join(f.name for f in spec.fields()) or 'none'}")
        return run_evaluation(evaluation, self.session, spec.params_from(params), force)


def _pretrained(value: str | None) -> str | None:
    return None if value is None else flags.pretrained(value)
