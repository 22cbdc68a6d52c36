"""A study, resolved once into one typed, serialisable value: which model, tasks, recipes and
evaluations, where everything lives, and the settings passed to every run and evaluation.

Everything that runs a study (the local executor, its worker processes, Slurm jobs) reads the
same `Study`; it crosses process boundaries as JSON (`to_json` / `from_json`), never as argv.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..data.registry import smallest_suite
from ..errors import UserError
from ..evaluation.registry import EVALUATIONS, study_param_values
from ..models.factory import ModelSpec
from ..paths import Layout
from ..recipes import MODES, REGULARIZERS, EvaluatedRun, Group, Recipe, RecipeContext, RunId, recipe
from ..recipes.registry import recipe_of
from ..training.config import FinetuneConfig

# Every plug-in option name: a passed-through option reaches only the runs whose plug-ins own it.
ALL_OPTION_NAMES = frozenset(n for p in (*MODES.values(), *REGULARIZERS.values()) for n in p.option_names())


@dataclass(frozen=True)
class Study:
    spec: ModelSpec
    tasks: tuple[str, ...]
    recipes: tuple[Recipe, ...]
    evaluations: tuple[str, ...]
    layout: Layout
    data_location: Path
    eval_params: Mapping[str, Any] = field(default_factory=dict)  # study-level evaluation parameters (evaluation/spec.py)
    device: str = "auto"
    progress: bool = True
    finetune: Mapping[str, Any] = field(default_factory=dict)  # FinetuneConfig fields and plug-in options, passed to every run
    eval_limit: int | None = None
    eval_batch_size: int = 128
    eval_workers: int = 0
    precision: str = "auto"  # fine-tuning and evaluation alike (task_arithmetic/precision.py); each process resolves "auto" on its device
    decode_cache: bool = True  # images decoded once for every run and evaluation (data/decoded.py)

    # -- what it trains ---------------------------------------------------------------------------
    @property
    def control(self) -> str | None:
        return self.eval_params.get("control")

    def trainings(self) -> tuple[RunId, ...]:
        """The runs the study fine-tunes (per task), each once: the runs a recipe requires (e.g.
        the tau-Jp runs matched-strength L2-SP reads) before the recipe's own, in recipe order."""
        return tuple(dict.fromkeys(run for r in self.recipes if r.trains for run in (*r.requires, r.run)))

    def training_recipe(self, run: RunId) -> Recipe:
        """The study's recipe that trains `run`, else the registered one (a required run), else none."""
        found = next((r for r in self.recipes if r.trains and r.run == run), None)
        return found or recipe_of(EvaluatedRun.natural(run)) or Recipe(run.name, run, run.readout, Group.EXPERIMENT, run.describe())

    def finetune_config(self, task: str, run: RunId) -> FinetuneConfig:
        """The fine-tuning of `run` on `task`: the recipe's study options, then the passed-through
        flags (a flag the user gave wins), keeping only the plug-in options this run's plug-ins own."""
        ctx = RecipeContext(self.tasks, task, self.control, smallest_suite(self.tasks),
                            lambda run: str(self.layout.finetuned(self.spec.model_id, task, run.name)))
        owned = set(run.mode.option_names()) | set(run.reg.option_names())
        passed = {k: v for k, v in self.finetune.items() if k not in ALL_OPTION_NAMES or k in owned}
        merged = {**self.training_recipe(run).options(ctx), **passed}
        options = {k: v for k, v in merged.items() if k in ALL_OPTION_NAMES}
        common = {k: v for k, v in merged.items() if k not in ALL_OPTION_NAMES}
        return FinetuneConfig(
            task=task, model=self.spec.name, pretrained=self.spec.pretrained, cache_dir=self.spec.cache_dir, run=run.name,
            options=options, device=self.device, data_location=str(self.data_location),
            checkpoint_root=str(self.layout.checkpoint_root), results_root=str(self.layout.results_root), progress=self.progress,
            precision=self.precision, decode_cache="on" if self.decode_cache else "off", **common,
        )

    def params(self, evaluation: str) -> Any:
        """The evaluation's typed parameters at the study's settings."""
        return EVALUATIONS[evaluation].params_from(self.eval_params)

    def recipe(self, name: str) -> Recipe:
        found = next((r for r in self.recipes if r.name == name), None)
        if found is None:
            raise UserError(f"the study has no recipe '{name}'; valid: {', '.join(r.name for r in self.recipes)}")
        return found

    # -- serialised ---------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.spec.name, "pretrained": self.spec.pretrained, "cache_dir": self.spec.cache_dir,
            "tasks": list(self.tasks), "recipes": [r.name for r in self.recipes], "evaluations": list(self.evaluations),
            "checkpoint_root": str(self.layout.checkpoint_root), "results_root": str(self.layout.results_root),
            "data_location": str(self.data_location), "eval_params": dict(self.eval_params), "device": self.device,
            "progress": self.progress, "finetune": {k: list(v) if isinstance(v, tuple) else v for k, v in self.finetune.items()},
            "eval_limit": self.eval_limit, "eval_batch_size": self.eval_batch_size, "eval_workers": self.eval_workers,
            "precision": self.precision, "decode_cache": self.decode_cache,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Study":
        from ..embedded.weights import ensure_weight_tag

        ensure_weight_tag(data["pretrained"])  # a replicate's pretraining-seed weights, in a fresh process
        return cls(
            spec=ModelSpec(data["model"], data["pretrained"], data["cache_dir"]),
            tasks=tuple(data["tasks"]),
            recipes=tuple(recipe(name) for name in data["recipes"]),
            evaluations=tuple(data["evaluations"]),
            layout=Layout(Path(data["checkpoint_root"]), Path(data["results_root"])),
            data_location=Path(data["data_location"]),
            eval_params=study_param_values(dict(data["eval_params"])),
            device=data["device"],
            progress=data["progress"],
            finetune={k: tuple(v) if isinstance(v, list) else v for k, v in data["finetune"].items()},
            eval_limit=data["eval_limit"],
            eval_batch_size=data["eval_batch_size"],
            eval_workers=data["eval_workers"],
            precision=data.get("precision", "auto"),
            decode_cache=data.get("decode_cache", True),
        )
