"""The real benchmark ("real8"): the eight tasks of the task-arithmetic papers plus ImageNet as the
control task, each read from its standard layout under `--data-location` (never downloaded).

Layouts (relative to --data-location; `python src/prepare_datasets.py check` reports what is missing):
  Cars      stanford_cars/devkit/{cars_meta,cars_train_annos}.mat, stanford_cars/cars_test_annos_withlabels.mat,
            stanford_cars/cars_{train,test}/*.jpg                        (torchvision StanfordCars)
  DTD       dtd/{train,test}/<class>/                                    (made by `prepare_datasets.py split`)
  EuroSAT   EuroSAT_splits/{train,test}/<class>/                         (made by `prepare_datasets.py split`)
  GTSRB     gtsrb/GTSRB/Training/<class>/*.ppm, gtsrb/GTSRB/Final_Test/Images/*.ppm, gtsrb/GT-final_test.csv
  MNIST     MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte        (torchvision MNIST)
  RESISC45  resisc45/NWPU-RESISC45/<class>/ + resisc45/resisc45-{train,test}.txt
  SUN397    sun397/{train,test}/<a_abbey...>/                            (made by `prepare_datasets.py split`)
  SVHN      svhn/{train,test}_32x32.mat                                  (torchvision SVHN)
  ImageNet  imagenet/{train,val}/<wnid>/ (+ imagenet/classnames.txt or meta.bin for a partial copy)
"""

from __future__ import annotations

from ..registry import TaskSpec, register_task
from . import cars, dtd, eurosat, gtsrb, imagenet, mnist, resisc45, sun397, svhn
from .common import RealDataset

BENCHMARK = "real8"
DATASETS: dict[str, RealDataset] = {
    module.DATASET.name: module.DATASET for module in (cars, dtd, eurosat, gtsrb, mnist, resisc45, sun397, svhn, imagenet)
}


def task_spec(dataset: RealDataset) -> TaskSpec:
    return TaskSpec(
        name=dataset.name,
        benchmark=BENCHMARK,
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


__all__ = ["BENCHMARK", "DATASETS", "register_tasks", "task_spec"]
