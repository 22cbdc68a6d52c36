"""Where each real task lives on the Hugging Face hub: the copies FusionBench evaluates on.

One `HubSource` per task: the dataset repository, its config folder, which hub split serves as
our train and test, the image and label columns, and how the copy's label names map onto the
suite's class names. `prepare_datasets.py download` fetches these files; `hub.py` reads them.

What was checked, and where (FB = tanganke/fusion_bench at 54c9e8c, its
config/dataset/image_classification/{train,test,val}/<name>.yaml and
fusion_bench/tasks/clip_classification/<name>.py; card = the repository's dataset card, file
tree or viewer page on the hub, as the search tool had them):

  task          repository (config)               train / test         columns       checked in
  SUN397        tanganke/sun397                   train / test          image, label  FB yaml; viewer: 19.9k / 19.9k rows
  Cars          tanganke/stanford_cars            train / test          image, label  FB yaml; viewer: label ClassLabel, 196 names "AM General Hummer SUV 2000", ...
  RESISC45      tanganke/resisc45                 train / test          image, label  FB yaml
  EuroSAT       tanganke/eurosat                  train / test          image, label  FB yaml; card: parquet (converted 2024-05)
  SVHN          ufldl-stanford/svhn (cropped_digits) train / test       image, label  FB yaml (_args_: [ufldl-stanford/svhn, cropped_digits]); card: cropped_digits/{train,test,extra}-*.parquet, names '0'..'9'
  GTSRB         tanganke/gtsrb                    train / test          image, label  FB yaml
  MNIST         ylecun/mnist                      train / test          image, label  FB yaml
  DTD           tanganke/dtd                      train / test          image, label  FB yaml; card: data/{train,test}-00000-of-00001.parquet
  Flowers102    dpdl-benchmark/oxford_flowers102  train / test          image, label  FB yaml
  PCAM          1aurent/PatchCamelyon             train / test          image, label  FB yaml; card: data/{train,valid,test}-*.parquet, label bool, 262,144 / 32,768
  FER2013       clip-benchmark/wds_fer2013        train / test          jpg, cls      FB fer2013.py (load_fer2013 renames jpg->image, cls->label);
                                                                                  card: webdataset train/{0..3}.tar, test/{0..3}.tar, classnames.txt; viewer: cls int64 0..6
  OxfordIIITPet timm/oxford-iiit-pet              train / test          image, label  FB yaml; card: label ClassLabel abyssinian, american_bulldog, ... (37)
  STL10         tanganke/stl10                    train / test          image, label  FB yaml
  CIFAR100      tanganke/cifar100                 train / test          image, label  FB yaml (FB reads item["label"])
  CIFAR10       tanganke/cifar10                  train / test          image, label  FB yaml
  Food101       ethz/food101                      train / validation    image, label  FB yaml (test = split validation); card: data/{train,validation}-*.parquet, 75,750 / 25,250, names apple_pie, ...
  FashionMNIST  zalando-datasets/fashion_mnist    train / test          image, label  FB yaml
  EMNIST        tanganke/emnist_letters           train / test          image, label  FB yaml; FB maps label 0 -> "A" (labels 0..25)
  KMNIST        tanganke/kmnist                   train / test          image, label  FB yaml
  RenderedSST2  nateraw/rendered-sst2             train / test          image, label  FB yaml
  ImageNet      (none: gated on the hub; stays a local folder)

Not checked (no card text found): the label names of tanganke/{sun397,resisc45,eurosat,gtsrb,
stl10,cifar10,cifar100,emnist_letters,kmnist}, ylecun/mnist, dpdl-benchmark/oxford_flowers102,
zalando-datasets/fashion_mnist and nateraw/rendered-sst2, and the file layout of every repository
but DTD, SVHN, PCAM, Food101 and FER2013. Hence the loader matches split files by pattern (any
`<split>-*.parquet` or `<split>/*.parquet` under the config folder) and checks every copy's label
names against the class list when it reads it (hub.py), refusing a mismatch.

FER2013's copy orders its labels alphabetically (angry, disgusted, fearful, happy, neutral, sad,
surprised: FB's list and the copy's classnames.txt), not in the Kaggle CSV's order the local
reader uses; the copy's own names set the order, so its labels and heads agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import eurosat, fer2013, flowers102, gtsrb, mnist_like, oxford_pets, pcam, rendered_sst2
from .common import DIGITS, readable


def _sun397_name(name: str) -> str:
    """'/a/abbey' or 'a_abbey' (the class path) -> 'abbey'; a name already plain stays (underscores -> spaces)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p]
    if len(parts) > 1 and len(parts[0]) == 1:
        return readable("_".join(parts[1:]))
    if len(name) > 2 and name[1] == "_" and name[0].isalpha():
        return readable(name[2:])
    return readable(name)


