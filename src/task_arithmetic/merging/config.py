"""The merge CLI's configuration on Hydra/OmegaConf (FusionBench's config system), with the suite's
safety rules on top:

- configs come only from config/ (no `method=../../x`, no absolute names, no hydra.searchpath);
- `_target_` is never imported by Hydra: the suite instantiates from its allowlist (targets.py);
- unknown keys are errors, except the parameters the group's `_target_` class accepts
  (`method.inplace=true` works without `+`); every error is one UserError line.

Hydra is used through its compose API, never `@hydra.main`: it neither changes the working
directory nor configures logging, so the suite's outputs stay where they were.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from ..errors import UserError
from ..paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_DATA_LOCATION, DEFAULT_RESULTS_ROOT, REPO_ROOT
from .targets import parameters, target_class, target_of

CONFIG_ROOT = REPO_ROOT / "config"
GROUPS = ("method", "modelpool", "taskpool")
PATH_DEFAULTS = {
    "checkpoint_root": DEFAULT_CHECKPOINT_ROOT,
    "results_root": DEFAULT_RESULTS_ROOT,
    "data_location": DEFAULT_DATA_LOCATION,
}
CFG_CHOICES = ("job", "hydra", "all")


@dataclass
class CliRequest:
    """What the command line asks for: overrides, a multirun sweep, or printing the config."""

    overrides: list[str] = field(default_factory=list)
    multirun: bool = False
    cfg: str | None = None


def parse_command_line(argv: Sequence[str]) -> CliRequest:
    request = CliRequest()
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-m", "--multirun"):
            request.multirun = True
        elif arg in ("-c", "--cfg") or arg.startswith("--cfg="):
            value = arg.split("=", 1)[1] if "=" in arg else (args.pop(0) if args else "")
            if value not in CFG_CHOICES:
                raise UserError(f"--cfg takes one of {', '.join(CFG_CHOICES)}, got '{value}'; e.g. --cfg job")
            request.cfg = value
        elif arg.startswith("-"):
            raise UserError(f"unsupported option '{arg}'; supported: -m/--multirun, --cfg job|hydra|all, --help (configs come only from config/)")
        else:
            request.overrides.append(arg)
    return request


def available(group: str, root: Path = CONFIG_ROOT) -> list[str]:
    folder = Path(root) / group
    return sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml") if not p.name.startswith("_"))


def _null_groups(overrides: Sequence[str]) -> list[str]:
    """`taskpool=null` (the suite's and FusionBench's spelling) is Hydra's `~taskpool`."""
    out = []
    for line in overrides:
        key, _, value = line.partition("=")
        out.append(f"~{key}" if key in GROUPS and value.strip().lower() in ("", "null", "none") else line)
    return out


