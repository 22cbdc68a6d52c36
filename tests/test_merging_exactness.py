"""The second round of merging methods against FusionBench 0.2.33's own outputs.

tests/fixtures/merging_fusionbench/make_fixtures.py ran FusionBench's classes (WUDIMerging,
MagMaxAlgorithm, TaskSingularVectorMerging, RegMeanAlgorithmForCLIP, RegMeanAlgorithmForCLIPPlusPlus,
FisherMergingForCLIPVisionModel) and its TALL-mask function on tiny float64 HF CLIPVisionModels
(three fine-tuned from one pre-trained), with each task's images, zero-shot head and projection
given directly and the order its loaders drew recorded. Here the suite's classes run on the same
models and the same batches; every merged entry must match to 1e-6. The data-based methods are also
checked on open_clip copies of the models (the suite's own architecture: packed attention, the
projection inside the encoder), converted both ways with checkpoints/hf_convert.py.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from task_arithmetic.merging.adamerging import TestTimeData, TestTimeTask
from task_arithmetic.models.heads import ClassificationHead

FIXTURES = Path(__file__).parent / "fixtures" / "merging_fusionbench"
META = json.loads((FIXTURES / "fixtures.json").read_text())
INPUTS = load_file(str(FIXTURES / "inputs.safetensors"))
OUTPUTS = load_file(str(FIXTURES / "outputs.safetensors"))
TASKS = META["tasks"]
TOL = 1e-6


def hf_config():
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(**META["config"], attn_implementation="eager")


def own_names(state, model):
    """transformers 5's CLIPVisionModel has no `vision_model.` prefix (the fixtures were made with 4.x)."""
    own = model.state_dict()
    return {(k if k in own else k.removeprefix("vision_model.")): v for k, v in state.items()}


def hf_models():
    from transformers import CLIPVisionModel

    models = {}
    for name in ["_pretrained_", *TASKS]:
        model = CLIPVisionModel(hf_config()).double().eval()
        prefix = f"model/{name}/"
        model.load_state_dict(own_names({k[len(prefix):]: v for k, v in INPUTS.items() if k.startswith(prefix)}, model))
        models[name] = model
    return models


def expected(name):
    from transformers import CLIPVisionModel

    prefix = f"{name}/"
    return own_names({k[len(prefix):]: v for k, v in OUTPUTS.items() if k.startswith(prefix)}, CLIPVisionModel(hf_config()))


def max_difference(state, reference):
    assert set(reference) <= set(state)
    return max(float((state[k].double() - v).abs().max()) for k, v in reference.items())


def batches(method, task):
    """The batches FusionBench's loader drew for `task` (every index it read, in order)."""
    order = META["orders"][method][task]
    images = INPUTS[f"images/{task}"][order]
    size = META["data"]["batch_size"]
    return [images[i : i + size] for i in range(0, len(images), size)]


def merge_data(method, features):
    tasks = {t: TestTimeTask(ClassificationHead(INPUTS[f"head/{t}"] * INPUTS["logit_scale_exp"]), iter(batches(method, t))) for t in TASKS}
    return TestTimeData(features=features, tasks=tasks, device=torch.device("cpu"))


def hf_features():
    projection = torch.nn.Linear(META["config"]["hidden_size"], META["config"]["projection_dim"], bias=False).double()
    with torch.no_grad():
        projection.weight.copy_(INPUTS["projection/weight"])
    return lambda call, pixels: projection(call(pixel_values=pixels).pooler_output)


def open_clip_models():
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    from task_arithmetic.checkpoints.hf_convert import vision_to_open_clip

    c = META["config"]
    cfg = CLIPVisionCfg(layers=c["num_hidden_layers"], width=c["hidden_size"], head_width=c["hidden_size"] // c["num_attention_heads"],
                        mlp_ratio=c["intermediate_size"] / c["hidden_size"], patch_size=c["patch_size"], image_size=c["image_size"])
    out = {}
    for name, model in hf_models().items():
        vit = _build_vision_tower(c["projection_dim"], cfg, quick_gelu=True).double().eval()  # HF CLIP's activation
        vit.load_state_dict(vision_to_open_clip(model.state_dict(), INPUTS["projection/weight"], c["num_hidden_layers"]))
        out[name] = vit
    return out


def open_clip_expected(name):
    from task_arithmetic.checkpoints.hf_convert import vision_to_open_clip

    return vision_to_open_clip(expected(name), INPUTS["projection/weight"], META["config"]["num_hidden_layers"])


# ---------------------------------------------------------------- data-free


