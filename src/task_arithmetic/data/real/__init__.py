"""The real benchmarks: "real8" (the eight tasks of the task-arithmetic papers), "real14" and
"real20" (the 14- and 20-task benchmarks of TALL masks and FusionBench's TALL14/TALL20 pools),
each with ImageNet as the control task. Every task is read from its standard layout under
`--data-location`, or, when that is absent, from its Hugging Face hub copy (hub.py, hub_sources.py:
`<data-location>/hf/<owner>/<name>/` as `prepare_datasets.py download` writes it, or the hub cache).

Layouts (relative to --data-location; `python src/prepare_datasets.py check` reports what is missing):
  Cars          stanford_cars/devkit/{cars_meta,cars_train_annos}.mat, stanford_cars/cars_test_annos_withlabels.mat,
                stanford_cars/cars_{train,test}/*.jpg                        (torchvision StanfordCars)
  DTD           dtd/{train,test}/<class>/                                    (made by `prepare_datasets.py split`)
  EuroSAT       EuroSAT_splits/{train,test}/<class>/                         (made by `prepare_datasets.py split`)
  GTSRB         gtsrb/GTSRB/Training/<class>/*.ppm, gtsrb/GTSRB/Final_Test/Images/*.ppm, gtsrb/GT-final_test.csv
  MNIST         MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte        (torchvision MNIST)
  RESISC45      resisc45/NWPU-RESISC45/<class>/ + resisc45/resisc45-{train,test}.txt
  SUN397        sun397/{train,test}/<a_abbey...>/                            (made by `prepare_datasets.py split`)
  SVHN          svhn/{train,test}_32x32.mat                                  (torchvision SVHN)
  Flowers102    flowers-102/jpg/, flowers-102/{imagelabels,setid}.mat        (torchvision Flowers102)
  PCAM          pcam/camelyonpatch_level_2_split_{train,test}_{x,y}.h5       (torchvision PCAM, needs h5py)
  FER2013       fer2013/fer2013.csv or fer2013/icml_face_data.csv            (the full Kaggle CSV)
  OxfordIIITPet oxford-iiit-pet/images/, oxford-iiit-pet/annotations/{trainval,test}.txt
  STL10         stl10_binary/{train,test}_{X,y}.bin, stl10_binary/class_names.txt
  CIFAR100      cifar-100-python/{train,test,meta}
  CIFAR10       cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}
  Food101       food-101/images/<class>/, food-101/meta/{train,test}.json
  FashionMNIST  FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte
  EMNIST        EMNIST/raw/emnist-letters-{train,test}-{images-idx3,labels-idx1}-ubyte   (the "letters" split)
  KMNIST        KMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte
  RenderedSST2  rendered-sst2/{train,test}/{negative,positive}/
  ImageNet      imagenet/{train,val}/<wnid>/ (+ imagenet/classnames.txt or meta.bin for a partial copy)
"""

from __future__ import annotations

import dataclasses

from ..real_suites import CONTROL, REAL8, REAL14, REAL20, SUITES
from ..registry import BenchmarkSpec, TaskSpec, register_benchmark, register_task
from . import cars, cifar, dtd, eurosat, fer2013, flowers102, food101, gtsrb, imagenet, mnist, mnist_like, oxford_pets, pcam, rendered_sst2, resisc45, stl10, sun397, svhn
from .common import RealDataset
from .hub_sources import SOURCES as HUB_SOURCES

BENCHMARK = "real8"

_ALL = (
    cars.DATASET, dtd.DATASET, eurosat.DATASET, gtsrb.DATASET, mnist.DATASET, resisc45.DATASET, sun397.DATASET, svhn.DATASET,
    flowers102.DATASET, pcam.DATASET, fer2013.DATASET, oxford_pets.DATASET, stl10.DATASET, cifar.CIFAR100,
    cifar.CIFAR10, food101.DATASET, mnist_like.FASHION_MNIST, mnist_like.EMNIST, mnist_like.KMNIST, rendered_sst2.DATASET,
    imagenet.DATASET,
)  # fmt: skip
# Each task also reads its Hugging Face hub copy (hub_sources.py) when its local layout is absent.
DATASETS: dict[str, RealDataset] = {dataset.name: dataclasses.replace(dataset, hub=HUB_SOURCES.get(dataset.name)) for dataset in _ALL}


def home_benchmark(name: str) -> str:
    """The smallest suite holding the task (ImageNet, every suite's control, belongs to real8)."""
    return next((suite for suite, tasks in SUITES.items() if name in tasks), BENCHMARK)


def task_spec(dataset: RealDataset) -> TaskSpec:
    return TaskSpec(
        name=dataset.name,
        benchmark=home_benchmark(dataset.name),
        templates=dataset.templates,
        load_split=dataset.load_split,
        load_classnames=dataset.load_classnames,
        expected_layout=dataset.layout,
        is_control=dataset.is_control,
        defaults={} if dataset.epochs is None else {"epochs": dataset.epochs},
    )


def register_tasks() -> None:
    for dataset in DATASETS.values():
        register_task(task_spec(dataset))
    # real8 keeps listing its tasks in registration order (as before); the larger suites are
    # ordered lists, so their task order is the literature's.
    for suite in ("real14", "real20"):
        register_benchmark(BenchmarkSpec(suite, SUITES[suite], CONTROL))


__all__ = ["BENCHMARK", "CONTROL", "DATASETS", "REAL8", "REAL14", "REAL20", "SUITES", "register_tasks", "task_spec"]