@dataclass(frozen=True)
class HubSource:
    task: str
    repo: str  # owner/name of the dataset repository
    splits: dict[str, str]  # our split -> the hub's split name
    config: str | None = None  # the config's folder in the repository (SVHN: cropped_digits)
    image: str = "image"
    label: str = "label"
    builder: str = "parquet"  # the `datasets` builder that reads the files: parquet or webdataset
    # The suite's class names in its label order, when fixed in code; None: the copy's own label
    # names (made readable by `readable`) are the class names.
    classnames: tuple[str, ...] | None = None
    aliases: dict[str, str] = field(default_factory=dict)  # a copy's spelling -> the suite's name
    readable: Callable[[str], str] = readable
    names_file: str | None = None  # a webdataset copy's label names, one a line, in label order
    size_gb: float | None = None  # download size of the needed splits, where a card states it

    @property
    def owner_name(self) -> tuple[str, str]:
        owner, name = self.repo.split("/")
        return owner, name

    def patterns(self, split: str) -> tuple[str, ...]:
        """fnmatch patterns (relative to the copy's root) of the files holding our `split`."""
        hub_split = self.splits[split]
        prefix = f"{self.config}/" if self.config else ""
        if self.builder == "webdataset":
            return (f"{prefix}{hub_split}/*.tar",)
        return (f"{prefix}{hub_split}-*.parquet", f"{prefix}*/{hub_split}-*.parquet", f"{prefix}{hub_split}/*.parquet")

    def download_patterns(self) -> list[str]:
        extra = ["README.md"] + ([self.names_file] if self.names_file else [])
        return extra + [pattern for split in ("train", "test") for pattern in self.patterns(split)]


_TRAIN_TEST = {"train": "train", "test": "test"}

SOURCES: dict[str, HubSource] = {
    source.task: source
    for source in (
        HubSource("SUN397", "tanganke/sun397", _TRAIN_TEST, readable=_sun397_name),
        HubSource("Cars", "tanganke/stanford_cars", _TRAIN_TEST),
        HubSource("RESISC45", "tanganke/resisc45", _TRAIN_TEST),
        HubSource("EuroSAT", "tanganke/eurosat", _TRAIN_TEST, classnames=tuple(eurosat.READABLE.values()), aliases=dict(eurosat.READABLE)),
        HubSource("SVHN", "ufldl-stanford/svhn", _TRAIN_TEST, config="cropped_digits", classnames=DIGITS, size_gb=0.18),
        HubSource("GTSRB", "tanganke/gtsrb", _TRAIN_TEST, classnames=gtsrb.CLASSNAMES),
        HubSource("MNIST", "ylecun/mnist", _TRAIN_TEST, classnames=DIGITS),
        HubSource("DTD", "tanganke/dtd", _TRAIN_TEST, size_gb=0.63),
        HubSource("Flowers102", "dpdl-benchmark/oxford_flowers102", _TRAIN_TEST, classnames=flowers102.CLASSNAMES),
        HubSource("PCAM", "1aurent/PatchCamelyon", _TRAIN_TEST, classnames=pcam.CLASSNAMES, size_gb=6.9),
        HubSource(
            "FER2013", "clip-benchmark/wds_fer2013", _TRAIN_TEST, image="jpg", label="cls", builder="webdataset",
            classnames=fer2013.CLASSNAMES, aliases={"disgust": "disgusted", "fear": "fearful", "surprise": "surprised"},
            names_file="classnames.txt", size_gb=0.2,
        ),  # fmt: skip
        HubSource("OxfordIIITPet", "timm/oxford-iiit-pet", _TRAIN_TEST, classnames=oxford_pets.CLASSNAMES),
        HubSource("STL10", "tanganke/stl10", _TRAIN_TEST),
        HubSource("CIFAR100", "tanganke/cifar100", _TRAIN_TEST),
        HubSource("CIFAR10", "tanganke/cifar10", _TRAIN_TEST),
        HubSource("Food101", "ethz/food101", {"train": "train", "test": "validation"}, size_gb=5.06),
        HubSource("FashionMNIST", "zalando-datasets/fashion_mnist", _TRAIN_TEST, classnames=mnist_like.FASHION_CLASSNAMES),
        HubSource("EMNIST", "tanganke/emnist_letters", _TRAIN_TEST, classnames=mnist_like.EMNIST_CLASSNAMES),
        HubSource("KMNIST", "tanganke/kmnist", _TRAIN_TEST, classnames=mnist_like.KMNIST_CLASSNAMES),
        HubSource("RenderedSST2", "nateraw/rendered-sst2", _TRAIN_TEST, classnames=rendered_sst2.CLASSNAMES),
    )
}

GATED = {"ImageNet": "ImageNet is gated on the hub and is never downloaded here: put ILSVRC-2012 under imagenet/{train,val}/<wnid>/ yourself"}
