"""Hugging Face hub copies of the real tasks, offline: small copies in each repository's own layout
(tests/hubfixtures.py, written with `datasets` and tarfile) read through the real code path with
the hub switched off (HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1), from --data-location/hf/ and from
the Hugging Face cache; class-name checks, split fingerprints, the leak check, and the download
command with its one network call (snapshot_download) replaced by a fake that copies files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import hubfixtures as fx
import pytest

from task_arithmetic.data.real import DATASETS, tool
from task_arithmetic.data.real import hub as hub_module
from task_arithmetic.data.splits import load_dataset
from task_arithmetic.errors import UserError

REPO = Path(__file__).resolve().parents[1]
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def run_tool(args: list[str], home: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE, "HF_HOME": str(home), "PYTHONPATH": str(REPO / "src"), **(env_extra or {})}
    env.pop("HF_HUB_CACHE", None), env.pop("HF_DATASETS_CACHE", None)
    return subprocess.run([sys.executable, str(REPO / "src/prepare_datasets.py"), *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def isolated_hf(tmp_path, monkeypatch):
    """In-process reads: the Arrow cache and the hub cache under tmp_path, nothing shared."""
    import datasets
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-home" / "datasets"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    monkeypatch.setattr(hub_module, "_LOADED", {})
    from task_arithmetic.data import fingerprints

    monkeypatch.setattr(fingerprints, "_CACHE", {})
    return tmp_path / "hf-home"


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """DTD (plain parquet), SVHN (a config folder), FER2013 (webdataset, renamed columns), Food101
    (test = the validation split) and PCAM (bool labels) under data/hf/<owner>/<name>/."""
    data = tmp_path_factory.mktemp("hub") / "data"
    written = {
        "DTD": fx.dtd(data / "hf/tanganke/dtd"),
        "SVHN": fx.svhn(data / "hf/ufldl-stanford/svhn"),
        "FER2013": fx.fer2013(data / "hf/clip-benchmark/wds_fer2013"),
        "Food101": fx.food101(data / "hf/ethz/food101"),
        "PCAM": fx.pcam(data / "hf/1aurent/PatchCamelyon"),
    }
    return data, written


def test_each_kind_of_copy_reads_offline_through_the_cli(copies, tmp_path):
    data, written = copies
    done = run_tool(["check", "--data-location", str(data), "--tasks", "DTD,SVHN,FER2013,Food101,PCAM", "--counts", "--fingerprints"], tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr  # 3 of 47 DTD classes etc. are flagged by --counts
    out = done.stdout
    assert "SVHN" in out and "ready (hub copy ufldl-stanford/svhn/cropped_digits in --data-location" in out
    assert "20 train / 10 test images, 10 classes" in out  # extra split and full_numbers left out
    assert "FER2013" in out and "21 train / 7 test images, 7 classes" in out
    assert "Food101       incomplete (hub copy ethz/food101 in --data-location" in out and "3 classes found, the full Food101 has 101" in out
    assert "PCAM" in out and "10 train / 4 test images, 2 classes" in out
    assert "DTD" in out and "20 train / 10 test images, 47 classes" in out
    assert out.count("fingerprints: train ") == 4  # the ready ones (Food101 is flagged incomplete)
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("task", ["DTD", "SVHN", "FER2013", "Food101", "PCAM"])
def test_labels_travel_with_their_images_in_every_split(copies, isolated_hf, task):
    data, written = copies
    train = load_dataset(task, "train", data)
    val = load_dataset(task, "val", data)
    test = load_dataset(task, "test", data)
    assert len(train) + len(val) == len(written[task]["train"]) and len(test) == len(written[task]["test"])
    for split in (train, val, test):
        for index in range(len(split)):
            image, label = split[index]
            assert image.mode == "RGB" and fx.label_of(image) == label


def test_class_names_follow_each_copys_label_order(copies, isolated_hf):
    data, _ = copies
    names = {task: DATASETS[task].load_classnames(data) for task in ("DTD", "SVHN", "FER2013", "Food101", "PCAM")}
    assert names["DTD"][:3] == ["banded", "blotchy", "braided"] and len(names["DTD"]) == 47
    assert names["SVHN"] == [str(d) for d in range(10)]
    # The copy orders FER2013 alphabetically: the suite's names in that order, not the CSV's.
    assert names["FER2013"] == ["angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised"]
    assert names["Food101"] == ["apple pie", "baby back ribs", "baklava"]
    assert names["PCAM"] == ["lymph node", "lymph node containing metastatic tumor tissue"]


def test_a_copy_in_the_hugging_face_cache_is_read_offline(tmp_path):
    fx.dtd(tmp_path / "made" / "dtd")
    snapshot = fx.hub_cache_copy(tmp_path / "made" / "dtd", tmp_path / "home" / "hub", "tanganke/dtd")
    (tmp_path / "data").mkdir()
    done = run_tool(["check", "--data-location", str(tmp_path / "data"), "--tasks", "DTD", "--counts"], tmp_path / "home")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"hub copy tanganke/dtd in the Hugging Face cache ({snapshot})" in done.stdout and "20 train / 10 test images, 47 classes" in done.stdout


def test_the_local_layout_wins_over_a_hub_copy(tmp_path, isolated_hf):
    from fakedata import make_mnist

    make_mnist(tmp_path)
    fx.simple(tmp_path / "hf/ylecun/mnist", [str(d) for d in range(10)], 10, seed=20, n_train=30)
    assert len(load_dataset("MNIST", "test", tmp_path)) == 10  # the idx files' 10, not the copy's 6
    assert DATASETS["MNIST"].source(tmp_path).startswith("local layout")
    shutil.rmtree(tmp_path / "MNIST")
    assert len(load_dataset("MNIST", "test", tmp_path)) == 6 and "hub copy ylecun/mnist" in DATASETS["MNIST"].source(tmp_path)


def test_label_names_that_do_not_match_the_class_list_are_refused(tmp_path, isolated_hf):
    fx.simple(tmp_path / "hf/tanganke/eurosat", list(fx.EUROSAT_FOLDERS), 10, seed=30)
    assert DATASETS["EuroSAT"].load_classnames(tmp_path)[:2] == ["annual crop land", "forest"]  # folder names accepted
    shutil.rmtree(tmp_path / "hf/tanganke/eurosat")
    hub_module._LOADED.clear()
    fx.simple(tmp_path / "hf/tanganke/eurosat", ["Forest", "AnnualCrop", *fx.EUROSAT_FOLDERS[2:]], 10, seed=30)
    assert DATASETS["EuroSAT"].load_classnames(tmp_path)[:2] == ["forest", "annual crop land"]  # the copy's order
    fx.simple(tmp_path / "hf/tanganke/gtsrb", [f"sign {i}" for i in range(43)], 43, seed=31)
    with pytest.raises(UserError, match=r"GTSRB: the tanganke/gtsrb copy's label names do not match the suite's class list \('sign 0'"):
        DATASETS["GTSRB"].load_classnames(tmp_path)
    fx.simple(tmp_path / "hf/tanganke/emnist_letters", None, 27, seed=32, n_train=30)  # labels 0..26: one too many
    with pytest.raises(UserError, match=r"EMNIST: the tanganke/emnist_letters copy's labels run 0\.\.26, but EMNIST has 26 classes"):
        DATASETS["EMNIST"].load_classnames(tmp_path)
    fx.simple(tmp_path / "hf/tanganke/stl10", [str(i) for i in range(10)], 10, seed=33)  # names taken from the data must name something
    with pytest.raises(UserError, match=r"STL10: the tanganke/stl10 copy's label names are only indices"):
        DATASETS["STL10"].load_classnames(tmp_path)


def test_the_fingerprint_changes_when_one_example_moves(tmp_path, isolated_hf):
    from task_arithmetic.data import fingerprints

    folder = tmp_path / "hf/tanganke/dtd"
    written = fx.dtd(folder)
    before = fingerprints.task_fingerprints("DTD", tmp_path)
    fingerprints._CACHE.clear()
    assert fingerprints.task_fingerprints("DTD", tmp_path) == before  # deterministic
    moved = written["test"][0]
    shutil.rmtree(folder / "data")
    fx.write_parquet(folder / "data/train-00000-of-00001.parquet", written["train"] + [moved], fx.DTD_NAMES)
    fx.write_parquet(folder / "data/test-00000-of-00001.parquet", written["test"][1:], fx.DTD_NAMES)
    hub_module._LOADED.clear()
    fingerprints._CACHE.clear()
    after = fingerprints.task_fingerprints("DTD", tmp_path)
    assert after["test"]["fingerprint"] != before["test"]["fingerprint"] and after["test"]["n"] == before["test"]["n"] - 1
    assert after["train"]["fingerprint"] != before["train"]["fingerprint"] or after["val"]["fingerprint"] != before["val"]["fingerprint"]
    assert after["train"]["n"] + after["val"]["n"] == before["train"]["n"] + before["val"]["n"] + 1


def test_the_leak_check_finds_a_planted_duplicate(tmp_path, isolated_hf):
    folder = tmp_path / "data/hf/tanganke/dtd"
    written = fx.dtd(folder)
    (clean,) = tool.check(tmp_path / "data", ["DTD"], leaks=True)
    assert clean.ready and clean.notes == ["leaks: no test image is identical to a train image"]
    planted = written["test"][:4] + [written["train"][7]] + written["test"][5:]  # test #4 is train #7
    fx.write_parquet(folder / "data/test-00000-of-00001.parquet", planted, fx.DTD_NAMES)
    done = run_tool(["check", "--data-location", str(tmp_path / "data"), "--tasks", "DTD", "--leaks"], tmp_path / "home")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("DTD           leaks (hub copy tanganke/dtd in --data-location")
    assert "): 1 test image(s) identical to train images: test #4 = train #7 (labels 7/7)\n" in done.stdout


def test_fusionbench_ta8_configs_run_unchanged_on_hub_copies(tmp_path, isolated_hf):
    """FusionBench's TA8 model and task pool configs, unchanged, evaluating on hub copies of the eight."""
    import torch
    from test_merging_fusionbench_configs import TA8, TEXT, VISION, common, merge_main
    from transformers import CLIPConfig, CLIPModel, CLIPVisionModel

    hf = tmp_path / "data/hf"
    fx.simple(hf / "tanganke/sun397", ["abbey", "airplane_cabin", "alley"], 3, seed=60)
    fx.simple(hf / "tanganke/stanford_cars", ["AM General Hummer SUV 2000", "Acura RL Sedan 2012"], 2, seed=61)
    fx.simple(hf / "tanganke/resisc45", ["airplane", "airport", "baseball_diamond"], 3, seed=62)
    fx.simple(hf / "tanganke/eurosat", list(fx.EUROSAT_FOLDERS), 10, seed=63)
    fx.svhn(hf / "ufldl-stanford/svhn")
    fx.simple(hf / "tanganke/gtsrb", [str(i) for i in range(43)], 43, seed=64)
    fx.simple(hf / "ylecun/mnist", [str(d) for d in range(10)], 10, seed=65)
    fx.dtd(hf / "tanganke/dtd")
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=16)).eval().save_pretrained(tmp_path / "clip")
    model = CLIPVisionModel.from_pretrained(tmp_path / "clip")
    base = {k: v.clone() for k, v in model.state_dict().items()}
    for seed, task in enumerate(TA8, start=1):
        gen = torch.Generator().manual_seed(seed)
        model.load_state_dict({k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in base.items()})
        model.save_pretrained(tmp_path / task)
    models = [f"modelpool.models._pretrained_={tmp_path / 'clip'}"] + [f"modelpool.models.{t}={tmp_path / t}" for t in TA8]
    report = merge_main(
        ["method=task_arithmetic", "method.scaling_factor=0.3", "modelpool=CLIPVisionModelPool/clip-vit-base-patch32_TA8", *models]
        + common(tmp_path, "CLIPVisionModelTaskPool/clip-vit-classification_TA8", "ta8.json")
    )
    assert set(report["results"]) == {*TA8, "average"} and report["taskpool"]["splits"] == {t: "test" for t in TA8}
    provenance = report["taskpool"]["data_fingerprints"]  # the merge report records which copies it read
    assert provenance["SVHN"]["source"].startswith("hub copy ufldl-stanford/svhn/cropped_digits") and provenance["SVHN"]["test"]["n"] == 10
    assert report["results"]["svhn"]["n"] == 10 and report["results"]["dtd"]["n"] == 10  # the copies' test splits


