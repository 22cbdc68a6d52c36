"""The eval scripts: run-locating arguments, results files with their settings, missing runs."""

import json
import subprocess
import sys

import pytest
from toyworld import isolated_toy_world

from report import main as report_main  # src/report.py, the entry script (conftest puts src/ on the path)
from task_arithmetic.errors import UserError
from task_arithmetic.evaluation.cli import main


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with isolated_toy_world(tmp_path_factory.mktemp("toy"), n_val=8, n_test=8) as toy:
        yield toy


def argv(world, *extra):
    return [
        "--model", "TinyCLIP", "--pretrained", "none", "--checkpoint-root", str(world.layout.checkpoint_root),
        "--results-root", str(world.layout.results_root), "--data-location", str(world.data_location),
        "--device", "cpu", "--num-workers", "0", *extra,
    ]


def test_scripts_write_results_with_settings(world):
    written = {}
    for evaluation, extra in [
        ("single_task", ["--mode", "linear", "--tasks", "toy"]),
        ("addition", ["--mode", "linear", "--tasks", "toy"]),
        ("negation", ["--mode", "posthoc", "--tasks", "Toy0,Toy1", "--control-ratio", "1.01"]),
        ("tau_jp", ["--mode", "standard", "--tasks", "toy"]),
        ("disentanglement", ["--mode", "linear", "--tasks", "toy", "--pairs", "Toy0+Toy2", "--grid-points", "3"]),
        ("pairs", ["--mode", "standard", "--tasks", "Toy0,Toy1"]),
    ]:
        written[evaluation] = main(evaluation, argv(world, *extra))
    for evaluation, path in written.items():
        assert path.parent.parent.name == "TinyCLIP-random" and path.name == f"{evaluation}.json"
        payload = json.loads(path.read_text())
        settings = payload["settings"]
        assert payload["evaluation"] == evaluation and settings["model_id"] == "TinyCLIP-random"
        assert settings["run"] == path.parent.name and settings["mode"] in ("standard", "linear", "posthoc")
        assert set(settings["vectors"]) == set(settings["tasks"]) and all(v["seed"] == 0 for v in settings["vectors"].values())
        assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert written["negation"].parent.name == "posthoc"
    negation = json.loads(written["negation"].read_text())["results"]
    assert negation["average"]["targets_without_admissible_alpha"] == ["Toy0", "Toy1"]  # floor above zero-shot: reported, no crash
    tau_jp = json.loads(written["tau_jp"].read_text())["results"]
    assert tau_jp["datasets"] == ["Toy0", "Toy1", "Toy2", "ToyControl"] and len(tau_jp["matrix"]) == 3
    assert json.loads(written["addition"].read_text())["settings"]["evaluator"] == "tangent_cache"
    assert json.loads(written["pairs"].read_text())["settings"]["evaluator"] == "batched"
    # standard and post-hoc tau-Jp tangents were cached under the standard runs' results folder
    assert (world.layout.results_root / "TinyCLIP-random" / "standard" / "tangent_cache").is_dir()

    # the report gathers whatever exists, including the disentanglement heat map
    report_main(["--model", "TinyCLIP", "--pretrained", "none", "--results-root", str(world.layout.results_root)])
    folder = world.layout.report_dir("TinyCLIP-random")
    assert (folder / "disentanglement_linear_Toy0_Toy2.png").is_file() and (folder / "tau_jp_standard.png").is_file()
    assert "| linear (linear FT) tuned |" in (folder / "report.md").read_text()


def test_missing_run_names_the_finetune_command(world):
    with pytest.raises(UserError) as err:
        main("addition", argv(world, "--mode", "linear", "--reg", "tau_jp", "--tasks", "toy"))
    message = str(err.value)
    assert "linear-tau_jp" in message and "does not exist" in message
    assert "python src/finetune.py --task Toy0 --model TinyCLIP --pretrained none --run linear-tau_jp" in message
    assert "likewise for Toy1, Toy2" in message


def test_shell_wrapper_reports_missing_run_in_one_line(tmp_path, repo_root):
    out = subprocess.run(
        ["bash", "scripts/eval_negation.sh", "--model", "TinyCLIP", "--pretrained", "none", "--tasks", "MNIST,SVHN",
         "--mode", "posthoc", "--checkpoint-root", str(tmp_path / "ck"), "--results-root", str(tmp_path / "res")],
        cwd=repo_root, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: fine-tuned run ")
    assert "/MNIST/standard/finetuned.safetensors does not exist" in lines[0]
    assert "python src/finetune.py --task MNIST" in lines[0] and "--run standard " in lines[0]
