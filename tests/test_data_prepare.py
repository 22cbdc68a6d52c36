"""The dataset tool (src/prepare_datasets.py): hand-made splits from fake raw downloads, its
determinism and idempotence, and the readiness report."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from fakedata import (
    DTD_CLASSES,
    EUROSAT_CLASSES,
    RAW_MAKERS,
    RESISC_CLASSES,
    make_all,
    make_dtd_raw,
    make_eurosat_raw,
    make_mnist,
    make_resisc45_raw,
    make_sun397_raw,
)

from task_arithmetic.data.real import tool
from task_arithmetic.data.real.splitting import cut, hashed_order
from task_arithmetic.errors import UserError

OUTPUTS = {"DTD": ["dtd/train", "dtd/test"], "EuroSAT": ["EuroSAT_splits"], "SUN397": ["sun397"], "RESISC45": ["resisc45"]}


def tree(root: Path, rel: str) -> dict[str, bytes]:
    base = root / rel
    if base.is_file():
        return {rel: base.read_bytes()}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file() and "NWPU" not in str(p)}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def make_raw(root: Path) -> None:
    for make in RAW_MAKERS.values():
        make(root)


def test_split_is_deterministic_across_copies(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        make_raw(root)
        tool.split(root)
    for outputs in OUTPUTS.values():
        for rel in outputs:
            assert tree(a, rel) == tree(b, rel) and tree(a, rel)


def test_split_rerun_is_a_no_op(tmp_path):
    make_raw(tmp_path)
    first = tool.split(tmp_path)
    assert sum("made" in line or "wrote" in line for line in first) == 2 + 3 + 2 + 3
    before = snapshot(tmp_path)
    again = tool.split(tmp_path)
    assert again == [f"{name}: ready, nothing to do" for name in ("DTD", "EuroSAT", "RESISC45", "SUN397")]
    assert snapshot(tmp_path) == before


def test_split_links_rather_than_copies(tmp_path):
    make_dtd_raw(tmp_path)
    tool.split(tmp_path, ["DTD"])
    made = tmp_path / "dtd/train/banded/banded_0000.jpg"
    assert made.stat().st_ino == (tmp_path / "dtd/images/banded/banded_0000.jpg").stat().st_ino


def test_dtd_split_is_partition_one(tmp_path):
    make_dtd_raw(tmp_path)
    tool.split(tmp_path, ["DTD"])
    labels = tmp_path / "dtd/labels"
    want_train = set((labels / "train1.txt").read_text().split()) | set((labels / "val1.txt").read_text().split())
    got_train = {str(p.relative_to(tmp_path / "dtd/train")) for p in (tmp_path / "dtd/train").rglob("*.jpg")}
    got_test = {str(p.relative_to(tmp_path / "dtd/test")) for p in (tmp_path / "dtd/test").rglob("*.jpg")}
    assert got_train == want_train and got_test == set((labels / "test1.txt").read_text().split())
    assert sorted(os.listdir(tmp_path / "dtd/train")) == DTD_CLASSES


def test_eurosat_split_is_80_10_10_per_class_and_disjoint(tmp_path):
    make_eurosat_raw(tmp_path, per_class=20)
    tool.split(tmp_path, ["EuroSAT"])
    files = {s: {str(p.relative_to(tmp_path / "EuroSAT_splits" / s)) for p in (tmp_path / "EuroSAT_splits" / s).rglob("*.jpg")} for s in ("train", "val", "test")}
    for split, per_class in (("train", 16), ("val", 2), ("test", 2)):
        assert Counter(f.split("/")[0] for f in files[split]) == {cls: per_class for cls in EUROSAT_CLASSES}
    assert not (files["train"] & files["test"]) and not (files["train"] & files["val"]) and not (files["val"] & files["test"])
    raw = {str(p.relative_to(tmp_path / "EuroSAT_RGB")) for p in (tmp_path / "EuroSAT_RGB").rglob("*.jpg")}
    assert files["train"] | files["val"] | files["test"] == raw


def test_sun397_split_follows_partition_lists_and_flattens_class_paths(tmp_path):
    make_sun397_raw(tmp_path)
    tool.split(tmp_path, ["SUN397"])
    assert sorted(os.listdir(tmp_path / "sun397/train")) == ["a_abbey", "a_apartment_building_outdoor", "b_bakery_shop"]
    listed = [line.strip() for line in (tmp_path / "SUN397/Testing_01.txt").read_text().splitlines() if line.strip()]
    got = sorted(p.name for p in (tmp_path / "sun397/test").rglob("*.jpg"))
    assert got == sorted(Path(entry).name for entry in listed)  # unlisted images stay out


def test_resisc45_lists_60_20_20_and_published_lists_are_kept(tmp_path):
    make_resisc45_raw(tmp_path)
    tool.split(tmp_path, ["RESISC45"])
    lists = {s: (tmp_path / f"resisc45/resisc45-{s}.txt").read_text().split() for s in ("train", "val", "test")}
    assert [len(lists[s]) for s in ("train", "val", "test")] == [6 * 3, 2 * 3, 2 * 3]
    assert len(set().union(*lists.values())) == 10 * len(RESISC_CLASSES)
    # published lists (any content) are never replaced
    other = tmp_path / "other"
    make_resisc45_raw(other)
    published = {s: sorted(lists[s])[::-1] for s in lists}
    for s, names in published.items():
        (other / f"resisc45/resisc45-{s}.txt").write_text("\n".join(names) + "\n")
    assert tool.split(other, ["RESISC45"]) == ["RESISC45: ready, nothing to do"]
    assert (other / "resisc45/resisc45-train.txt").read_text().split() == published["train"]


def test_resisc45_refuses_to_complete_foreign_lists(tmp_path):
    make_resisc45_raw(tmp_path)
    (tmp_path / "resisc45/resisc45-train.txt").write_text("airplane_001.jpg\n")
    with pytest.raises(UserError, match="resisc45-train.txt exists"):
        tool.split(tmp_path, ["RESISC45"])


def test_interrupted_split_leftovers_are_rebuilt(tmp_path):
    make_dtd_raw(tmp_path)
    stale = tmp_path / "dtd/.train.partial/banded"
    stale.mkdir(parents=True)
    (stale / "junk.jpg").write_bytes(b"x")
    tool.split(tmp_path, ["DTD"])
    assert not (tmp_path / "dtd/.train.partial").exists()
    assert not (tmp_path / "dtd/train/banded/junk.jpg").exists()
    assert len(list((tmp_path / "dtd/train").rglob("*.jpg"))) == 12


def test_split_without_raw_data(tmp_path):
    lines = tool.split(tmp_path)
    assert len(lines) == 4 and all("skipped" in line for line in lines)
    with pytest.raises(UserError, match="SUN397: no raw download"):
        tool.split(tmp_path, ["SUN397"])
    with pytest.raises(UserError, match="valid: DTD, EuroSAT, RESISC45, SUN397"):
        tool.split(tmp_path, ["MNIST"])


def test_check_reports_ready_and_exactly_what_is_missing(tmp_path):
    report = {entry.name: entry for entry in tool.check(tmp_path)}
    assert len(report) == 21 and not any(entry.ready for entry in report.values())
    assert report["SVHN"].missing == ["svhn/train_32x32.mat", "svhn/test_32x32.mat"]

    make_mnist(tmp_path)
    make_dtd_raw(tmp_path)
    report = {entry.name: entry for entry in tool.check(tmp_path)}
    assert report["MNIST"].ready and report["MNIST"].line().split() == ["MNIST", "ready"]
    assert report["DTD"].missing == ["dtd/train", "dtd/test"] and "raw download found" in report["DTD"].hint

    make_all(tmp_path)  # the rest, and the hand-made splits
    assert all(entry.ready for entry in tool.check(tmp_path))
    (tmp_path / "gtsrb/GT-final_test.csv").unlink()
    (tmp_path / "imagenet/meta.bin").unlink()
    report = {entry.name: entry for entry in tool.check(tmp_path)}
    assert report["GTSRB"].missing == ["gtsrb/GT-final_test.csv"]
    assert report["ImageNet"].missing == ["imagenet/classnames.txt (or torchvision's imagenet/meta.bin; not needed for a full 1000-class copy)"]
    assert [name for name, entry in report.items() if not entry.ready] == ["GTSRB", "ImageNet"]


def test_check_counts_loads_each_task_and_flags_partial_copies(tmp_path, capsys):
    import prepare_datasets  # src/ is on sys.path (conftest)

    info = make_all(tmp_path)
    report = {entry.name: entry for entry in tool.check(tmp_path, counts=True)}
    # The fakes hold every class only where the class list is fixed or comes with the data's
    # own name list (CIFAR10's meta, STL10's class_names.txt).
    complete = ["GTSRB", "MNIST", "SVHN", "Flowers102", "PCAM", "FER2013", "OxfordIIITPet", "STL10", "CIFAR10", "FashionMNIST", "EMNIST", "KMNIST", "RenderedSST2"]
    assert [name for name, entry in report.items() if entry.ready] == complete
    assert report["CIFAR100"].problems == ["3 classes found, the full CIFAR100 has 100"]
    assert report["Food101"].problems == ["3 classes found, the full Food101 has 101"]
    assert report["MNIST"].counts == f"{info['MNIST'].n_train} train / {info['MNIST'].n_test} test images, 10 classes"
    assert report["Cars"].problems == ["3 classes found, the full Cars has 196"]
    assert report["ImageNet"].problems[0].endswith("the full ImageNet has 1000")
    (tmp_path / "svhn/test_32x32.mat").unlink()
    assert tool.check(tmp_path, ["SVHN"], counts=True)[0].missing == ["svhn/test_32x32.mat"]
    assert prepare_datasets.main(["check", "--data-location", str(tmp_path), "--tasks", "MNIST,Cars", "--counts"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"MNIST         ready ({report['MNIST'].counts})"
    assert lines[1] == "Cars          incomplete: 3 classes found, the full Cars has 196"
    assert lines[2].split()[:5] == ["compare", "the", "copy", "with", "the"]


def test_suite_names_select_their_tasks(tmp_path):
    import prepare_datasets  # src/ is on sys.path (conftest)
    from task_arithmetic.data.real import SUITES

    assert [entry.name for entry in tool.check(tmp_path, ["real14"])] == list(SUITES["real14"]) + ["ImageNet"]
    assert [entry.name for entry in tool.check(tmp_path, ["real20", "CIFAR10"])] == list(SUITES["real20"]) + ["ImageNet"]
    make_all(tmp_path, split=False)
    # of real20's tasks only the four with hand-made splits have anything to split
    assert sum("made" in line or "wrote" in line for line in tool.split(tmp_path, ["real20"])) == 10
    assert tool.split(tmp_path, ["real20"]) == [f"{name}: ready, nothing to do" for name in ("SUN397", "RESISC45", "EuroSAT", "DTD")]
    assert prepare_datasets.main(["check", "--data-location", str(tmp_path), "--tasks", "real20"]) == 0
    with pytest.raises(UserError, match="unknown task.*CIFAR10 for this command"):
        tool.split(tmp_path, ["CIFAR10"])


def test_hashed_order_and_cut():
    names = [f"img_{i}.jpg" for i in range(50)]
    order = hashed_order(names, "s")
    assert order == hashed_order(reversed(names), "s") and sorted(order) == sorted(names)
    assert order != hashed_order(names, "t")
    parts = cut(order, [0.8, 0.1, 0.1])
    assert [len(p) for p in parts] == [40, 5, 5] and sum(parts, []) == order
    assert [len(p) for p in cut(list("abcde"), [0.6, 0.2, 0.2])] == [3, 1, 1]


def test_script_split_then_check_in_process(tmp_path, capsys):
    import prepare_datasets  # src/ is on sys.path (conftest)

    make_all(tmp_path, split=False)
    assert prepare_datasets.main(["check", "--data-location", str(tmp_path), "--tasks", "SUN397,SVHN"]) == 1
    assert capsys.readouterr().out.splitlines()[0].split() == ["SUN397", "missing", "sun397/train,", "sun397/test"]
    assert prepare_datasets.main(["split", "--data-location", str(tmp_path)]) == 0
    assert sum("made" in line or "wrote" in line for line in capsys.readouterr().out.splitlines()) == 10
    assert prepare_datasets.main(["check", "--data-location", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == [w for name in tool.DATASETS for w in (name, "ready")]


def test_script_missing_raw_data_is_one_line_exit_2(repo_root, tmp_path):
    args = ["src/prepare_datasets.py", "split", "--data-location", str(tmp_path), "--tasks", "DTD"]
    result = subprocess.run([sys.executable, *args], cwd=repo_root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: DTD: no raw download")
    assert "Traceback" not in result.stderr