def _parse(overrides: Sequence[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    for line in overrides:
        if "=" not in line and not line.startswith("~"):
            raise UserError(f"argument '{line}' is not key=value; e.g. method=task_arithmetic method.scaling_factor=0.5")
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as err:
        raise UserError(f"cannot parse the overrides: {_first_line(err)}") from err


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines[:3]) if lines else type(err).__name__


def check_overrides(parsed: Sequence[Any]) -> None:
    """Refuse what would read configs from outside config/."""
    for override in parsed:
        key = override.key_or_group
        if key == "hydra.searchpath" or key.startswith("hydra.searchpath"):
            raise UserError("hydra.searchpath cannot be overridden: configs come only from config/")
        if key.split("@")[0] in GROUPS or key.lstrip("/").split("/")[0] in GROUPS:
            values = [override.value()] if not override.is_sweep_override() else list(override.sweep_string_iterator())
            for value in values:
                text = str(value)
                if ".." in text.split("/") or text.startswith(("/", "\\", "~")) or "\\" in text or ":" in text:
                    raise UserError(f"{key}={text}: config names are paths under config/{key}/ (no '..', no absolute paths); see --help")


def sweep(overrides: Sequence[str]) -> list[list[str]]:
    """The jobs of a multirun: the cartesian product of the comma-separated (sweep) overrides."""
    parsed = _parse(overrides)
    axes: list[list[str]] = []
    for override in parsed:
        if override.is_sweep_override():
            key = override.get_key_element()
            axes.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            axes.append([override.input_line])
    return [list(job) for job in itertools.product(*axes)]


def _compose(root: Path, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(Path(root).resolve()), version_base=None, job_name="merge"):
            return hydra_compose(config_name="merge", overrides=overrides, return_hydra_config=True)
    except MissingConfigException as err:
        group = next((g for g in GROUPS if f"'{g}/" in str(err) or f"{g}=" in str(err) or f"in '{g}'" in str(err)), None)
        choice = next((o.split("=", 1)[1] for o in overrides if group and o.lstrip("+~").startswith(f"{group}=")), "?")
        if group:
            raise UserError(f"unknown {group} config '{choice}'; available: {', '.join(available(group, root))}") from err
        raise UserError(f"config not found: {_first_line(err)}") from err
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        raise UserError(f"bad config or override: {_first_line(err)}") from err
    except yaml.YAMLError as err:  # e.g. a !!python/... tag: the safe loader refuses it, nothing ran
        raise UserError(f"a config under {root} is not plain YAML: {_yaml_problem(err)}; remove the tag or fix the file") from err


def _yaml_problem(err: Exception) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f"{mark.name}, line {mark.line + 1}" if mark is not None else "?"
    problem = getattr(err, "problem", None) or _first_line(err)
    return f"{problem} ({where})"


def _force_class_parameters(root: Path, overrides: list[str]) -> list[str]:
    """Check every plain `a.b=v` override names an existing key (one line listing the valid ones),
    and turn `group.param=v`, for a parameter of the group's class its YAML does not list, into `++`."""
    from omegaconf import DictConfig, OmegaConf

    parsed = _parse(overrides)

    def plain(o: Any) -> bool:
        key = o.key_or_group
        return o.type.name == "CHANGE" and not o.package and key not in GROUPS and not key.startswith("hydra.") and "/" not in key

    if not any(plain(o) for o in parsed):
        return list(overrides)  # group choices only: nothing to check, one composition saved
    choices_only = [o.input_line for o in parsed if o.key_or_group in GROUPS or o.key_or_group.startswith("hydra.")]
    base = _compose(root, choices_only)
    result = []
    for override, line in zip(parsed, overrides):
        key = override.key_or_group
        if not plain(override):
            result.append(line)
            continue
        parts = key.split(".")
        node: Any = base
        for depth, part in enumerate(parts):
            where = ".".join(parts[:depth]) or "the top level"
            if not isinstance(node, DictConfig):
                raise UserError(f"cannot set '{key}': {where} is not a mapping")
            valid = [k for k in node.keys() if k != "hydra"]
            if depth == 1 and parts[0] in GROUPS and target_of(parts[0], node) is not None:
                try:
                    valid += [p for p in parameters(target_class(parts[0], target_of(parts[0], node))) if p not in node]
                except UserError:
                    pass
            if part not in valid:
                last = depth == len(parts) - 1
                raise UserError(
                    f"unknown config key '{key}' ('{part}' is not in {where}); valid keys: {', '.join(map(str, valid))}"
                    + (f"; prefix with + to add a new key (+{key}=...)" if last else "")
                )
            if part not in node:  # a class parameter the YAML leaves at its default
                line = "++" + line
                break
            node = OmegaConf.select(node, part, throw_on_missing=False) if depth < len(parts) - 1 else None
        result.append(line)
    return result


def compose(argv: Sequence[str], root: Path = CONFIG_ROOT) -> tuple[dict[str, Any], dict[str, str | None]]:
    """(resolved config as plain containers, {group: chosen config name}) for one job."""
    config, choices, _hydra = compose_job(list(argv), root)
    return config, choices


def compose_job(overrides: list[str], root: Path = CONFIG_ROOT) -> tuple[dict[str, Any], dict[str, str | None], dict[str, Any]]:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = _null_groups(overrides)
    parsed = _parse(overrides)
    check_overrides(parsed)
    if any(o.is_sweep_override() for o in parsed):
        raise UserError("comma-separated values sweep only with -m (multirun), e.g. -m method.scaling_factor=0.1,0.3")
    cfg = _compose(root, _force_class_parameters(root, list(overrides)))
    choices_node = cfg.hydra.runtime.choices
    choices = {g: (str(choices_node[g]) if g in choices_node and choices_node[g] not in (None, "null") else None) for g in GROUPS}
    hydra_node = cast(dict[str, Any], OmegaConf.to_container(cfg.hydra, resolve=False))  # a DictConfig's container is a dict
    OmegaConf.set_struct(cfg, False)
    del cfg["hydra"]
    for group in GROUPS:
        if group not in cfg:
            cfg[group] = None
    for key, default in PATH_DEFAULTS.items():
        if cfg.get(key) is None:
            cfg[key] = str(default)
    if choices["method"] is None or choices["modelpool"] is None:
        raise UserError("a merge needs method=<name> and modelpool=<name>; only taskpool may be null")
    try:
        config = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))
    except OmegaConfBaseException as err:
        raise UserError(f"config interpolation failed: {_first_line(err)}") from err
    return config, choices, hydra_node


def config_yaml(config: dict[str, Any]) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(config))


__all__ = ["CONFIG_ROOT", "GROUPS", "CliRequest", "available", "compose", "compose_job", "config_yaml", "parse_command_line", "sweep"]
