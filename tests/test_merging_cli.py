"""The config system and src/merge.py end to end on tiny pools (toy tasks registered here)."""

import copy
import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from task_arithmetic.data.registry import TaskSpec, register_task
from task_arithmetic.errors import UserError
from task_arithmetic.io import load_weights
from task_arithmetic.merging.config import available, compose
from task_arithmetic.merging.targets import instantiate
from task_arithmetic.models.encoder import build_encoder, load_encoder
from task_arithmetic.models.factory import ModelSpec
from task_arithmetic.paths import Layout

TOY_TASKS = ("MergeToyA", "MergeToyB")
CLASSES = ["cat", "dog", "bird"]


def _toy_split(seed):
    def load(data_location, split, transform):
        gen = torch.Generator().manual_seed(seed + (0 if split == "train" else 1000))
        n = 30 if split == "train" else 20
        return TensorDataset(torch.randn(n, 3, 32, 32, generator=gen), torch.arange(n) % len(CLASSES))

    return load


for _i, _name in enumerate(TOY_TASKS):
    register_task(
        TaskSpec(
            name=_name,
            benchmark="merge_toy",
            templates=("a photo of a {}.", "a blurry {}."),
            load_split=_toy_split(_i),
            load_classnames=lambda location: list(CLASSES),
            expected_layout="generated in memory by the test",
            tensor_native=True,
        )
    )


def merge_main(argv):
    from merge import main  # src/merge.py (tests/conftest.py puts src/ on sys.path)

    return main.__wrapped__(argv)  # unwrapped: UserErrors reach the test instead of exiting


# ---------------------------------------------------------------- config system


def test_defaults_compose_and_interpolate(tmp_path):
    config, choices = compose([f"checkpoint_root={tmp_path}"])
    assert choices == {"method": "task_arithmetic", "modelpool": "embedded/TinyCLIP_all", "taskpool": "embedded/all"}
    assert config["method"] == {"_target_": "TaskArithmeticAlgorithm", "scaling_factor": 0.3}  # FusionBench's default
    assert config["taskpool"]["model"] == "TinyCLIP" and config["taskpool"]["pretrained"] == "embedded"
    assert config["modelpool"]["checkpoint_root"] == str(tmp_path) and config["results_root"].endswith("results")
    config, _ = compose(["method=ties_merging", "method.threshold=10", "method.inplace=true", "+modelpool.extra=1", "taskpool=null"])
    assert config["method"]["threshold"] == 10 and config["method"]["inplace"] is True
    assert config["modelpool"]["extra"] == 1 and config["taskpool"] is None


def test_unknown_keys_and_names_are_user_errors_listing_the_valid_ones():
    with pytest.raises(UserError, match=r"unknown config key 'method.scaling' .*valid keys: _target_, scaling_factor, inplace"):
        compose(["method.scaling=1"])
    with pytest.raises(UserError, match=r"'svhn2' is not in modelpool.models\); valid keys: _pretrained_, svhn, mnist; prefix with \+"):
        compose(["modelpool=CLIPVisionModelPool/clip-vit-base-patch32_svhn_and_mnist", "modelpool.models.svhn2=/x"])
    with pytest.raises(UserError, match="unknown method config 'nope'; available: .*task_arithmetic"):
        compose(["method=nope"])
    with pytest.raises(UserError, match="not key=value"):
        compose(["scaling_factor"])
    with pytest.raises(UserError, match="unknown config key 'devise'.*valid keys: .*device"):
        compose(["devise=cpu"])
    config, _ = compose(["modelpool=CLIPVisionModelPool/clip-vit-base-patch32_svhn_and_mnist", "+modelpool.models.dtd=/x", "taskpool=null"])
    assert config["modelpool"]["models"]["dtd"] == "/x"


def test_every_shipped_config_instantiates():
    for name in available("method"):
        config, _ = compose([f"method={name}", "taskpool=null"])
        if name in ("weighted_task_arithmetic", "linear/weighted_average"):
            with pytest.raises(UserError, match="(scaling_factors|weights) must be set"):
                instantiate("method", config["method"])
            continue
        assert instantiate("method", config["method"]).settings()
    for name in available("modelpool"):
        config, _ = compose([f"modelpool={name}", "taskpool=null"])
        pool = instantiate("modelpool", config["modelpool"])
        # the _individual pools hold the pre-trained model alone (evaluated with method=dummy)
        assert "_pretrained_" in pool.all_model_names and len(pool.model_names) >= (0 if name.endswith("_individual") else 2)
    for name in available("taskpool"):
        config, _ = compose([f"taskpool={name}"])
        assert instantiate("taskpool", config["taskpool"]).describe()["tasks"]
    with pytest.raises(UserError, match=r"unknown method key\(s\) bogus for TaskArithmeticAlgorithm; valid keys: scaling_factor, inplace"):
        instantiate("method", {"_target_": "fusion_bench.method.TaskArithmeticAlgorithm", "bogus": 1})
    with pytest.raises(UserError, match="unknown method _target_ 'os.system'"):
        instantiate("method", {"_target_": "os.system"})


