import dataclasses
from collections import Counter

import numpy as np
import pytest
import torch

from task_arithmetic.data.registry import benchmark_tasks, control_task, get_task
from task_arithmetic.data.splits import load_dataset
from task_arithmetic.embedded import datasets
from task_arithmetic.embedded.catalog import ALL_TASKS, TASKS, TASKS_BY_NAME, VARIANTS
from task_arithmetic.embedded.corpus import build_corpus

# open_clip's default preprocessing constants, written out as an independent reference.
MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)


def small(task, train=30, test=20):
    return dataclasses.replace(task, train_size=train, test_size=test)


@pytest.mark.parametrize("name", [t.name for t in ALL_TASKS if t.family != "handwritten"])
def test_generation_is_deterministic_and_balanced(name):
    task = small(TASKS_BY_NAME[name])
    images, labels = datasets.generate_split(task, "train")
    again, labels_again = datasets.generate_split(task, "train")
    assert images.dtype == np.uint8 and images.shape == (30, 32, 32, 3)
    assert images.tobytes() == again.tobytes() and np.array_equal(labels, labels_again)
    test_images, _ = datasets.generate_split(task, "test")
    assert test_images.tobytes() != images[:20].tobytes()
    counts = Counter(labels.tolist())
    k = len(task.class_names())
    assert set(counts) == set(range(k)) and max(counts.values()) - min(counts.values()) <= 1
    assert images.std() > 10  # not a blank canvas


def test_benchmark_is_registered_with_a_control():
    names = benchmark_tasks("embedded")
    assert names == ["Digits", "HouseNumbers", "TrafficSigns", "Textures", "LandUse", "Landscapes"]
    assert control_task("embedded") == "Shapes"
    for name in names + ["Shapes"]:
        spec = get_task(name)
        assert spec.tensor_native and spec.benchmark == "embedded"
        assert all(t.count("{}") == 1 for t in spec.templates) and len(spec.templates) >= 2
        assert {"epochs", "lr", "wd", "warmup", "batch_size"} <= set(spec.defaults)
        assert all(spec.defaults[k] > 0 for k in ("epochs", "lr", "warmup", "batch_size"))


def test_embedded12_adds_six_variants_without_changing_the_default_six():
    names = benchmark_tasks("embedded12")
    assert len(names) == 12 and names[:6] == benchmark_tasks("embedded") and control_task("embedded12") == "Shapes"
    assert names[6:] == [t.name for t in VARIANTS]
    for task in VARIANTS:
        spec = get_task(task.name)
        assert spec.benchmark == "embedded12" and spec.tensor_native and not spec.is_control
        sibling = next(t for t in TASKS if t.family == task.family and not t.is_control)
        # a variant of a family: the same classes, drawn another way
        assert task.class_names() == sibling.class_names() and task.style != sibling.style
    a, _ = datasets.generate_split(small(TASKS_BY_NAME["HazyLandUse"]), "train")
    b, _ = datasets.generate_split(small(TASKS_BY_NAME["LandUse"]), "train")
    assert abs(float(a.std()) - float(b.std())) > 5  # visibly different renderings


def test_digits_splits_are_normalised_real_sklearn_digits(tmp_path):
    from sklearn.datasets import load_digits

    train, val, test = (load_dataset("Digits", s, tmp_path) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (1347 - 134, 134, 450)
    x, y = test[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(int(y), int)
    # train + test cover scikit-learn's 1797 digits exactly once: same label histogram.
    labels = [int(train.dataset[i][1]) for i in range(len(train.dataset))] + [int(test[i][1]) for i in range(len(test))]
    assert Counter(labels) == Counter(load_digits().target.tolist())
    # Undoing the normalisation gives back the cached 8-bit images.
    images, _ = datasets.generate_split(TASKS_BY_NAME["Digits"], "test")
    restored = (test.tensors[0] * STD + MEAN) * 255
    expected = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    assert torch.allclose(restored, expected, atol=1e-3)
    assert len(get_task("Digits").load_classnames(tmp_path)) == 10


def test_disk_cache_is_reused_and_keyed_by_recipe(tmp_path, monkeypatch):
    task = small(TASKS_BY_NAME["Textures"], 24, 12)
    first = datasets.load_split(task, tmp_path, "test")
    path = datasets.cache_path(tmp_path, task, "test")
    assert path.is_file() and path.with_suffix(".json").is_file()
    datasets._MEMORY.clear()

    def no_generation(*args, **kwargs):
        raise AssertionError("the cached split should have been read")

    monkeypatch.setattr(datasets, "generate_split", no_generation)
    second = datasets.load_split(task, tmp_path, "test")
    assert torch.equal(first.tensors[0], second.tensors[0]) and torch.equal(first.tensors[1], second.tensors[1])
    changed = dataclasses.replace(task, style=dataclasses.replace(task.style, noise=0.2))
    assert datasets.cache_path(tmp_path, changed, "test") != path


def test_corpus_is_deterministic_and_its_captions_name_the_class():
    a = build_corpus(120, seed=0, workers=1)
    b = build_corpus(120, seed=0, workers=3)  # the families' threads must not change the corpus
    c = build_corpus(120, seed=1)
    assert a.images.tobytes() == b.images.tobytes() and a.captions == b.captions
    assert a.images.tobytes() != c.images.tobytes()
    assert len(a.captions) == 120 and all(len(caps) == 3 for caps in a.captions)
    digit_rows = np.where(a.image_facts[:, 0] == 0)[0]
    for i in digit_rows[:10]:
        label = int(a.image_facts[i, 1])
        words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
        assert all(str(label) in cap or words[label] in cap for cap in a.captions[i])
