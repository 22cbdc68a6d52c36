"""Hydra-like configuration without Hydra: group configs, dotted overrides, ${...} interpolation.

    python src/merge.py method=ties_merging method.threshold=10 modelpool=<name> taskpool=<name>

`config/merge.yaml` holds the program's defaults and the default choice of each group; a group
choice loads `config/<group>/<name>.yaml`. `a.b.c=value` overrides any existing key (values are
YAML: 0.5, null, [a, b], {k: v}); a key that does not exist is an error listing the valid ones,
except the parameters the group's `_target_` class accepts, and `+a.b=value` adds a new key.
`${a.b}` inside a value refers to another key of the whole config (absolute paths only).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError
from ..paths import DEFAULT_CHECKPOINT_ROOT, DEFAULT_DATA_LOCATION, DEFAULT_RESULTS_ROOT, REPO_ROOT
from .targets import TARGETS, parameters, target_class

CONFIG_ROOT = REPO_ROOT / "config"
GROUPS = ("method", "modelpool", "taskpool")
PATH_DEFAULTS = {
    "checkpoint_root": DEFAULT_CHECKPOINT_ROOT,
    "results_root": DEFAULT_RESULTS_ROOT,
    "data_location": DEFAULT_DATA_LOCATION,
}
_REFERENCE = re.compile(r"\$\{([^}]*)\}")


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML ({err}); fix the file") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping of keys, not a {type(data).__name__}")
    return data


def available(group: str, root: Path = CONFIG_ROOT) -> list[str]:
    folder = Path(root) / group
    return sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml") if not p.name.startswith("_"))


def load_group(group: str, name: str, root: Path = CONFIG_ROOT) -> dict[str, Any]:
    path = Path(root) / group / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"unknown {group} config '{name}'; available: {', '.join(available(group, root))}")
    return load_yaml(path)


def parse_value(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        # YAML 1.1 reads 1e-3 and nan as strings; a number is what the user meant.
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _valid_keys(node: dict[str, Any], prefix: list[str]) -> list[str]:
    keys = list(node)
    if len(prefix) == 1 and prefix[0] in GROUPS and "_target_" in node:
        keys += [p for p in parameters(target_class(prefix[0], node["_target_"])) if p not in node]
    return keys


def set_dotted(config: dict[str, Any], dotted: str, value: Any, add: bool = False) -> None:
    parts = dotted.split(".")
    if not all(parts):
        raise UserError(f"malformed override key '{dotted}'; write e.g. method.scaling_factor=0.5")
    node = config
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth]) or "the top level"
        if not isinstance(node, dict):
            raise UserError(f"cannot set '{dotted}': {where} is a {type(node).__name__}, not a mapping")
        last = depth == len(parts) - 1
        if part not in _valid_keys(node, parts[:depth]) and not (last and add):
            raise UserError(
                f"unknown config key '{dotted}' ('{part}' is not in {where}); valid keys: {', '.join(_valid_keys(node, parts[:depth]))}"
                + ("; prefix with + to add a new key" if last else "")
            )
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})


def resolve(config: dict[str, Any]) -> dict[str, Any]:
    """Replace ${a.b} references by the referenced values (whole-string references keep the type)."""

    def lookup(path: str, seen: frozenset[str]) -> Any:
        if path in seen:
            raise UserError(f"config interpolation ${{{path}}} refers to itself")
        if path.startswith("."):
            raise UserError(f"relative interpolation ${{{path}}} is not supported; write the full key, e.g. ${{taskpool.base_model}}")
        node: Any = config
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                raise UserError(f"config interpolation ${{{path}}} names no existing key")
            node = node[part]
        return walk(node, seen | {path})

    def walk(value: Any, seen: frozenset[str]) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, seen) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, seen) for v in value]
        if isinstance(value, str):
            whole = _REFERENCE.fullmatch(value)
            if whole:
                return lookup(whole.group(1), seen)
            return _REFERENCE.sub(lambda m: str(lookup(m.group(1), seen)), value)
        return value

    return walk(config, frozenset())


def compose(argv: Sequence[str], root: Path = CONFIG_ROOT) -> tuple[dict[str, Any], dict[str, str | None]]:
    """(resolved config, {group: chosen config name}) from the command line."""
    top = load_yaml(Path(root) / "merge.yaml")
    choices: dict[str, str | None] = {g: top.get(g) for g in GROUPS}
    overrides: list[tuple[str, Any, bool]] = []
    for arg in argv:
        if "=" not in arg:
            raise UserError(f"argument '{arg}' is not key=value; e.g. method=task_arithmetic method.scaling_factor=0.5")
        key, text = arg.split("=", 1)
        add = key.startswith("+")
        key = key.lstrip("+")
        if key in GROUPS:
            choices[key] = None if text.strip().lower() in ("", "null", "none") else text.strip()
        else:
            overrides.append((key, parse_value(text), add))
    if choices["method"] is None or choices["modelpool"] is None:
        raise UserError("a merge needs method=<name> and modelpool=<name>; only taskpool may be null")
    config = {k: v for k, v in top.items() if k not in GROUPS}
    for group in GROUPS:
        config[group] = load_group(group, choices[group], root) if choices[group] else None
    for key, value, add in overrides:
        set_dotted(config, key, value, add)
    for key, default in PATH_DEFAULTS.items():
        if config.get(key) is None:
            config[key] = str(default)
    return resolve(config), choices


__all__ = ["CONFIG_ROOT", "GROUPS", "TARGETS", "available", "compose", "load_group", "parse_value", "resolve", "set_dotted"]
