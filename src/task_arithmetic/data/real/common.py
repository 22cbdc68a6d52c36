"""What every real dataset shares: its description, the check for missing files and the one-line
error that tells the user what to put where under `--data-location`.

Nothing here downloads: every loader reads a layout that must already be on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from torch.utils.data import Dataset

from ...errors import UserError
from .hub import HubCopy, find_copy

if TYPE_CHECKING:
    from .hub_sources import HubSource

TOOL = "python src/prepare_datasets.py"
DIGITS = tuple(str(d) for d in range(10))

# (root, split in {"train", "test"}, transform) -> Dataset of (RGB PIL image or transformed, int label)
Builder = Callable[[Path, str, Callable | None], Dataset]
# (root, part in {"train", "test", "classnames"}) -> paths relative to root that are absent
MissingCheck = Callable[[Path, str], list[str]]


@dataclass(frozen=True)
class Splitter:
    """Makes a dataset's hand-made split from its raw download (see prepare_datasets.py split)."""

    raw_layout: str  # one line: the extracted download this splitter reads
    raw_missing: Callable[[Path], list[str]]
    make: Callable[[Path], list[str]]  # builds what is absent; returns one line per action taken


@dataclass(frozen=True)
class RealDataset:
    name: str
    num_classes: int  # of the full dataset; fewer found on disk means an incomplete copy
    templates: tuple[str, ...]
    layout: str  # one line, paths relative to --data-location
    missing: MissingCheck
    build: Builder
    classnames: Callable[[Path], list[str]]
    # Fine-tuning length at batch 128; None makes the user pass --epochs or --max-steps. The eight
    # task-vectors tasks keep that paper's epochs. The twelve tasks of the 14/20-task suites take
    # the epochs TALL masks (Wang et al., ICML 2024), which introduced those suites, fine-tuned each
    # task with: the per-dataset epochs table in finetune.py of github.com/nik-dim/tall_masks (which
    # holds out Val as this suite does). Each value's comment gives its length in steps, ceil((train
    # split - Val) / 128) an epoch times the epochs: about the task-vectors paper's 2000 steps,
    # except Flowers102 (1176).
    epochs: int | None = None
    is_control: bool = False
    splitter: Splitter | None = None
    hub: HubSource | None = None  # its Hugging Face hub copy (hub_sources.py), read when the local layout is absent

    def require(self, root: Path, part: str) -> None:
        absent = self.missing(root, part)
        if absent:
            raise missing_error(self, root, absent)

    def local_complete(self, root: Path) -> bool:
        return not any(self.missing(Path(root), part) for part in ("train", "test", "classnames"))

    def hub_copy(self, root: Path) -> HubCopy | None:
        """The hub copy this task reads: only when today's local layout is incomplete, so that
        results on a local copy keep reading it (the split fingerprints tell the two apart)."""
        return None if self.hub is None or self.local_complete(root) else find_copy(self.hub, Path(root))

    def source(self, root: Path) -> str:
        copy = self.hub_copy(root)
        return copy.describe() if copy is not None else f"local layout under {root}"

    def load_split(self, root: Path, split: str, transform: Callable | None = None) -> Dataset:
        if split not in ("train", "test"):
            raise UserError(f"{self.name}: unknown split '{split}'; valid splits: train, test")
        root = Path(root)
        copy = self.hub_copy(root)
        if copy is not None:
            return copy.split(split, transform)
        self.require(root, split)
        try:
            return self.build(root, split, transform)
        except UserError:
            raise
        except FileNotFoundError as err:
            # e.g. a class folder without images: torchvision's message names the folder.
            raise UserError(f"{self.name}: incomplete data under {root}: {err}; expected layout: {self.layout}") from None
        except Exception as err:  # noqa: BLE001 - third-party readers fail on damaged files in many ways (RuntimeError, ValueError, EOFError, ...)
            detail = " ".join(str(err).split())[:200]
            raise UserError(
                f"{self.name}: the {split} files under {root} cannot be read ({type(err).__name__}: {detail}); "
                f"the copy is damaged or not in the expected layout ({self.layout}): download or extract it again"
            ) from None

    def load_classnames(self, root: Path) -> list[str]:
        root = Path(root)
        copy = self.hub_copy(root)
        if copy is not None:
            return copy.classnames()
        self.require(root, "classnames")
        return self.classnames(root)


def missing_error(dataset: RealDataset, root: Path, absent: list[str]) -> UserError:
    hint = f"`{TOOL} check --data-location {root}` lists what each task still needs"
    if dataset.hub is not None:
        hint = f"or fetch its hub copy ({dataset.hub.repo}) with `{TOOL} download --tasks {dataset.name} --data-location {root}`; " + hint
    if dataset.splitter is not None:
        hint = f"make the split folders from the raw download ({dataset.splitter.raw_layout}) with `{TOOL} split --data-location {root} --tasks {dataset.name}`; " + hint
    return UserError(
        f"{dataset.name} data not found under --data-location {root}: missing {', '.join(absent)}; "
        f"expected layout: {dataset.layout}; {hint}"
    )


def absent(root: Path, *relative: str) -> list[str]:
    return [rel for rel in relative if not (root / rel).exists()]


class RGBThen:
    """Convert to RGB before the user's transform (grey MNIST must look like every other task)."""

    def __init__(self, transform: Callable | None):
        self.transform = transform

    def __call__(self, image):
        image = image.convert("RGB")
        return image if self.transform is None else self.transform(image)


def class_folders(folder: Path) -> list[str]:
    """Class folder names in label order, by the same rule ImageFolder uses."""
    from torchvision.datasets.folder import find_classes

    return find_classes(str(folder))[0]


def image_folder(folder: Path, transform: Callable | None, classes: list[str], name: str, is_valid_file: Callable[[str], bool] | None = None) -> Dataset:
    """An ImageFolder whose labels must follow `classes` (the train folder's), or a UserError.

    A test folder with a class more or less than train would silently shift every label after it.
    """
    from torchvision.datasets import ImageFolder

    dataset = ImageFolder(str(folder), transform=transform, is_valid_file=is_valid_file)
    if dataset.classes != classes:
        extra = sorted(set(dataset.classes) - set(classes))
        lacking = sorted(set(classes) - set(dataset.classes))
        raise UserError(
            f"{name}: the class folders of {folder} differ from the train split's "
            f"(extra: {', '.join(extra) or 'none'}; missing: {', '.join(lacking) or 'none'}); remake the split folders"
        )
    return dataset


def readable(folder_name: str) -> str:
    return folder_name.replace("_", " ").strip()
