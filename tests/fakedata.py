"""Tiny fake copies of the real datasets, in their real on-disk formats (idx files, .mat files,
CSV, HDF5, pickled CIFAR batches, STL10 binaries, JSON lists, folder trees with PPM/JPEG/PNG
images, split lists), for tests of the loaders and the dataset tool.

Every image is one solid colour whose red channel encodes its class index (`encode`/`decode`), so a
test can check that each loaded image arrives with its own label. Use:

    from fakedata import make_all
    info = make_all(tmp_path)          # every dataset, hand-made splits already made
    info["DTD"].n_train, info["DTD"].classnames
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 8  # pixels; the loaders do not care, the tests stay fast


@dataclass(frozen=True)
class FakeInfo:
    n_train: int  # the official train set (our train + val)
    n_test: int
    classnames: list[str]


def encode(label: int) -> int:
    return 30 + 20 * label


def decode(red: float) -> int:
    return int(round((float(red) - 30) / 20))


def _pixels(label: int, channels: int = 3) -> np.ndarray:
    value = encode(label)
    shape = (SIZE, SIZE, channels) if channels > 1 else (SIZE, SIZE)
    array = np.full(shape, 90, dtype=np.uint8)
    if channels > 1:
        array[..., 0] = value
    else:
        array[...] = value
    return array


def save_image(path: Path, label: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # quality=100 keeps a solid colour within a level or two after decoding.
    options = {"quality": 100} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    Image.fromarray(_pixels(label)).save(path, **options)


def red_of(image) -> float:
    """Mean red value of a loaded PIL image or CHW tensor."""
    if hasattr(image, "convert"):
        return float(np.asarray(image.convert("RGB"))[..., 0].mean())
    return float(image[0].float().mean()) * (255.0 if image.dtype.is_floating_point else 1.0)


# --- torchvision formats -----------------------------------------------------------------------


def _idx(path: Path, array: np.ndarray) -> None:
    # idx: two zero bytes, the type code (0x08 = uint8), the number of dims, big-endian sizes, data.
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist(root: Path, n_train: int = 20, n_test: int = 10) -> FakeInfo:
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        _idx(root / f"MNIST/raw/{prefix}-images-idx3-ubyte", np.stack([_pixels(int(y), channels=1) for y in labels]))
        _idx(root / f"MNIST/raw/{prefix}-labels-idx1-ubyte", labels)
    return FakeInfo(n_train, n_test, [str(d) for d in range(10)])


def make_svhn(root: Path, n_train: int = 20, n_test: int = 10) -> FakeInfo:
    import scipy.io

    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        images = np.stack([_pixels(int(y)) for y in labels], axis=-1)  # H, W, C, N as in the real files
        stored = np.where(labels == 0, 10, labels).reshape(-1, 1)  # SVHN writes digit 0 as 10
        (root / "svhn").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(root / f"svhn/{split}_32x32.mat", {"X": images, "y": stored.astype(np.uint8)})
    return FakeInfo(n_train, n_test, [str(d) for d in range(10)])


def make_gtsrb(root: Path, n_classes: int = 3, per_class: int = 4, n_test: int = 6) -> FakeInfo:
    from task_arithmetic.data.real.gtsrb import CLASSNAMES

    base = root / "gtsrb"
    for label in range(n_classes):
        folder = base / f"GTSRB/Training/{label:05d}"
        for i in range(per_class):
            save_image(folder / f"00000_{i:05d}.ppm", label)
        (folder / f"GT-{label:05d}.csv").write_text("Filename;ClassId\n")  # present in the real zip, ignored
    rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
    for i in range(n_test):
        label = (i * 2) % n_classes
        save_image(base / f"GTSRB/Final_Test/Images/{i:05d}.ppm", label)
        rows.append(f"{i:05d}.ppm;{SIZE};{SIZE};0;0;{SIZE};{SIZE};{label}")
    (base / "GT-final_test.csv").write_text("\n".join(rows) + "\n")
    return FakeInfo(n_classes * per_class, n_test, list(CLASSNAMES))


CAR_NAMES = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012"]


def _car_annotations(labels: list[int]) -> np.ndarray:
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    records = np.zeros((1, len(labels)), dtype=[(f, "O") for f in fields])
    for i, label in enumerate(labels):
        # class is 1-based and uint8 in the real devkit
        records[0, i] = (np.uint8(0), np.uint8(0), np.uint8(SIZE), np.uint8(SIZE), np.uint8(label + 1), f"{i + 1:05d}.jpg")
    return records


def make_cars(root: Path, n_train: int = 12, n_test: int = 6) -> FakeInfo:
    import scipy.io

    base = root / "stanford_cars"
    (base / "devkit").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(base / "devkit/cars_meta.mat", {"class_names": np.array(CAR_NAMES, dtype=object).reshape(1, -1)})
    for split, n, mat in (("train", n_train, base / "devkit/cars_train_annos.mat"), ("test", n_test, base / "cars_test_annos_withlabels.mat")):
        labels = [(i * 2 + (split == "test")) % len(CAR_NAMES) for i in range(n)]
        scipy.io.savemat(mat, {"annotations": _car_annotations(labels)})
        for i, label in enumerate(labels):
            save_image(base / f"cars_{split}/{i + 1:05d}.jpg", label)
    return FakeInfo(n_train, n_test, list(CAR_NAMES))


# --- raw downloads of the hand-made splits -----------------------------------------------------

DTD_CLASSES = ["banded", "blotchy", "braided"]


def make_dtd_raw(root: Path, per_part: int = 2) -> FakeInfo:
    """dtd/images/<class>/ + dtd/labels/{train,val,test}{1,2}.txt (partition 2 must be ignored)."""
    base = root / "dtd"
    lists: dict[str, list[str]] = {f"{part}{k}": [] for part in ("train", "val", "test") for k in (1, 2)}
    for label, cls in enumerate(DTD_CLASSES):
        names = [f"{cls}/{cls}_{i:04d}.jpg" for i in range(3 * per_part)]
        for name in names:
            save_image(base / "images" / name, label)
        for k, part in enumerate(("train", "val", "test")):
            lists[f"{part}1"] += names[k * per_part : (k + 1) * per_part]
            lists[f"{part}2"] += names[((k + 1) % 3) * per_part : ((k + 1) % 3 + 1) * per_part]
    (base / "labels").mkdir(parents=True, exist_ok=True)
    for name, entries in lists.items():
        (base / "labels" / f"{name}.txt").write_text("\n".join(entries) + "\n")
    n = len(DTD_CLASSES) * per_part
    return FakeInfo(2 * n, n, DTD_CLASSES)


EUROSAT_CLASSES = {"AnnualCrop": "annual crop land", "Forest": "forest", "SeaLake": "lake or sea"}


def make_eurosat_raw(root: Path, per_class: int = 10) -> FakeInfo:
    for label, cls in enumerate(EUROSAT_CLASSES):
        for i in range(1, per_class + 1):
            save_image(root / f"EuroSAT_RGB/{cls}/{cls}_{i}.jpg", label)
    n = len(EUROSAT_CLASSES) * per_class
    return FakeInfo(int(0.8 * n), int(0.1 * n), list(EUROSAT_CLASSES.values()))


# class path -> readable name; sorted by the flattened folder name (a_abbey < a_apartment... < b_bakery_shop)
SUN_CLASSES = {"/a/abbey": "abbey", "/a/apartment_building/outdoor": "apartment building outdoor", "/b/bakery/shop": "bakery shop"}


def make_sun397_raw(root: Path, per_list: int = 4, unlisted: int = 1) -> FakeInfo:
    """SUN397/<letter>/<class>/sun_*.jpg, SUN397/ClassName.txt, SUN397/{Training,Testing}_01.txt."""
    base = root / "SUN397"
    train, test = [], []
    for label, cls in enumerate(SUN_CLASSES):
        for i in range(2 * per_list + unlisted):
            entry = f"{cls}/sun_{label}{i:03d}.jpg"
            save_image(base / entry.strip("/"), label)
            (train if i < per_list else test if i < 2 * per_list else []).append(entry)
    (base / "ClassName.txt").write_text("\n".join(SUN_CLASSES) + "\n")
    (base / "Training_01.txt").write_text("\n".join(train) + "\n")
    (base / "Testing_01.txt").write_text("\n".join(test) + "\n")
    return FakeInfo(len(train), len(test), list(SUN_CLASSES.values()))


RESISC_CLASSES = ["airplane", "baseball_diamond", "sea_ice"]


def make_resisc45_raw(root: Path, per_class: int = 10) -> FakeInfo:
    for label, cls in enumerate(RESISC_CLASSES):
        for i in range(1, per_class + 1):
            save_image(root / f"resisc45/NWPU-RESISC45/{cls}/{cls}_{i:03d}.jpg", label)
    n = len(RESISC_CLASSES) * per_class
    return FakeInfo(int(0.6 * n), int(0.2 * n), [c.replace("_", " ") for c in RESISC_CLASSES])


IMAGENET_WNIDS = {"n01440764": ("tench", "Tinca tinca"), "n01443537": ("goldfish", "Carassius auratus"), "n01484850": ("great white shark",)}


def make_imagenet(root: Path, per_class_train: int = 4, per_class_val: int = 2) -> FakeInfo:
    """imagenet/{train,val}/<wnid>/*.JPEG and torchvision's imagenet/meta.bin."""
    import torch

    for label, wnid in enumerate(IMAGENET_WNIDS):
        for i in range(per_class_train):
            save_image(root / f"imagenet/train/{wnid}/{wnid}_{i}.JPEG", label)
        for i in range(per_class_val):
            save_image(root / f"imagenet/val/{wnid}/ILSVRC2012_val_{label}{i:07d}.JPEG", label)
    torch.save((dict(IMAGENET_WNIDS), list(IMAGENET_WNIDS)), root / "imagenet/meta.bin")
    n = len(IMAGENET_WNIDS)
    return FakeInfo(n * per_class_train, n * per_class_val, [names[0] for names in IMAGENET_WNIDS.values()])


# --- the extra tasks of the 14- and 20-task benchmarks -------------------------------------------


def _cycle(n: int, classes: int, offset: int = 0) -> list[int]:
    return [(i + offset) % classes for i in range(n)]


def _idx_pair(root: Path, images: str, labels: str, targets: list[int], stored_offset: int = 0) -> None:
    _idx(root / images, np.stack([_pixels(y, channels=1) for y in targets]))
    _idx(root / labels, np.array(targets) + stored_offset)


def make_fashion_mnist(root: Path, n_train: int = 20, n_test: int = 10) -> FakeInfo:
    from task_arithmetic.data.real.mnist_like import FASHION_CLASSNAMES

    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _idx_pair(root, f"FashionMNIST/raw/{prefix}-images-idx3-ubyte", f"FashionMNIST/raw/{prefix}-labels-idx1-ubyte", _cycle(n, 10))
    return FakeInfo(n_train, n_test, list(FASHION_CLASSNAMES))


def make_kmnist(root: Path, n_train: int = 20, n_test: int = 10) -> FakeInfo:
    from task_arithmetic.data.real.mnist_like import KMNIST_CLASSNAMES

    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _idx_pair(root, f"KMNIST/raw/{prefix}-images-idx3-ubyte", f"KMNIST/raw/{prefix}-labels-idx1-ubyte", _cycle(n, 10, 3))
    return FakeInfo(n_train, n_test, list(KMNIST_CLASSNAMES))


def make_emnist(root: Path, n_train: int = 20, n_test: int = 10) -> FakeInfo:
    """EMNIST letters: labels stored 1..26 (0 is unused), as in the real files."""
    from task_arithmetic.data.real.mnist_like import EMNIST_CLASSNAMES

    for split, n in (("train", n_train), ("test", n_test)):
        stem = f"EMNIST/raw/emnist-letters-{split}"
        _idx_pair(root, f"{stem}-images-idx3-ubyte", f"{stem}-labels-idx1-ubyte", _cycle(n, 11), stored_offset=1)
    return FakeInfo(n_train, n_test, list(EMNIST_CLASSNAMES))


CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100_NAMES = ["apple", "aquarium_fish", "baby"]  # a copy with 3 of the 100 classes


def _cifar_batch(path: Path, labels: list[int], key: str) -> None:
    import pickle

    # rows of 3072 bytes: the red plane, then green, then blue (32 x 32 each)
    data = np.stack([np.concatenate([np.full(1024, encode(y)), np.full(2048, 90)]) for y in labels]).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"data": data, key: labels, "filenames": [f"{i}.png" for i in range(len(labels))]}))


def make_cifar10(root: Path, per_batch: int = 4, n_test: int = 10) -> FakeInfo:
    import pickle

    base = root / "cifar-10-batches-py"
    for b in range(1, 6):
        _cifar_batch(base / f"data_batch_{b}", _cycle(per_batch, 10, b), "labels")
    _cifar_batch(base / "test_batch", _cycle(n_test, 10), "labels")
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": CIFAR10_NAMES, "num_vis": 3072}))
    return FakeInfo(5 * per_batch, n_test, list(CIFAR10_NAMES))


def make_cifar100(root: Path, n_train: int = 20, n_test: int = 6) -> FakeInfo:
    import pickle

    base = root / "cifar-100-python"
    _cifar_batch(base / "train", _cycle(n_train, 3), "fine_labels")
    _cifar_batch(base / "test", _cycle(n_test, 3, 1), "fine_labels")
    (base / "meta").write_bytes(pickle.dumps({"fine_label_names": CIFAR100_NAMES, "coarse_label_names": ["fruit", "fish", "people"]}))
    return FakeInfo(n_train, n_test, [n.replace("_", " ") for n in CIFAR100_NAMES])


STL10_NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def make_stl10(root: Path, n_train: int = 10, n_test: int = 5) -> FakeInfo:
    base = root / "stl10_binary"
    base.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = _cycle(n, 10)
        # N x 3 x 96 x 96, column-major per plane in the real files (a solid colour does not care)
        images = np.stack([np.stack([np.full((96, 96), encode(y)), np.full((96, 96), 90), np.full((96, 96), 90)]) for y in labels])
        (base / f"{split}_X.bin").write_bytes(images.astype(np.uint8).tobytes())
        (base / f"{split}_y.bin").write_bytes((np.array(labels) + 1).astype(np.uint8).tobytes())  # 1-based
    (base / "class_names.txt").write_text("\n".join(STL10_NAMES) + "\n")
    return FakeInfo(n_train, n_test, list(STL10_NAMES))


def make_flowers102(root: Path, n_train: int = 10, n_val: int = 3, n_test: int = 6) -> FakeInfo:
    """flowers-102/jpg/image_NNNNN.jpg + imagelabels.mat (1-based labels) + setid.mat (1-based ids)."""
    import scipy.io

    from task_arithmetic.data.real.flowers102 import CLASSNAMES

    base = root / "flowers-102"
    total = n_train + n_val + n_test
    labels = _cycle(total, 4)
    for i, label in enumerate(labels, 1):
        save_image(base / f"jpg/image_{i:05d}.jpg", label)
    ids = np.arange(1, total + 1)
    scipy.io.savemat(base / "imagelabels.mat", {"labels": (np.array(labels) + 1).reshape(1, -1)})
    # ids interleaved, as in the real setid.mat
    scipy.io.savemat(base / "setid.mat", {"trnid": ids[n_val + n_test :].reshape(1, -1), "valid": ids[:n_val].reshape(1, -1), "tstid": ids[n_val : n_val + n_test].reshape(1, -1)})
    return FakeInfo(n_train, n_test, list(CLASSNAMES))


PET_BREEDS = ["Abyssinian", "american_bulldog", "american_pit_bull_terrier"]  # labels 1..3; cats capitalised


def make_oxford_pets(root: Path, n_train: int = 12, n_test: int = 6) -> FakeInfo:
    from task_arithmetic.data.real.oxford_pets import CLASSNAMES

    base = root / "oxford-iiit-pet"
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    number = 0
    for split, n in (("trainval", n_train), ("test", n_test)):
        lines = []
        for label in _cycle(n, len(PET_BREEDS)):
            number += 1
            image_id = f"{PET_BREEDS[label]}_{number}"
            save_image(base / f"images/{image_id}.jpg", label)
            lines.append(f"{image_id} {label + 1} {1 if label == 0 else 2} {label + 1}")
        (base / f"annotations/{split}.txt").write_text("\n".join(lines) + "\n")
    return FakeInfo(n_train, n_test, list(CLASSNAMES))


def make_pcam(root: Path, n_train: int = 20, n_test: int = 6) -> FakeInfo:
    import h5py

    from task_arithmetic.data.real.pcam import CLASSNAMES

    base = root / "pcam"
    base.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = _cycle(n, 2)
        with h5py.File(base / f"camelyonpatch_level_2_split_{split}_x.h5", "w") as f:
            f.create_dataset("x", data=np.stack([_pixels(y) for y in labels]))
        with h5py.File(base / f"camelyonpatch_level_2_split_{split}_y.h5", "w") as f:
            f.create_dataset("y", data=np.array(labels, dtype=np.uint8).reshape(-1, 1, 1, 1))
    return FakeInfo(n_train, n_test, list(CLASSNAMES))


def make_fer2013(root: Path, n_train: int = 14, n_public: int = 4, n_private: int = 3, icml: bool = False) -> FakeInfo:
    """fer2013/fer2013.csv (emotion,pixels,Usage) or, with icml=True, icml_face_data.csv (emotion, Usage, pixels)."""
    from task_arithmetic.data.real.fer2013 import CLASSNAMES

    rows = []
    for usage, n in (("Training", n_train), ("PublicTest", n_public), ("PrivateTest", n_private)):
        for label in _cycle(n, 7, len(rows)):
            rows.append((label, " ".join(str(v) for v in _pixels(label, channels=1).ravel()), usage))
    base = root / "fer2013"
    base.mkdir(parents=True, exist_ok=True)
    if icml:
        text = "emotion, Usage, pixels\n" + "".join(f"{e},{u},{p}\n" for e, p, u in rows)
        (base / "icml_face_data.csv").write_text(text)
    else:
        (base / "fer2013.csv").write_text("emotion,pixels,Usage\n" + "".join(f"{e},{p},{u}\n" for e, p, u in rows))
    return FakeInfo(n_train, n_public + n_private, list(CLASSNAMES))


FOOD_CLASSES = ["apple_pie", "baby_back_ribs", "baklava"]


def make_food101(root: Path, per_class_train: int = 4, per_class_test: int = 2) -> FakeInfo:
    import json

    base = root / "food-101"
    meta = {"train": {}, "test": {}}
    number = 0
    for label, cls in enumerate(FOOD_CLASSES):
        for split, n in (("train", per_class_train), ("test", per_class_test)):
            for _ in range(n):
                number += 1
                save_image(base / f"images/{cls}/{number}.jpg", label)
                meta[split].setdefault(cls, []).append(f"{cls}/{number}")
    (base / "meta").mkdir(parents=True, exist_ok=True)
    for split, entries in meta.items():
        (base / f"meta/{split}.json").write_text(json.dumps(entries))
    (base / "meta/classes.txt").write_text("\n".join(FOOD_CLASSES) + "\n")
    n = len(FOOD_CLASSES)
    return FakeInfo(n * per_class_train, n * per_class_test, [c.replace("_", " ") for c in FOOD_CLASSES])


def make_rendered_sst2(root: Path, per_class_train: int = 6, per_class_test: int = 3) -> FakeInfo:
    for label, cls in enumerate(("negative", "positive")):
        for split, n in (("train", per_class_train), ("valid", 1), ("test", per_class_test)):
            for i in range(n):
                save_image(root / f"rendered-sst2/{split}/{cls}/{i}.png", label)
    return FakeInfo(2 * per_class_train, 2 * per_class_test, ["negative", "positive"])


RAW_MAKERS = {"DTD": make_dtd_raw, "EuroSAT": make_eurosat_raw, "SUN397": make_sun397_raw, "RESISC45": make_resisc45_raw}
READY_MAKERS = {"Cars": make_cars, "GTSRB": make_gtsrb, "MNIST": make_mnist, "SVHN": make_svhn, "ImageNet": make_imagenet}
# The twelve extra tasks of real14/real20 (none needs a hand-made split).
EXTRA_MAKERS = {
    "Flowers102": make_flowers102,
    "PCAM": make_pcam,
    "FER2013": make_fer2013,
    "OxfordIIITPet": make_oxford_pets,
    "STL10": make_stl10,
    "CIFAR100": make_cifar100,
    "CIFAR10": make_cifar10,
    "Food101": make_food101,
    "FashionMNIST": make_fashion_mnist,
    "EMNIST": make_emnist,
    "KMNIST": make_kmnist,
    "RenderedSST2": make_rendered_sst2,
}


def make_all(root: Path, split: bool = True, extra: bool = True) -> dict[str, FakeInfo]:
    """Every dataset under `root`; with split=True the hand-made splits are made by the dataset tool.
    extra=False leaves out the twelve tasks of real14/real20 (a real8-only copy)."""
    root = Path(root)
    makers = {**READY_MAKERS, **RAW_MAKERS, **(EXTRA_MAKERS if extra else {})}
    info = {name: make(root) for name, make in makers.items()}
    if split:
        from task_arithmetic.data.real import tool

        tool.split(root)
    return info