# -- download, with the network call replaced ------------------------------------------------------


class FakeHub:
    """Stands in for huggingface_hub.snapshot_download: copies the repository's files matching
    allow_patterns into local_dir, skipping those already there (as a resumed download does);
    `fail_after` files it raises, like a dropped connection."""

    def __init__(self, repos: dict[str, Path], fail_after: int | None = None):
        self.repos, self.fail_after, self.calls = repos, fail_after, []

    def __call__(self, repo_id: str, repo_type: str, local_dir: str, allow_patterns: list[str]):
        import fnmatch

        assert repo_type == "dataset"
        self.calls.append(repo_id)
        source, copied = self.repos[repo_id], 0
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            relative = path.relative_to(source).as_posix()
            target = Path(local_dir) / relative
            if not any(fnmatch.fnmatch(relative, pattern) for pattern in allow_patterns) or target.exists():
                continue
            if self.fail_after is not None and copied >= self.fail_after:
                raise ConnectionError("connection reset by peer")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            copied += 1
        return local_dir


@pytest.fixture
def hub_repos(tmp_path):
    remote = tmp_path / "remote"
    fx.dtd(remote / "dtd")
    fx.svhn(remote / "svhn")
    fx.simple(remote / "gtsrb-wrong", [f"sign {i}" for i in range(43)], 43, seed=40)
    return {"tanganke/dtd": remote / "dtd", "ufldl-stanford/svhn": remote / "svhn", "tanganke/gtsrb": remote / "gtsrb-wrong"}


