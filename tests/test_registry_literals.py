"""The recipe registry is the single source of truth: no recipe, mode, regulariser or variant
name is spelled as a string literal in the code outside src/task_arithmetic/recipes/ (docstrings
aside). Code elsewhere carries typed identities (RunId, EvaluatedRun, Recipe) built from it."""

import ast
from pathlib import Path

from task_arithmetic.recipes import MODES, RECIPES, REGULARIZERS
from task_arithmetic.recipes.identity import POSTHOC, try_parse
from task_arithmetic.recipes.registry import NO_REGULARIZER, all_variants

SRC = Path(__file__).resolve().parents[1] / "src"
RECIPES_DIR = SRC / "task_arithmetic" / "recipes"
# "none" also means "random weights" (--pretrained none) and GELU's approximate="none": it is
# refused only where it is compared with, or defaults, a regulariser.
NAMES = ({*MODES, *REGULARIZERS, *all_variants(), *RECIPES, POSTHOC} - {NO_REGULARIZER})
# FusionBench's own vocabulary, spelled like a variant: the "merged" model of a method that returns
# several (TSV-M's single-task models, TALL masks) is its key, not the tau-Jp variant.
FUSIONBENCH_WORDS = {"merged"}
MERGING_DIR = SRC / "task_arithmetic" / "merging"


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _evaluation_names(tree: ast.AST) -> set[int]:
    """An evaluation's own name, the first argument of Evaluation(...), is not a recipe name even
    where it is spelled like one (the tau_jp matrix)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Evaluation" and node.args:
            ids.add(id(node.args[0]))
    return ids


def _reg_none(tree: ast.AST) -> list[ast.Constant]:
    """"none" compared with, or given as the default of, something named like a regulariser."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
            if any(isinstance(p, ast.Constant) and p.value == NO_REGULARIZER for p in parts) and "reg" in ast.unparse(node):
                found += [p for p in parts if isinstance(p, ast.Constant)]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults)) + list(zip(args.kwonlyargs, args.kw_defaults))
            found += [d for a, d in pairs if isinstance(d, ast.Constant) and d.value == NO_REGULARIZER and "reg" in a.arg]
    return found


def literal_names(path: Path, root: Path = SRC) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree) | _evaluation_names(tree)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if MERGING_DIR in path.parents and node.value in FUSIONBENCH_WORDS:
                continue
            if node.value in NAMES or (node.value != NO_REGULARIZER and "-" in node.value and try_parse(node.value) is not None):
                hits.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    hits += [f"{path.relative_to(root)}:{c.lineno}: 'none' as a regulariser" for c in _reg_none(tree)]
    return hits


def test_no_recipe_name_is_spelled_outside_the_registry():
    files = [p for p in SRC.rglob("*.py") if RECIPES_DIR not in p.parents]
    assert len(files) > 50
    hits = [hit for path in files for hit in literal_names(path)]
    assert hits == [], "recipe names spelled outside recipes/ (use the typed identities of task_arithmetic.recipes):\n" + "\n".join(hits)


def test_the_check_finds_a_planted_literal(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('"""doc: linear-tau_jp is fine here."""\n\ndef f(reg="none"):\n    return reg == "none" or "linear-tau_jp"\n')
    hits = literal_names(planted, tmp_path)
    assert len(hits) == 3 and any("'linear-tau_jp'" in h for h in hits)