def run_cli(repo_root, *args):
    return subprocess.run([sys.executable, "src/merge.py", *args], cwd=repo_root, capture_output=True, text=True, timeout=120)


def test_cli_errors_are_one_line_and_exit_2(repo_root, capsys):
    from merge import main

    with pytest.raises(SystemExit) as exit_info:
        main(["method.scaling_factor=nan", "print_config=false"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == ["error: scaling_factor must be a finite number, got nan; pass e.g. scaling_factor=0.3"]
    # The seed's command, as a user runs it, offline:
    result = run_cli(
        repo_root,
        "method=task_arithmetic",
        "method.scaling_factor=0.5",
        "modelpool=CLIPVisionModelPool/clip-vit-base-patch32_svhn_and_mnist",
        "taskpool=CLIPVisionModelTaskPool/clip-vit-base-patch32_svhn_and_mnist",
        "print_config=false",
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: CLIP checkpoints not available offline: modelpool.models._pretrained_=openai/clip-vit-base-patch32")
    assert "hf download openai/clip-vit-base-patch32 --local-dir <dir>" in line and "modelpool.models._pretrained_=<dir>" in line


# ---------------------------------------------------------------- end to end: our runs


@pytest.fixture(scope="module")
def run_layout(tmp_path_factory):
    """theta_0 and two fine-tuned standard runs of a random TinyCLIP, in the shared path scheme."""
    root = tmp_path_factory.mktemp("runs")
    spec = ModelSpec("TinyCLIP")
    layout = Layout(root / "checkpoints", root / "results")
    torch.manual_seed(0)
    encoder = build_encoder(spec)
    encoder.save(layout.zeroshot(spec.model_id))
    base = copy.deepcopy(encoder.weights())
    tuned = {}
    for seed, task in enumerate(TOY_TASKS, start=1):
        gen = torch.Generator().manual_seed(seed)
        state = {k: v + 0.02 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v for k, v in base.items()}
        encoder.visual.load_state_dict(state)
        for mode in ("standard", "linear"):
            encoder.save(layout.finetuned(spec.model_id, task, mode), {"mode": mode, "task": task, "run": mode})
        tuned[task] = state
    return root, layout, spec, base, tuned


def direct_accuracy(embed, head_weight, task):
    dataset = _toy_split(TOY_TASKS.index(task))(None, "test", None)
    images, labels = dataset.tensors
    with torch.no_grad():
        logits = F.normalize(embed(images), dim=-1) @ head_weight.t()
    return (logits.argmax(-1) == labels).float().mean().item(), F.cross_entropy(logits, labels).item()


def run_pool_args(root, *extra):
    return [
        "modelpool=embedded/TinyCLIP_all",
        "modelpool.pretrained=null",
        "modelpool.tasks=[MergeToyA, MergeToyB]",
        "taskpool=embedded/all",
        "taskpool.tasks=merge_toy",
        f"checkpoint_root={root / 'checkpoints'}",
        f"results_root={root / 'results'}",
        "device=cpu",
        "print_config=false",
        *extra,
    ]


def test_cli_merges_our_runs_saves_and_reports(run_layout, capsys):
    root, layout, spec, base, tuned = run_layout
    saved = root / "merged.safetensors"
    report = merge_main(run_pool_args(root, "method.scaling_factor=0.7", f"merged_model_save_path={saved}"))
    folder = root / "results" / "merge" / "TinyCLIP-random__standard" / "embedded__TinyCLIP_all" / "embedded__all"
    (report_path,) = folder.glob("task_arithmetic__scaling_factor=0.7__*.json")  # the digest of everything that decides the numbers
    assert json.loads(report_path.read_text())["results"] == report["results"]
    assert "report written to" in capsys.readouterr().out
    merged = load_encoder(saved)
    assert merged.metadata["merge"]["method_config"]["scaling_factor"] == 0.7
    for key, value in merged.weights().items():
        expected = base[key] + 0.7 * sum(t[key] - base[key] for t in tuned.values())
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-6)
    accuracies = []
    for task in TOY_TASKS:
        head = load_weights(layout.head(spec.model_id, task))[0]["weight"]
        acc, loss = direct_accuracy(merged, head, task)
        assert report["results"][task]["accuracy"] == pytest.approx(acc, abs=1e-6)
        assert report["results"][task]["loss"] == pytest.approx(loss, rel=1e-4)
        accuracies.append(acc)
    assert report["results"]["average"]["accuracy"] == pytest.approx(sum(accuracies) / 2, abs=1e-6)


def test_cli_linear_runs_are_evaluated_linearised(run_layout):
    from torch.func import functional_call, jvp

    root, layout, spec, base, tuned = run_layout
    report = merge_main(run_pool_args(root, "modelpool.mode=linear", "method.scaling_factor=0.5", "taskpool.tasks=[MergeToyA]"))
    theta0 = load_encoder(layout.zeroshot(spec.model_id))
    params0 = dict(theta0.visual.named_parameters())
    delta = {k: 0.5 * sum(t[k] - base[k] for t in tuned.values()) for k in params0}

    def linearised(images):
        def f(*p):
            return functional_call(theta0.visual, dict(zip(params0, p)), (images,))

        from task_arithmetic.models.linearize import forward_ad_safe

        with forward_ad_safe():
            out, tangent = jvp(f, tuple(params0.values()), tuple(delta.values()))
        return out + tangent

    head = load_weights(layout.head(spec.model_id, "MergeToyA"))[0]["weight"]
    acc, loss = direct_accuracy(linearised, head, "MergeToyA")
    assert report["results"]["MergeToyA"]["accuracy"] == pytest.approx(acc, abs=1e-6)
    assert report["results"]["MergeToyA"]["loss"] == pytest.approx(loss, rel=1e-4)


def test_merges_of_other_models_or_data_never_replace_each_other(run_layout, capsys):
    """Issue 29: a standard- and a linear-mode merge of the same pool (or another split, or
    another world) wrote one file, the second replacing the first."""
    root, *_ = run_layout
    results = root / "results" / "merge"

    def written(*extra: str):
        merge_main(run_pool_args(root, "method.scaling_factor=0.3", "taskpool.tasks=[MergeToyA]", *extra))
        return [line.split("report written to ")[1] for line in capsys.readouterr().out.splitlines() if "report written to" in line][0]

    standard = written()
    linear = written("modelpool.mode=linear")
    val = written("taskpool.split=val")
    assert len({standard, linear, val}) == 3
    assert "TinyCLIP-random__linear" in linear and "TinyCLIP-random__standard" in standard
    reports = {p: json.loads(open(p).read()) for p in (standard, linear, val)}
    assert reports[linear]["modelpool"]["run"] == "linear" and reports[standard]["modelpool"]["run"] == "standard"
    assert reports[val]["identity"]["taskpool"]["split"] == "val"
    assert written() == standard  # the same merge again replaces its own file
    assert len(list(results.rglob("*.json"))) >= 3


def test_missing_run_is_a_clear_error(run_layout):
    root, *_ = run_layout
    with pytest.raises(UserError, match="no finished 'linear-tau_jp' run of TinyCLIP-random for MergeToyA, MergeToyB"):
        merge_main(run_pool_args(root, "modelpool.mode=linear", "modelpool.reg=tau_jp"))


# ---------------------------------------------------------------- end to end: HF folders with FusionBench's configs

VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=32)


def test_cli_with_fusionbench_configs_on_local_hf_folders(tmp_path):
    import open_clip
    from transformers import CLIPConfig, CLIPModel, CLIPVisionModel

    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=16)).eval()
    clip.save_pretrained(tmp_path / "clip")
    base = CLIPVisionModel.from_pretrained(tmp_path / "clip").state_dict()
    tuned = {}
    for seed, name in ((1, "svhn"), (2, "mnist")):
        gen = torch.Generator().manual_seed(seed)
        model = CLIPVisionModel.from_pretrained(tmp_path / "clip")
        tuned[name] = {k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in base.items()}
        model.load_state_dict(tuned[name])
        model.save_pretrained(tmp_path / name)
    report = merge_main(
        [
            "method=task_arithmetic",
            "method.scaling_factor=0.5",
            "modelpool=CLIPVisionModelPool/clip-vit-base-patch32_svhn_and_mnist",
            f"modelpool.models._pretrained_={tmp_path / 'clip'}",
            f"modelpool.models.svhn={tmp_path / 'svhn'}",
            f"modelpool.models.mnist={tmp_path / 'mnist'}",
            "taskpool=CLIPVisionModelTaskPool/clip-vit-base-patch32_svhn_and_mnist",
            f"taskpool.base_model={tmp_path / 'clip'}",
            "taskpool.test_datasets=[MergeToyA, MergeToyB]",
            "taskpool.dataloader_kwargs.num_workers=0",
            f"checkpoint_root={tmp_path / 'ck'}",
            f"report_save_path={tmp_path / 'report.json'}",
            "device=cpu",
            "print_config=false",
        ]
    )
    assert json.loads((tmp_path / "report.json").read_text())["results"] == report["results"]
    # Independent computation: merged weights put back into the whole CLIPModel, heads from its text tower.
    merged_clip = CLIPModel.from_pretrained(tmp_path / "clip").eval()
    merged_vision = {k: base[k] + 0.5 * ((tuned["svhn"][k] - base[k]) + (tuned["mnist"][k] - base[k])) for k in base}
    merged_clip.vision_model.load_state_dict(merged_vision)
    with torch.no_grad():
        rows = []
        for c in CLASSES:
            tokens = open_clip.tokenize([f"a photo of a {c}.", f"a blurry {c}."], context_length=32)
            e = F.normalize(merged_clip.get_text_features(input_ids=tokens).pooler_output, dim=-1).mean(0)
            rows.append(e / e.norm())
        head = torch.stack(rows) * merged_clip.logit_scale.exp()
    for task in TOY_TASKS:
        acc, loss = direct_accuracy(lambda x: merged_clip.get_image_features(pixel_values=x).pooler_output, head, task)
        assert report["results"][task]["accuracy"] == pytest.approx(acc, abs=1e-6)
        assert report["results"][task]["loss"] == pytest.approx(loss, rel=1e-4)
    assert (tmp_path / "ck" / "hf_heads").is_dir()  # heads cached for the next run