def test_wudi_matches_fusionbench():
    from task_arithmetic.merging import WUDIMerging, wudi_merging

    models = hf_models()
    reference = expected("wudi")
    assert max_difference(WUDIMerging(iter_num=400).run(models).state_dict(), reference) < TOL
    # The 400 Adam steps matter: the merge is not the plain sum the optimisation starts from.
    base = models["_pretrained_"].state_dict()
    summed = {k: base[k] + sum(models[t].state_dict()[k] - base[k] for t in TASKS) for k in reference}
    assert max_difference(summed, {k: v for k, v in reference.items() if v.ndim == 2}) > 1e-3
    # FusionBench's functional form, on task-vector state dicts.
    tvs = [{k: models[t].state_dict()[k] - base[k] for k in base} for t in TASKS]
    functional = {k: base[k] + v for k, v in wudi_merging(tvs, "cpu", iter_num=400).items()}
    assert max_difference(functional, reference) < TOL


@pytest.mark.parametrize("scaling", [0.5, 1.0])
def test_magmax_matches_fusionbench(scaling):
    from task_arithmetic.merging import MagMaxAlgorithm, magmax_merge

    reference = expected(f"magmax_{scaling}")
    assert max_difference(MagMaxAlgorithm(scaling_factor=scaling).run(hf_models()).state_dict(), reference) == 0
    models = hf_models()
    merged = magmax_merge(models["_pretrained_"], [models[t] for t in TASKS], scaling_factor=scaling, inplace=False)
    assert max_difference(merged.state_dict(), reference) == 0


@pytest.mark.parametrize("lam", [0.2, 0.6])
def test_tall_masks_match_fusionbench_and_consensus_an_independent_count(lam):
    """FusionBench 0.2.33's TallMaskTaskArithmeticAlgorithm fails on nn.Module pools (the fixture
    records its TypeError), so the masks are checked against its tall_mask/utils.py function, the
    original code's formula; the models and the consensus merge against NumPy on those masks."""
    from task_arithmetic.merging import ConsensusTaskArithmeticAlgorithm, TallMaskTaskArithmeticAlgorithm

    assert "TypeError" in META["tall_mask_class_error"]
    models = hf_models()
    keys = list(models["_pretrained_"].state_dict())
    flat = {n: np.concatenate([m.state_dict()[k].numpy().ravel() for k in keys]) for n, m in models.items()}
    masks = OUTPUTS[f"tall_mask_utils_{lam}/masks"].numpy().astype(bool)  # FusionBench's (T, d)
    taus = np.stack([flat[t] - flat["_pretrained_"] for t in TASKS])
    multi = taus.sum(0)
    assert 0.05 < masks.mean() < 0.95  # neither trivially all nor nothing

    def unflatten(vector):
        out, offset = {}, 0
        for k in keys:
            shape = models["_pretrained_"].state_dict()[k].shape
            out[k] = torch.from_numpy(vector[offset : offset + int(np.prod(shape))].reshape(shape).copy())
            offset += int(np.prod(shape))
        return out

    per_task = TallMaskTaskArithmeticAlgorithm(tall_mask_lambda=lam).run(models)
    assert set(per_task) == {"models", "metadata"} and list(per_task["models"]) == TASKS
    for i, task in enumerate(TASKS):
        reference = unflatten(flat["_pretrained_"] + masks[i] * multi)
        assert max_difference(per_task["models"][task].state_dict(), reference) < TOL
    for k in (1, 2, 3):
        consensus = masks.sum(0) >= k
        reference = unflatten(flat["_pretrained_"] + 0.4 * consensus * multi)
        merged = ConsensusTaskArithmeticAlgorithm(scaling_factor=0.4, prun_thre_k=k, tall_mask_lambda=lam).run(hf_models())
        assert max_difference(merged.state_dict(), reference) < TOL


@pytest.mark.parametrize(
    "settings,tag",
    [({"alpha": None}, "tsv_alpha=None"), ({"alpha": [0.5, 1.0, 1.5]}, "tsv_alpha=[0.5,1.0,1.5]")],
)
def test_tsv_m_alpha_forms_match_fusionbench(settings, tag):
    from task_arithmetic.merging import TaskSingularVectorMerging

    assert max_difference(TaskSingularVectorMerging(**settings).run(hf_models()).state_dict(), expected(tag)) < TOL


def test_tsv_m_single_task_models_match_fusionbench():
    from task_arithmetic.merging import TaskSingularVectorMerging

    result = TaskSingularVectorMerging(alpha=0.7, return_single_task_models=True).run(hf_models())
    assert list(result) == [*TASKS, "merged"]
    for name, model in result.items():
        assert max_difference(model.state_dict(), expected(f"tsv_alpha=0.7_return_single_task_models=True/{name}")) < TOL


# ---------------------------------------------------------------- data-based


DATA_METHODS = [
    ("regmean", "RegMeanAlgorithmForCLIP", {"num_regmean_examples": 8}),
    ("regmean_plusplus", "RegMeanAlgorithmForCLIPPlusPlus", {"num_regmean_examples": 8}),
    ("fisher", "FisherMergingForCLIPVisionModel", {"num_fisher_examples": 8}),
]