def test_download_plans_fetches_and_skips_what_is_there(tmp_path, hub_repos, isolated_hf, capsys):
    data = tmp_path / "data"
    assert tool.download(data, ["DTD", "SVHN", "ImageNet"], dry_run=True, snapshot=FakeHub(hub_repos))
    planned = capsys.readouterr().out
    assert "DTD: fetch tanganke/dtd, about 0.63 GB -> " in planned and "ImageNet: ImageNet is gated on the hub and is never downloaded" in planned
    assert not data.exists()  # a dry run writes nothing

    fake = FakeHub(hub_repos)
    assert tool.download(data, ["DTD", "SVHN", "ImageNet"], progress=False, snapshot=fake)
    out = capsys.readouterr().out
    assert "DTD: fetched tanganke/dtd -> " in out and "(20 train / 10 test images, 47 classes)" in out
    assert "SVHN: fetched ufldl-stanford/svhn" in out and "(20 train / 10 test images, 10 classes)" in out
    svhn = data / "hf/ufldl-stanford/svhn"
    assert sorted(p.relative_to(svhn).as_posix() for p in svhn.rglob("*") if p.is_file()) == [
        "README.md", "cropped_digits/test-00000-of-00001.parquet", "cropped_digits/train-00000-of-00001.parquet"]  # fmt: skip
    assert not (data / "hf/.partial").exists() or not any((data / "hf/.partial").rglob("*.parquet"))
    assert len(load_dataset("SVHN", "val", data)) == 2

    again = FakeHub(hub_repos)
    assert tool.download(data, ["DTD", "SVHN"], progress=False, snapshot=again)
    assert again.calls == [] and "DTD: ready (hub copy tanganke/dtd in --data-location" in capsys.readouterr().out