@pytest.mark.parametrize("mode", ["standard", "linear"])
def test_cli_adamerging_first_step_follows_the_entropy_gradient(run_layout, mode):
    """One Adam step moves each lambda by lr against the sign of d(entropy)/d(lambda); the sign
    comes from central finite differences of an independent forward (plain or jvp-linearised)."""
    from torch.func import functional_call, jvp

    from task_arithmetic.models.linearize import forward_ad_safe

    root, layout, spec, base, tuned = run_layout
    lr = 0.01
    report = merge_main(
        run_pool_args(root, "method=adamerging", "method.name=clip_task_wise_adamerging", f"modelpool.mode={mode}", f"method.lr={lr}", "method.max_steps=1", "method.batch_size=64")
    )
    assert "merging_weights" not in report["method_config"]  # learned, reported apart from the settings
    lam = torch.tensor(report["merging_weights"])
    theta0 = load_encoder(layout.zeroshot(spec.model_id))
    params0 = dict(theta0.visual.named_parameters())
    taus = [{k: t[k] - base[k] for k in params0} for t in tuned.values()]
    heads = {task: load_weights(layout.head(spec.model_id, task))[0]["weight"] for task in TOY_TASKS}
    images = {task: _toy_split(i)(None, "test", None).tensors[0] for i, task in enumerate(TOY_TASKS)}

    def loss(coefficients):
        delta = {k: sum(c * tau[k] for c, tau in zip(coefficients, taus)) for k in params0}
        total = 0.0
        for task in TOY_TASKS:
            x = images[task]
            if mode == "standard":
                out = functional_call(theta0.visual, {k: params0[k] + delta[k] for k in params0}, (x,))
            else:
                with forward_ad_safe():
                    out0, tangent = jvp(lambda *p: functional_call(theta0.visual, dict(zip(params0, p)), (x,)), tuple(params0.values()), tuple(delta.values()))
                out = out0 + tangent
            p = torch.softmax(F.normalize(out, dim=-1) @ heads[task].t(), -1)
            total += -(p * torch.log(p)).sum(-1).mean().item()
        return total

    with torch.no_grad():
        for t in range(len(TOY_TASKS)):
            h = [0.0] * len(TOY_TASKS)
            h[t] = 1e-2
            grad = (loss([0.3 + d for d in h]) - loss([0.3 - d for d in h])) / 2e-2
            assert lam[t].item() == pytest.approx(0.3 - lr * math.copysign(1, grad), abs=1e-4)
    assert set(report["results"]) == {*TOY_TASKS, "average"}
