"""The real datasets: registry entries, loading fake copies in their real formats through the same
code as real data, the Val split, and the errors for missing data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fakedata import decode, make_all, make_dtd_raw, make_fer2013, make_imagenet, make_resisc45_raw, red_of
from torchvision import transforms

from task_arithmetic.data import registry
from task_arithmetic.data.loaders import make_loader
from task_arithmetic.data.real import DATASETS
from task_arithmetic.data.splits import heldout_indices, load_dataset, split_train_val
from task_arithmetic.errors import UserError

TASKS8 = ["Cars", "DTD", "EuroSAT", "GTSRB", "MNIST", "RESISC45", "SUN397", "SVHN"]
EXTRA14 = ["Flowers102", "PCAM", "FER2013", "OxfordIIITPet", "STL10", "CIFAR100"]
EXTRA20 = ["CIFAR10", "Food101", "FashionMNIST", "EMNIST", "KMNIST", "RenderedSST2"]
TASKS = TASKS8 + EXTRA14 + EXTRA20
# FusionBench's TALL14/TALL20 pools: the eight in the task-arithmetic papers' order, then the rest.
LITERATURE_ORDER = ["SUN397", "Cars", "RESISC45", "EuroSAT", "SVHN", "GTSRB", "MNIST", "DTD"] + EXTRA14 + EXTRA20
TEMPLATE_COUNTS = {
    "Cars": 8, "DTD": 8, "EuroSAT": 3, "GTSRB": 3, "MNIST": 1, "RESISC45": 18, "SUN397": 2, "SVHN": 1, "ImageNet": 80,
    "Flowers102": 1, "PCAM": 1, "FER2013": 6, "OxfordIIITPet": 1, "STL10": 2, "CIFAR100": 18,
    "CIFAR10": 18, "Food101": 1, "FashionMNIST": 2, "EMNIST": 1, "KMNIST": 1, "RenderedSST2": 1,
}  # fmt: skip
HOME = {**{t: "real8" for t in TASKS8 + ["ImageNet"]}, **{t: "real14" for t in EXTRA14}, **{t: "real20" for t in EXTRA20}}
HARD_CODED_NAMES = {"GTSRB": 43, "MNIST": 10, "SVHN": 10, "Flowers102": 102, "PCAM": 2, "FER2013": 7, "OxfordIIITPet": 37, "EMNIST": 26, "FashionMNIST": 10, "KMNIST": 10, "RenderedSST2": 2}
# The task-vectors paper's epochs for the eight; TALL masks' per-dataset table for the other twelve.
EPOCHS = {
    "Cars": 35, "DTD": 76, "EuroSAT": 12, "GTSRB": 11, "MNIST": 5, "RESISC45": 15, "SUN397": 14, "SVHN": 4,
    "Flowers102": 147, "PCAM": 1, "FER2013": 10, "OxfordIIITPet": 82, "STL10": 60, "CIFAR100": 6,
    "CIFAR10": 6, "Food101": 4, "FashionMNIST": 5, "EMNIST": 2, "KMNIST": 5, "RenderedSST2": 39,
}  # fmt: skip


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("data")
    return root, make_all(root)


def test_registry_has_the_benchmark_and_its_control():
    assert sorted(registry.benchmark_tasks("real8")) == sorted(TASKS8)
    assert registry.control_task("real8") == "ImageNet"
    assert registry.parse_task_list("real8") == registry.benchmark_tasks("real8")
    assert registry.get_task("SUN397Val").name == "SUN397"


def test_real14_and_real20_in_the_literature_order_with_imagenet_as_control():
    assert registry.benchmark_tasks("real14") == LITERATURE_ORDER[:14]
    assert registry.benchmark_tasks("real20") == LITERATURE_ORDER
    assert registry.parse_task_list("real20") == LITERATURE_ORDER
    assert registry.benchmark_tasks("real20", include_control=True)[-1] == "ImageNet"
    assert registry.control_task("real14") == registry.control_task("real20") == "ImageNet"
    # tasks from several home suites take the control of the smallest suite holding them all
    assert registry.control_for(["Cars", "CIFAR10"]) == "ImageNet" and registry.control_for(["Digits"]) == "Shapes"
    assert registry.control_for(["Cars", "Digits"]) is None
    assert registry.get_task("CIFAR100Val").name == "CIFAR100"
    with pytest.raises(UserError, match="valid benchmarks: .*real14, real20, real8"):
        registry.benchmark_tasks("real16")


@pytest.mark.parametrize("name", TASKS + ["ImageNet"])
def test_spec_templates_defaults_layout(name):
    spec = registry.get_task(name)
    assert spec.benchmark == HOME[name] and spec.is_control == (name == "ImageNet")
    assert len(spec.templates) == TEMPLATE_COUNTS[name]
    assert len(set(spec.templates)) == len(spec.templates)
    for template in spec.templates:
        assert template.count("{}") == 1 and template.format("X") != template
    assert spec.defaults == ({"epochs": EPOCHS[name]} if name in EPOCHS else {})
    assert spec.expected_layout and "\n" not in spec.expected_layout


@pytest.mark.parametrize("name", registry.benchmark_tasks("real20"))
def test_every_real20_task_fine_tunes_without_epochs_or_max_steps(name):
    # A suite task without a default would stop `finetune.py --task X` and the study's plan with
    # "pass --epochs N or --max-steps N"; the Val spelling must reach the same default.
    from task_arithmetic.training.config import FinetuneConfig, resolve_config

    for spelling in (name, name + "Val"):
        epochs = registry.get_task(spelling).defaults.get("epochs")
        assert isinstance(epochs, int) and epochs > 0
        assert resolve_config(FinetuneConfig(task=spelling)).epochs == epochs


def test_some_templates_verbatim():
    assert registry.get_task("MNIST").templates == ('a photo of the number: "{}".',)
    assert registry.get_task("RESISC45").templates[0] == "satellite imagery of {}."
    assert registry.get_task("RESISC45").templates[-1] == "aerial view of the {}."
    assert registry.get_task("ImageNet").templates[0] == "a bad photo of a {}."
    assert registry.get_task("CIFAR10").templates[3] == "a low contrast photo of a {}."
    assert registry.get_task("CIFAR100").templates[-1] == "a photo of the big {}."
    assert registry.get_task("Flowers102").templates == ("a photo of a {}, a type of flower.",)
    assert registry.get_task("EMNIST").templates == ('a photo of the digit character: "{}".',)


@pytest.mark.parametrize("name", TASKS + ["ImageNet"])
def test_fake_dataset_loads_with_labels_and_classnames(fake_root, name):
    root, info = fake_root
    expected = info[name]
    train, val, test = (load_dataset(name, split, root) for split in ("train", "val", "test"))
    assert len(train) + len(val) == expected.n_train
    assert len(val) == min(int(expected.n_train * 0.1), 5000) >= 1
    assert len(test) == expected.n_test
    names = registry.get_task(name).load_classnames(root)
    assert names == expected.classnames
    for dataset in (train, val, test):
        for image, label in dataset:
            assert isinstance(label, int) and 0 <= label < len(names)
            assert image.mode == "RGB"
            assert decode(red_of(image)) == label  # each image arrives with its own class


def test_gtsrb_has_43_sign_names_and_eurosat_readable_names(fake_root):
    root, _ = fake_root
    gtsrb = registry.get_task("GTSRB").load_classnames(root)
    assert len(gtsrb) == 43 and gtsrb[14] == "stop"
    assert registry.get_task("EuroSAT").load_classnames(root) == ["annual crop land", "forest", "lake or sea"]


@pytest.mark.parametrize("name", ["MNIST", "SVHN", "Cars", "CIFAR10", "STL10", "PCAM", "FER2013", "EMNIST", "KMNIST", "Flowers102"])
def test_batches_are_rgb_tensors_with_int64_labels(fake_root, name):
    # Grey idx/CSV images, .mat, HDF5, pickled and binary arrays: all must batch like the folder datasets.
    root, _ = fake_root
    dataset = load_dataset(name, "test", root, transforms.Compose([transforms.Resize((8, 8)), transforms.ToTensor()]))
    images, labels = next(iter(make_loader(dataset, batch_size=4)))
    assert images.shape == (4, 3, 8, 8) and labels.dtype == torch.int64
    assert [decode(red_of(img)) for img in images] == labels.tolist()


def test_val_split_deterministic_disjoint_and_sized(fake_root):
    root, info = fake_root
    first = load_dataset("EuroSAT", "val", root).indices
    assert load_dataset("EuroSAT", "val", root).indices == first
    train = load_dataset("EuroSAT", "train", root).indices
    assert not set(first) & set(train) and sorted(first + train) == list(range(info["EuroSAT"].n_train))
    # independent of the dataset: a pure function of n and the seed
    for n in (9, 10, 1234, 49_999, 60_000):
        held = heldout_indices(n)
        assert held == heldout_indices(n) and len(held) == min(n // 10, 5000) == len(set(held))
        train_idx, val_idx = split_train_val(n)
        assert val_idx == held and len(train_idx) + len(val_idx) == n
    assert heldout_indices(1000, seed=1) != heldout_indices(1000)


@pytest.mark.parametrize("name", TASKS + ["ImageNet"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_missing_data_names_task_layout_and_tool(tmp_path, name, split):
    with pytest.raises(UserError) as err:
        load_dataset(name, split, tmp_path)
    message = str(err.value)
    assert "\n" not in message and name in message and str(tmp_path) in message
    assert DATASETS[name].layout in message and "prepare_datasets.py check" in message
    if DATASETS[name].splitter is not None:
        assert "prepare_datasets.py split" in message


@pytest.mark.parametrize("name", TASKS + ["ImageNet"])
def test_missing_classnames_is_a_user_error(tmp_path, name):
    if name in HARD_CODED_NAMES:
        assert len(registry.get_task(name).load_classnames(tmp_path)) == HARD_CODED_NAMES[name]  # no data needed
        return
    with pytest.raises(UserError, match=name):
        registry.get_task(name).load_classnames(tmp_path)


def test_test_folder_with_other_classes_is_refused(tmp_path):
    from task_arithmetic.data.real import tool

    make_dtd_raw(tmp_path)
    tool.split(tmp_path)
    (tmp_path / "dtd/test/zigzagged").mkdir()
    (tmp_path / "dtd/train/banded/banded_0000.jpg").rename(tmp_path / "dtd/test/zigzagged/x.jpg")
    with pytest.raises(UserError, match="zigzagged"):
        load_dataset("DTD", "test", tmp_path)


def test_empty_class_folder_is_a_user_error(tmp_path):
    make_imagenet(tmp_path)
    (tmp_path / "imagenet/val/n09999999").mkdir()
    (tmp_path / "imagenet/train/n09999999").mkdir()
    with pytest.raises(UserError, match="ImageNet"):
        load_dataset("ImageNet", "test", tmp_path)


def test_resisc45_list_naming_absent_images_is_refused(tmp_path):
    from task_arithmetic.data.real import tool

    make_resisc45_raw(tmp_path)
    tool.split(tmp_path)
    (tmp_path / "resisc45/NWPU-RESISC45/airplane/airplane_001.jpg").unlink()
    with pytest.raises(UserError, match="resisc45-(train|test).txt names"):
        for split in ("train", "test"):
            load_dataset("RESISC45", split, tmp_path)


def test_imagenet_classnames_txt_wins_over_meta_bin(tmp_path):
    info = make_imagenet(tmp_path)
    assert registry.get_task("ImageNet").load_classnames(tmp_path) == info.classnames
    (tmp_path / "imagenet/classnames.txt").write_text("tench fish\ngoldfish\ngreat white shark\n")
    assert registry.get_task("ImageNet").load_classnames(tmp_path) == ["tench fish", "goldfish", "great white shark"]
    (tmp_path / "imagenet/classnames.txt").write_text("tench\n")
    with pytest.raises(UserError, match="1 names for 3 class folders"):
        registry.get_task("ImageNet").load_classnames(tmp_path)


def test_full_imagenet_copy_gets_the_curated_clip_names(tmp_path):
    import open_clip

    wnids = [f"n{i:08d}" for i in range(1000)]
    for wnid in wnids:
        (tmp_path / "imagenet/train" / wnid).mkdir(parents=True)
    (tmp_path / "imagenet/val").mkdir()
    imagenet = registry.get_task("ImageNet")
    assert imagenet.load_classnames(tmp_path) == list(open_clip.IMAGENET_CLASSNAMES)
    (tmp_path / "imagenet/classnames.txt").write_text("".join(f"class {w}\n" for w in wnids))
    assert imagenet.load_classnames(tmp_path)[:2] == ["class n00000000", "class n00000001"]  # the user's list wins
    (tmp_path / "imagenet/classnames.txt").unlink()
    (tmp_path / "imagenet/train" / wnids[-1]).rmdir()  # 999 classes: no curated list applies
    with pytest.raises(UserError, match="classnames.txt"):
        imagenet.load_classnames(tmp_path)


def test_imagenet_prefers_val_in_folder(tmp_path):
    make_imagenet(tmp_path)
    (tmp_path / "imagenet/val").rename(tmp_path / "imagenet/val_in_folder")
    (tmp_path / "imagenet/val").mkdir()  # the flat official val/ some copies keep beside it
    assert len(load_dataset("ImageNet", "test", tmp_path)) == 6


def test_datasets_pickle_for_worker_processes(fake_root):
    import pickle

    root, _ = fake_root
    for name in ("SVHN", "RESISC45", "MNIST", "PCAM", "FER2013", "EMNIST", "CIFAR100", "STL10"):
        dataset = load_dataset(name, "test", root, transforms.ToTensor())
        clone = pickle.loads(pickle.dumps(dataset))
        assert torch.equal(clone[0][0], dataset[0][0]) and len(clone) == len(dataset)


def test_unknown_task_suggests_the_closest_name():
    with pytest.raises(UserError, match=r"unknown task 'sun397val'; did you mean SUN397Val\? valid tasks: .*Cars, "):
        registry.get_task("sun397val")
    with pytest.raises(UserError, match=r"did you mean Digits\?"):
        registry.get_task("digits")
    with pytest.raises(UserError) as err:
        registry.get_task("Zebra")
    assert "did you mean" not in str(err.value)


def test_emnist_letters_are_upright_and_labelled_from_zero(tmp_path):
    """The idx files store each letter transposed and labelled 1..26: 'A' must arrive upright as 0."""
    from fakedata import _idx

    image = np.zeros((8, 8), dtype=np.uint8)
    image[0, 5] = 255  # stored transposed: upright, the bright pixel is at row 5, column 0
    for split in ("train", "test"):
        _idx(tmp_path / f"EMNIST/raw/emnist-letters-{split}-images-idx3-ubyte", np.stack([image] * 10))
        _idx(tmp_path / f"EMNIST/raw/emnist-letters-{split}-labels-idx1-ubyte", np.arange(1, 11))
    test = load_dataset("EMNIST", "test", tmp_path)
    picture, label = test[0]
    assert label == 0 and registry.get_task("EMNIST").load_classnames(tmp_path)[label] == "A"
    assert np.asarray(picture)[5, 0, 0] == 255 and np.asarray(picture)[0, 5, 0] == 0
    assert [test[i][1] for i in range(10)] == list(range(10))


def test_fer2013_reads_either_full_csv_and_splits_by_usage(tmp_path):
    for icml, root in ((False, tmp_path / "fer"), (True, tmp_path / "icml")):
        info = make_fer2013(root, icml=icml)
        train, test = load_dataset("FER2013", "train", root), load_dataset("FER2013", "test", root)
        assert len(train.dataset) == info.n_train and len(test) == info.n_test == 7  # PublicTest + PrivateTest
        assert [decode(red_of(image)) for image, _ in test] == [label for _, label in test]


def test_pcam_without_h5py_is_one_clear_line(fake_root, monkeypatch):
    import builtins

    root, _ = fake_root
    real_import = builtins.__import__

    def no_h5py(name, *args, **kwargs):
        if name == "h5py":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    with pytest.raises(UserError, match="needs the h5py package"):
        load_dataset("PCAM", "test", root)


def test_a_real8_copy_loads_without_the_extra_tasks(tmp_path):
    make_all(tmp_path, extra=False)
    assert len(load_dataset("Cars", "test", tmp_path)) == 6
    with pytest.raises(UserError, match="CIFAR10 data not found .*cifar-10-batches-py"):
        load_dataset("CIFAR10", "train", tmp_path)


def test_fusionbench_tall20_names_map_onto_real20():
    from task_arithmetic.merging.taskpool.hf_clip import FUSIONBENCH_NAMES

    tall20 = ["sun397", "stanford-cars", "resisc45", "eurosat", "svhn", "gtsrb", "mnist", "dtd", "oxford_flowers102", "pcam", "fer2013", "oxford-iiit-pet"]
    tall20 += ["stl10", "cifar100", "cifar10", "food101", "fashion_mnist", "emnist_letters", "kmnist", "rendered-sst2"]
    assert [FUSIONBENCH_NAMES[name] for name in tall20] == registry.benchmark_tasks("real20")