@pytest.mark.parametrize("name,cls,settings", DATA_METHODS)
def test_data_based_merges_match_fusionbench(name, cls, settings):
    import task_arithmetic.merging as merging

    algorithm = getattr(merging, cls)(dataloader_kwargs={"batch_size": META["data"]["batch_size"]}, **settings)
    models = hf_models()
    merged = algorithm.run(models, merge_data=merge_data(name, hf_features()))
    reference = expected(name)
    assert max_difference(merged.state_dict(), reference) < TOL
    # Not a trivial merge: the data moved it away from the plain average.
    average = {k: sum(models[t].state_dict()[k] for t in TASKS) / len(TASKS) for k in reference}
    assert max_difference(average, {k: v for k, v in reference.items() if re.search(r"(proj|fc\d)\.weight$", k)}) > 1e-3


@pytest.mark.parametrize("name,cls,settings", DATA_METHODS)
def test_data_based_merges_on_open_clip_models_match_fusionbench(name, cls, settings):
    """open_clip packs q/k/v into one in_proj_weight and never calls out_proj as a module: the Grams
    of both come from the attention hook. Its projection is a parameter the HF models lack (the
    same in every model here): Fisher's weight normalisation would count it, so it is excluded."""
    import task_arithmetic.merging as merging

    extra = {"exclude_param_names_regex": [r"proj$"]} if name == "fisher" else {}
    algorithm = getattr(merging, cls)(dataloader_kwargs={"batch_size": META["data"]["batch_size"]}, **settings, **extra)
    merged = algorithm.run(open_clip_models(), merge_data=merge_data(name, lambda call, images: call(images)))
    # HF's eager attention takes its softmax in float32 even for float64 models: 1e-8 differences.
    assert max_difference(merged.state_dict(), open_clip_expected(name)) < TOL


def test_every_fusionbench_class_name_of_the_suites_methods_imports():
    """FusionBench's exported names (its 0.2.33 fusion_bench.method._import_structure) for every method
    the suite has; the variants for other model families (GPT-2, Llama, causal LMs, Flan-T5, ResNet)
    are out of the suite's scope."""
    import task_arithmetic.merging as merging

    groups = ["dummy", "simple_average", "weighted_average", "task_arithmetic", "ties_merging", "magmax", "dare", "fisher_merging",
              "regmean", "regmean_plusplus", "adamerging", "task_singular_vector", "isotropic_merging", "tall_mask", "wudi"]
    other_families = re.compile(r"GPT2|Llama|LLama|CausalLM|FlanT5|ResNet")
    exported = META["fusion_bench_method_exports"]
    names = [n for g in groups for n in exported[g] if not other_families.search(n)]
    assert len(names) >= 25
    missing = [n for n in names if not hasattr(merging, n)]
    assert not missing, missing
    assert merging.IsotropicMergingInCommonSubspace is merging.ISO_C_Merge


# Where the suite's shipped config deliberately differs from FusionBench's (config/README.md says why).
CONFIG_DIFFERENCES = {
    ("ties_merging.yaml", "merge_func"): ("mean", "sum"),  # the paper's disjoint mean
    ("dare/ties_merging.yaml", "merge_func"): ("mean", "sum"),
    ("linear/weighted_average.yaml", "weights"): ("???", [0.5, 0.5]),  # FusionBench's example is for two models
}
SUITE_ONLY_KEYS = {"seed"}  # DARE's masks have their own seed here (FusionBench: the global generator)


def test_shipped_configs_carry_fusionbench_keys_and_defaults_and_its_own_files_instantiate():
    from omegaconf import OmegaConf

    from task_arithmetic.merging.targets import instantiate, target_class, target_of

    shipped = Path(__file__).parents[1] / "config" / "method"
    theirs_all = META["fusion_bench_method_configs"]
    assert {"wudi/wudi.yaml", "magmax/magmax.yaml", "regmean/clip_regmean.yaml", "fisher_merging/clip_fisher_merging.yaml",
            "tall_mask/task_arithmetic.yaml", "adamerging/clip.yaml", "task_singular_vector/TaskSingularVectorMerging.yaml"} <= set(theirs_all)
    for name, theirs in theirs_all.items():
        ours = OmegaConf.to_container(OmegaConf.load(shipped / name), resolve=False) or {}
        assert target_class("method", target_of("method", ours)) is target_class("method", target_of("method", theirs)), name
        assert set(ours) - set(theirs) <= SUITE_ONLY_KEYS and set(theirs) <= set(ours), name
        for key, value in theirs.items():
            if key != "_target_":
                assert (ours[key], value) == CONFIG_DIFFERENCES.get((name, key), (value, value)), (name, key)
        # FusionBench's own file, as it is (its interpolations and ??? filled as a user would).
        node = {k: (False if v == "${fast_dev_run}" else v) for k, v in theirs.items()}
        if node.get("weights") == "???":
            node["weights"] = [0.5, 0.5]
        instantiate("method", node)
