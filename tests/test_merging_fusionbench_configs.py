"""FusionBench's own CLIP ViT-B/32 TA8 configs, unchanged, on tiny local HF CLIP models (built from
configs, nothing downloaded) and fake copies of the eight datasets in their real formats."""

import json

import pytest
import torch
from fakedata import make_all

from task_arithmetic.merging.config import compose

TA8 = ["sun397", "stanford-cars", "resisc45", "eurosat", "svhn", "gtsrb", "mnist", "dtd"]
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=16)
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77)


def merge_main(argv):
    from merge import main

    return main.__wrapped__(argv)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from transformers import CLIPConfig, CLIPModel, CLIPVisionModel

    root = tmp_path_factory.mktemp("fb")
    make_all(root / "data")
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=16)).eval().save_pretrained(root / "clip")
    model = CLIPVisionModel.from_pretrained(root / "clip")
    base = {k: v.clone() for k, v in model.state_dict().items()}
    tuned = {}
    for seed, task in enumerate(TA8, start=1):
        gen = torch.Generator().manual_seed(seed)
        tuned[task] = {k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in base.items()}
        model.load_state_dict(tuned[task])
        model.save_pretrained(root / task)
    return root, base, tuned


def common(root, taskpool, report):
    return [
        f"taskpool={taskpool}",
        f"taskpool.base_model={root / 'clip'}",
        "taskpool.dataloader_kwargs.num_workers=0",
        f"data_location={root / 'data'}",
        f"checkpoint_root={root / 'ck'}",
        f"report_save_path={root / report}",
        "device=cpu",
        "print_config=false",
        "fast_dev_run=true",
    ]


def test_fusionbench_ta8_configs_run_unchanged(world):
    root, base, tuned = world
    # TA8 pool (defaults: train/test dataset groups) x TA8 task pool (its _template, clip_model and
    # processor as from_pretrained nodes): the one-line FusionBench command with local folders.
    models = [f"modelpool.models._pretrained_={root / 'clip'}"] + [f"modelpool.models.{t}={root / t}" for t in TA8]
    config, _ = compose(["modelpool=CLIPVisionModelPool/clip-vit-base-patch32_TA8", "taskpool=CLIPVisionModelTaskPool/clip-vit-classification_TA8"])
    assert list(config["modelpool"]["test_datasets"]) == TA8 and config["taskpool"]["clip_model"]["_target_"] == "transformers.CLIPModel.from_pretrained"
    report = merge_main(
        ["method=task_arithmetic", "method.scaling_factor=0.3", "modelpool=CLIPVisionModelPool/clip-vit-base-patch32_TA8", *models]
        + common(root, "CLIPVisionModelTaskPool/clip-vit-classification_TA8", "ta8.json")
    )
    assert set(report["results"]) == {*TA8, "average"}
    assert report["taskpool"]["splits"] == {t: "test" for t in TA8}
    assert report["taskpool"]["clip_model"] == str(root / "clip")

    # The _val task pool reads FusionBench's train_validation_split nodes as the suite's Val split;
    # the control-task pool takes its models from the /model/clip-vit group (from_pretrained nodes).
    nodes = [f"modelpool.models._pretrained_.pretrained_model_name_or_path={root / 'clip'}"]
    nodes += [f"modelpool.models.{t}.pretrained_model_name_or_path={root / t}" for t in TA8]
    saved = root / "merged"
    report = merge_main(
        ["method=simple_average", "modelpool=CLIPVisionModelPool/clip-vit-base-patch32_TA8_control_task", *nodes, f"merged_model_save_path={saved}"]
        + common(root, "CLIPVisionModelTaskPool/clip-vit-classification_TA8_val", "val.json")
    )
    assert report["taskpool"]["splits"] == {t: "val" for t in TA8}
    from transformers import CLIPVisionModel

    merged = CLIPVisionModel.from_pretrained(saved).state_dict()
    for key in [k for k in merged if merged[k].is_floating_point()][:4]:
        torch.testing.assert_close(merged[key], sum(t[key] for t in tuned.values()) / len(TA8), atol=1e-6, rtol=0)

    # The _individual pool: the pre-trained model alone through method=dummy.
    report = merge_main(
        ["method=dummy", "modelpool=CLIPVisionModelPool/clip-vit-base-patch32_individual", f"modelpool.base_model={root / 'clip'}"]
        + common(root, "CLIPVisionModelTaskPool/clip-vit-classification_TA8", "individual.json")
    )
    assert json.loads((root / "individual.json").read_text())["results"] == report["results"]
    assert report["modelpool"]["sources"] == {"_pretrained_": str(root / "clip")}