def test_an_interrupted_download_leaves_nothing_readable_and_resumes(tmp_path, hub_repos, isolated_hf, capsys):
    data = tmp_path / "data"
    assert not tool.download(data, ["SVHN"], progress=False, snapshot=FakeHub(hub_repos, fail_after=1))
    line = capsys.readouterr().out.strip()
    staging = data / "hf/.partial/ufldl-stanford/svhn"
    assert line == (
        f"SVHN: download of ufldl-stanford/svhn failed (ConnectionError: connection reset by peer); the partial download stays in {staging}: "
        "run the same command again to resume"
    )
    assert len([p for p in staging.rglob("*") if p.is_file()]) == 1 and not (data / "hf/ufldl-stanford/svhn").exists()
    with pytest.raises(UserError, match="SVHN data not found under --data-location .* or fetch its hub copy"):
        load_dataset("SVHN", "test", data)

    resumed = FakeHub(hub_repos)
    assert tool.download(data, ["SVHN"], progress=False, snapshot=resumed)
    assert "resuming" not in capsys.readouterr().out and resumed.calls == ["ufldl-stanford/svhn"]
    assert len(load_dataset("SVHN", "test", data)) == 10 and not staging.exists()


def test_a_downloaded_copy_with_other_classes_is_refused_and_kept_aside(tmp_path, hub_repos, isolated_hf, capsys):
    data = tmp_path / "data"
    assert not tool.download(data, ["GTSRB"], progress=False, snapshot=FakeHub(hub_repos))
    out = capsys.readouterr().out
    assert out.startswith("GTSRB: the downloaded tanganke/gtsrb copy was refused: UserError: GTSRB: the tanganke/gtsrb copy's label names do not match")
    assert not (data / "hf/tanganke/gtsrb").exists() and (data / "hf/.partial/tanganke/gtsrb/data/train-00000-of-00001.parquet").is_file()


