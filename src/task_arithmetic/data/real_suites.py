"""The real benchmarks' task lists, in the literature's order (FusionBench's TALL20 pool): the
eight of the task-arithmetic papers, then six more for 14, six more for 20; ImageNet is every
suite's control. Names only (no dataset code), so --help can list them instantly; data/real/
registers the datasets behind them."""

from __future__ import annotations

CONTROL = "ImageNet"
REAL8 = ("SUN397", "Cars", "RESISC45", "EuroSAT", "SVHN", "GTSRB", "MNIST", "DTD")
REAL14 = REAL8 + ("Flowers102", "PCAM", "FER2013", "OxfordIIITPet", "STL10", "CIFAR100")
REAL20 = REAL14 + ("CIFAR10", "Food101", "FashionMNIST", "EMNIST", "KMNIST", "RenderedSST2")
SUITES = {"real8": REAL8, "real14": REAL14, "real20": REAL20}
