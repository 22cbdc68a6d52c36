"""Evaluate a Hugging Face CLIPVisionModel on registered tasks, FusionBench's CLIPVisionModelTaskPool.

A CLIPVisionModel has no projection and no text tower, so the heads and the image projection come
from a whole `CLIPModel` (`clip_model`, by default the `base_model` the fine-tuned models started
from): features = clip.visual_projection(merged(pixel_values).pooler_output), and each task's
head is built from clip's text tower with the suite's prompt templates (same recipe as the
open_clip heads; the prompts are tokenised with open_clip's copy of the OpenAI CLIP BPE, which
gives the ids of HF's CLIPTokenizer). Images are preprocessed as the `processor`'s
preprocessor_config.json says (OpenAI CLIP's resize/crop/mean/std when there is none).
Dataset names may be FusionBench's (svhn, stanford-cars, ...) or the registry's (SVHN, Cars, ...);
the data itself comes from the suite's loaders under data_location.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import open_clip
import torch
from open_clip.transform import image_transform
from torch import nn

from ...data.loaders import make_loader
from ...data.registry import get_task
from ...data.splits import SPLITS, load_dataset
from ...errors import UserError
from ...io import load_weights, save_weights
from ...models.heads import ClassificationHead, zeroshot_weights
from ...paths import DEFAULT_DATA_LOCATION
from ...runtime import pick_device
from ..adamerging import TestTimeData, TestTimeTask
from ..modelpool.hf_clip import hf_from_pretrained, hf_source_available
from .base import BaseTaskPool, endless_inputs, evaluate_task, float_embedder, summarise

if TYPE_CHECKING:
    from transformers import CLIPModel, CLIPTextConfig

FUSIONBENCH_NAMES = {
    "sun397": "SUN397",
    "stanford-cars": "Cars",
    "stanford_cars": "Cars",
    "resisc45": "RESISC45",
    "eurosat": "EuroSAT",
    "svhn": "SVHN",
    "gtsrb": "GTSRB",
    "mnist": "MNIST",
    "dtd": "DTD",
    # the extra tasks of FusionBench's TALL14 / TALL20 pools
    "oxford_flowers102": "Flowers102",
    "pcam": "PCAM",
    "fer2013": "FER2013",
    "oxford-iiit-pet": "OxfordIIITPet",
    "stl10": "STL10",
    "cifar100": "CIFAR100",
    "cifar10": "CIFAR10",
    "food101": "Food101",
    "fashion_mnist": "FashionMNIST",
    "emnist_letters": "EMNIST",
    "kmnist": "KMNIST",
    "rendered-sst2": "RenderedSST2",
}
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def registry_name(name: str) -> str:
    return get_task(FUSIONBENCH_NAMES.get(name, name)).name


class _TextTower(nn.Module):
    """The interface heads.zeroshot_weights expects (encode_text, logit_scale) over an HF CLIPModel."""

    def __init__(self, clip: CLIPModel):
        super().__init__()
        self.clip = clip

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.clip.get_text_features(input_ids=tokens).pooler_output


class CLIPVisionModelTaskPool(BaseTaskPool):
    def __init__(
        self,
        test_datasets: Sequence[str] | Mapping[str, Any],
        base_model: str = "openai/clip-vit-base-patch32",
        clip_model: Any = None,
        processor: Any = None,
        data_processor: Any = None,
        split: str = "test",
        data_location: str | Path | None = None,
        head_cache_dir: str | Path | None = None,
        dataloader_kwargs: Mapping[str, Any] | None = None,
        cache_dir: str | None = None,
        device: str = "auto",
        layer_wise_feature_save_path: str | None = None,
        layer_wise_feature_first_token_only: bool = True,
        layer_wise_feature_max_num: int = 1000,
    ):
        """FusionBench's schema: `clip_model`/`processor` may be from_pretrained nodes and
        `test_datasets` a mapping of load_dataset nodes, whose `split` (test, validation) is used."""
        from ..fusionbench_nodes import dataset_split, model_source

        if split not in SPLITS:
            raise UserError(f"unknown split '{split}'; valid splits: {', '.join(SPLITS)}")
        if layer_wise_feature_save_path:
            raise UserError("layer_wise_feature_save_path is not supported here; set taskpool.layer_wise_feature_save_path=null")
        self.names = list(test_datasets)
        if not self.names:
            raise UserError("test_datasets is empty; list the tasks to evaluate, e.g. [svhn, mnist]")
        self.tasks = {name: registry_name(name) for name in self.names}
        nodes = test_datasets if isinstance(test_datasets, Mapping) else {}
        self.splits = {name: dataset_split(name, nodes.get(name), split, f"taskpool.test_datasets.{name}") for name in self.names}
        self.clip_source = model_source(clip_model, "taskpool.clip_model") or base_model
        self.processor_source = model_source(processor, "taskpool.processor") or model_source(data_processor, "taskpool.data_processor") or self.clip_source
        self.split = split
        self.data_location = Path(data_location) if data_location else DEFAULT_DATA_LOCATION
        self.head_cache_dir = Path(head_cache_dir) if head_cache_dir else None
        loader_kwargs = dict(dataloader_kwargs or {})
        self.batch_size = int(loader_kwargs.get("batch_size", 128))
        self.num_workers = int(loader_kwargs.get("num_workers", 0))
        self.cache_dir = cache_dir
        self.device = device

    def evaluate(self, model: nn.Module, max_batches: int | None = None) -> dict[str, Any]:
        from transformers import CLIPModel

        device = pick_device(self.device)
        clip = hf_from_pretrained(CLIPModel, self.clip_source, self.cache_dir, "taskpool.clip_model").to(device)
        model = model.to(device).eval()
        projection = clip.visual_projection

        def features(pixels: torch.Tensor) -> torch.Tensor:
            pooled = model(pixel_values=pixels).pooler_output
            return projection(pooled.to(projection.weight.dtype))

        embed = float_embedder(model, device, features)
        transform = self.image_transform(clip.config.vision_config.image_size)
        results = {}
        for name, task in self.tasks.items():
            head = self.head(clip, task, device)
            dataset = load_dataset(task, self.splits[name], self.data_location, transform)
            loader = make_loader(dataset, self.batch_size, num_workers=self.num_workers)
            results[name] = evaluate_task(embed, head, loader, device, max_batches)
        return summarise(results)

    def test_time_data(
        self, model: nn.Module, batch_size: int, num_workers: int = 0, seed: int = 0, split: str | None = None, epochs: int | None = None
    ) -> TestTimeData:
        """Shuffled unlabeled batches of each task's split (or `split` for every task), the frozen heads
        and projection (AdaMerging; the data-based merges read one pass, `epochs`=1)."""
        if split is not None and split not in SPLITS:
            raise UserError(f"unknown split '{split}'; valid splits: {', '.join(SPLITS)}")
        from transformers import CLIPModel

        device = pick_device(self.device)
        clip = hf_from_pretrained(CLIPModel, self.clip_source, self.cache_dir, "taskpool.clip_model").to(device)
        projection = clip.visual_projection.float().requires_grad_(False)
        transform = self.image_transform(clip.config.vision_config.image_size)
        tasks = {}
        for name, task in self.tasks.items():
            head = self.head(clip, task, device).float().requires_grad_(False)
            dataset = load_dataset(task, split or self.splits[name], self.data_location, transform)
            tasks[name] = TestTimeTask(head, endless_inputs(make_loader(dataset, batch_size, shuffle=True, seed=seed, num_workers=num_workers), epochs))

        def features(call, pixels: torch.Tensor) -> torch.Tensor:
            return projection(call(pixel_values=pixels).pooler_output.float())

        return TestTimeData(features=features, tasks=tasks, device=device)

    def image_transform(self, image_size: int):
        config = self._processor_config()
        size = config.get("crop_size", image_size)
        if isinstance(size, Mapping):
            size = size.get("height", image_size)
        mean = tuple(config.get("image_mean", OPENAI_MEAN))
        std = tuple(config.get("image_std", OPENAI_STD))
        return image_transform(int(size), is_train=False, mean=mean, std=std)

    def _processor_config(self) -> dict[str, Any]:
        folder = Path(self.processor_source).expanduser()
        if folder.is_dir():
            path = folder / "preprocessor_config.json"
            return json.loads(path.read_text()) if path.is_file() else {}
        if not hf_source_available(self.processor_source, self.cache_dir):
            return {}
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(self.processor_source, "preprocessor_config.json", cache_dir=self.cache_dir)
        return json.loads(Path(cached).read_text()) if isinstance(cached, str) else {}

    @torch.no_grad()
    def head(self, clip: CLIPModel, task: str, device: torch.device) -> ClassificationHead:
        spec = get_task(task)
        classnames = spec.load_classnames(self.data_location)
        digest = hashlib.sha256(json.dumps([self.clip_source, classnames, list(spec.templates)]).encode()).hexdigest()[:16]
        path = None
        if self.head_cache_dir is not None:
            path = self.head_cache_dir / re.sub(r"[^A-Za-z0-9_.-]+", "_", self.clip_source.strip("/")) / f"{task}.safetensors"
            if path.is_file():
                tensors, meta = load_weights(path)
                if meta.get("digest") == digest:
                    return ClassificationHead(tensors["weight"]).to(device)
        # transformers types the sub-config as its constructor's input (dict | config | None); it holds the config.
        context = cast("CLIPTextConfig", clip.config.text_config).max_position_embeddings

        def tokenize(texts):
            return open_clip.tokenize(texts, context_length=context)

        weight = zeroshot_weights(_TextTower(clip), tokenize, classnames, spec.templates)
        if path is not None:
            save_weights(path, {"weight": weight}, {"format": "zeroshot_head", "task": task, "clip_model": self.clip_source, "digest": digest})
        return ClassificationHead(weight).to(device)

    def describe(self) -> dict[str, Any]:
        from ...data.fingerprints import fingerprints_or_reason  # which examples each task's parts held

        return {**super().describe(), "tasks": self.tasks, "splits": self.splits, "clip_model": self.clip_source,
                "data_fingerprints": fingerprints_or_reason(list(self.tasks.values()), self.data_location)}