def test_download_without_the_switch_is_one_line(tmp_path, monkeypatch, capsys):
    from prepare_datasets import main

    monkeypatch.delenv("TA_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(SystemExit) as stopped:
        main(["download", "--tasks", "DTD", "--data-location", str(tmp_path / "data")])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == "error: downloads are off; re-run with TA_ALLOW_DOWNLOAD=1 on a machine with internet access"
    assert not (tmp_path / "data").exists()


def test_models_results_and_report_carry_the_split_fingerprints(smoke_study):
    """Provenance on the embedded smoke study (shared fixture): every fine-tuned model, every
    result file and the report carry each task's train/Val/test fingerprints, and they agree."""
    import json
    import re

    cfg, _ = smoke_study
    model = "TinyCLIP-embedded-smoke"
    metas = [json.loads(p.read_text()) for p in (cfg.checkpoint_root / model).glob("*/*/finetuned.json")]
    assert metas
    for meta in metas:
        entry = meta["data_fingerprints"][meta["task"]]
        assert {"train", "val", "test"} <= set(entry) and re.fullmatch(r"[0-9a-f]{16}", entry["train"]["fingerprint"])
    from task_arithmetic.evaluation.registry import EVALUATIONS

    results = [json.loads(p.read_text()) for p in (cfg.results_root / model).glob("*/*.json") if p.parent.name != "report" and p.stem in EVALUATIONS]
    assert results and all("data_fingerprints" in r["settings"] for r in results)
    by_task = {}
    for r in results:
        for task, entry in r["settings"]["data_fingerprints"].items():
            by_task.setdefault(task, set()).add(json.dumps(entry, sort_keys=True))
    for meta in metas:
        by_task[meta["task"]].add(json.dumps(meta["data_fingerprints"][meta["task"]], sort_keys=True))
    assert all(len(v) == 1 for v in by_task.values()), by_task  # one split per task across runs and evaluations
    report = (cfg.results_root / model / "report" / "report.md").read_text()
    assert "## Data splits" in report and "different splits" not in report
    some = next(iter(by_task))
    assert f"| {some} | registered task (embedded) | {json.loads(next(iter(by_task[some])))['train']['fingerprint'][:8]}" in report


def test_the_report_names_a_task_read_with_different_splits():
    from task_arithmetic.reporting.provenance import provenance_lines
    from task_arithmetic.reporting.table import RunResults

    def entry(test_fp: str) -> dict:
        return {"source": "hub copy tanganke/dtd", **{p: {"n": 5, "fingerprint": fp * 16} for p, fp in (("train", "a"), ("val", "b"), ("test", test_fp))}}

    runs = {}
    for name, test_fp in (("standard", "c"), ("linear", "d")):
        run = RunResults(name, None)
        run.payloads["single_task"] = {"settings": {"data_fingerprints": {"DTD": entry(test_fp)}, "vectors": {"DTD": {"data_fingerprints": {"DTD": entry("c")}}}}}
        runs[name] = run
    text = "\n".join(provenance_lines(runs))
    assert "| DTD | hub copy tanganke/dtd | aaaaaaaa (5) | bbbbbbbb (5) | cccccccc (5) |" in text and "| dddddddd (5) |" in text
    assert "**DTD was read with different splits** (groups: linear fine-tuning, standard fine-tuning, standard/single_task; linear/single_task)" in text
