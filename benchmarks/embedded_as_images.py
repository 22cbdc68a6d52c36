"""The embedded tasks as image files, so they go through the real-data path (PIL decoding, the
model's transforms, the decode cache) instead of the in-memory tensors the embedded study uses.

Used as `TA_EXTRA_TASKS=benchmarks/embedded_as_images.py` by benchmarks/bench_train_crop.py:
`export(root, size)` writes each task's train and test split as PNGs in ImageFolder layout
under <root>/embedded_images/<size>/<task>/{train,test}/<class index>/, upsampled from the
rendered 32x32 images to `size` (width x height) with Pillow's bicubic filter; `register_tasks`
registers them as Img<Task><W>x<H> with the embedded task's classes, templates and defaults.
"""

from __future__ import annotations

import functools
from pathlib import Path

SIZES = ((32, 32), (64, 48))  # as rendered (the records keep them: exact) and 4:3 larger (squashed: approximate)
TASKS = ("Digits", "LandUse", "Landscapes", "Shapes")


def name(task: str, size: tuple[int, int]) -> str:
    return f"Img{task}{size[0]}x{size[1]}"


def folder(root: Path, task: str, size: tuple[int, int]) -> Path:
    return Path(root) / "embedded_images" / f"{size[0]}x{size[1]}" / task


def export(root: Path, size: tuple[int, int]) -> None:
    """Write every task's splits once (a `.done` file marks a finished export)."""
    from PIL import Image

    from task_arithmetic.embedded.catalog import ALL_TASKS
    from task_arithmetic.embedded.datasets import split_arrays

    for task in (t for t in ALL_TASKS if t.name in TASKS):
        target = folder(root, task.name, size)
        if (target / ".done").is_file():
            continue
        for split in ("train", "test"):
            images, labels = split_arrays(task, split, Path(root))
            for i, (image, label) in enumerate(zip(images, labels)):
                path = target / split / f"{int(label):03d}" / f"{i:05d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                picture = Image.fromarray(image)
                if picture.size != size:
                    picture = picture.resize(size, Image.BICUBIC)
                picture.save(path)
        (target / ".done").write_text("")


def _load(task: str, size: tuple[int, int], data_location: Path, split: str, transform=None):
    from torchvision.datasets import ImageFolder

    return ImageFolder(str(folder(data_location, task, size) / split), transform=transform)


def register_tasks() -> None:
    from task_arithmetic.data.registry import TaskSpec, register_task
    from task_arithmetic.embedded.catalog import ALL_TASKS

    for task in (t for t in ALL_TASKS if t.name in TASKS):
        for size in SIZES:
            register_task(TaskSpec(
                name=name(task.name, size), benchmark=f"embedded_images_{size[0]}x{size[1]}", templates=task.templates,
                load_split=functools.partial(_load, task.name, size), load_classnames=lambda _, t=task: list(t.class_names()),
                expected_layout="written by benchmarks/embedded_as_images.py export() under <data>/embedded_images/",
                is_control=task.is_control, tensor_native=False, defaults=dict(task.defaults),
            ))
