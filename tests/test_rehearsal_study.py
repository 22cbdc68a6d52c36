"""A rehearsal of the real path: src/run_study.py on the real loaders, with fakes of the eight
datasets and ImageNet in their real on-disk formats and realistic image sizes (tests/rehearsal.py)
through the real 224 px transforms, on a real open_clip ViT-B-32 shrunk in width and depth, one
step per run: every recipe, every evaluation, the report.

It catches what the embedded world cannot: JPEG/PPM/idx/.mat decoding, class-name files, the
224 px transforms, ImageNet as the control task.
"""

import json

import pytest
from rehearsal import make_rehearsal_data, register_rehearsal_model

from run_study import main as run_study_main
from task_arithmetic.models.encoder import load_encoder

pytestmark = pytest.mark.slow
TASKS = ("Cars", "DTD", "EuroSAT", "GTSRB", "MNIST", "RESISC45", "SUN397", "SVHN")
RUNS = ("standard", "linear", "linear-tau_jp")
EVALUATED = ("standard", "posthoc", "linear", "linear-tau_jp")
EVALUATIONS = ("single_task", "addition", "negation", "pairs", "tau_jp", "disentanglement")


def test_the_real8_study_runs_end_to_end_on_real_formats(tmp_path, capsys):
    model = register_rehearsal_model()
    make_rehearsal_data(tmp_path / "data")
    ck, res = tmp_path / "ck", tmp_path / "res"
    run_study_main([
        "--model", model, "--pretrained", "none", "--tasks", "real8", "--data-location", str(tmp_path / "data"),
        "--checkpoint-root", str(ck), "--results-root", str(res), "--device", "cpu", "--no-progress",
        "--max-steps", "1", "--warmup", "0", "--batch-size", "4", "--penalty-batch", "2",
        "--evaluations", ",".join(EVALUATIONS),  # merging x recipe (AdaMerging's Adam steps) has its own smoke-study test
        "--alpha-step", "0.5", "--disentanglement-points", "3", "--eval-batch-size", "32", "--max-eval-samples", "24",
    ])
    model_id = f"{model}-random"
    zeroshot = load_encoder(ck / model_id / "zeroshot.safetensors")
    assert zeroshot.metadata["model_name"] == model
    assert {"ImageNet", *TASKS} <= {p.stem for p in (ck / model_id / "heads").glob("*.safetensors")}
    for task in TASKS:
        for run in RUNS:
            meta = json.loads((ck / model_id / task / run / "finetuned.json").read_text())
            assert meta["steps"] == 1, (task, run)
    for recipe in EVALUATED:
        for evaluation in EVALUATIONS:
            assert (res / model_id / recipe / f"{evaluation}.json").is_file(), (recipe, evaluation)
    negation = json.loads((res / model_id / "standard" / "negation.json").read_text())
    assert negation["params"]["control"] == "ImageNet"
    tau_jp = json.loads((res / model_id / "linear-tau_jp" / "tau_jp.json").read_text())
    assert tau_jp["params"]["control"] == "ImageNet" and tau_jp["results"]["datasets"] == [*TASKS, "ImageNet"]
    report = res / model_id / "report" / "report.md"
    assert "## Claims" in report.read_text() and "report: " in capsys.readouterr().out
