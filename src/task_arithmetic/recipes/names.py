"""Run names: the modes, regularisers and variants that exist, and the folder each recipe gets.

    <mode>[-<reg>[_<variant>]][-<tag>]      e.g. standard, linear-tau_jp, standard-tau_jp_strict

The default variant of a regulariser gets no suffix. Besides the training modes of the registry
there is one evaluation-only mode, `posthoc`: the standard runs' task vectors evaluated in the
linearised model. Training, evaluation and the model pools validate names here and nowhere else.
"""

from __future__ import annotations

from ..errors import UserError
from . import MODES, REGULARIZERS
from .base import DEFAULT_VARIANT

# evaluation-only mode -> the training mode whose runs it reads
EVAL_ONLY_MODES: dict[str, str] = {"posthoc": "standard"}


def training_modes() -> tuple[str, ...]:
    return tuple(MODES)


def evaluation_modes() -> tuple[str, ...]:
    return (*MODES, *EVAL_ONLY_MODES)


def regularizers() -> tuple[str, ...]:
    return tuple(REGULARIZERS)


def all_variants() -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for r in REGULARIZERS.values() for v in r.variants))


def source_mode(mode: str) -> str:
    """The training mode whose runs an evaluation in `mode` reads (posthoc -> standard)."""
    return EVAL_ONLY_MODES.get(mode, mode)


def evaluated_linearized(mode: str) -> bool:
    """Evaluated as f(x; theta_0) + J(x) tau: the linearly trained runs and post-hoc."""
    return mode in EVAL_ONLY_MODES or MODES[mode].linearized


def default_mode(reg: str) -> str:
    return REGULARIZERS[reg].default_mode


def check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"unknown {flag} '{value}'; choose one of {', '.join(choices)}")


def check_recipe(mode: str, reg: str, variant: str, evaluation: bool = True) -> None:
    """One-line UserError for a name that is not a recipe (evaluation: posthoc is allowed)."""
    if not evaluation and mode in EVAL_ONLY_MODES:
        raise UserError(f"--mode {mode} is evaluation-only; fine-tune with --mode {EVAL_ONLY_MODES[mode]} and evaluate its task vector linearised")
    check_choice("--mode", mode, evaluation_modes() if evaluation else training_modes())
    check_choice("--reg", reg, regularizers())
    if variant not in REGULARIZERS[reg].variants:
        check_choice("--variant", variant, all_variants())
        raise UserError(f"--variant {variant} only applies to --reg {_owner(variant)}; add --reg {_owner(variant)} or drop --variant")


def _owner(variant: str) -> str:
    return next(name for name, r in REGULARIZERS.items() if variant in r.variants)


def run_name(mode: str, reg: str = "none", variant: str = DEFAULT_VARIANT, tag: str = "") -> str:
    """Folder name of a fine-tuning recipe."""
    name = mode
    if reg != "none":
        name += f"-{reg}"
        if variant != REGULARIZERS[reg].variants[0]:
            name += f"_{variant}"
    if tag:
        name += f"-{tag}"
    return name


def describe(mode: str, reg: str) -> str:
    """Human description for reports, from the plug-ins' summaries."""
    base = "non-linear FT, post-hoc linearised" if mode == "posthoc" else MODES[mode].summary
    return base if reg == "none" else f"{base} + {REGULARIZERS[reg].summary}"


def parse_run_name(run: str) -> tuple[str, str, str, str] | None:
    """(mode, reg, variant, tag) of a folder name made by run_name; None if it is not one."""
    mode, _, rest = run.partition("-")
    if mode not in evaluation_modes():
        return None
    if not rest:
        return mode, "none", DEFAULT_VARIANT, ""
    head, _, tag = rest.partition("-")
    for reg, plugin in REGULARIZERS.items():
        if reg == "none":
            continue
        for variant in plugin.variants:
            if run_name(mode, reg, variant) == f"{mode}-{head}":
                return mode, reg, variant, tag
    return mode, "none", DEFAULT_VARIANT, rest  # a tagged run without a regulariser
