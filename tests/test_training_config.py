import dataclasses

import pytest
from test_training_support import TOY_DEFAULTS, register_tasks

from task_arithmetic.errors import UserError
from task_arithmetic.recipes.base import NoSettings
from task_arithmetic.training.config import PAPER_DEFAULTS, FinetuneConfig, resolve_config
from task_arithmetic.training.schedule import learning_rate

register_tasks()


def toy(**kw) -> FinetuneConfig:
    return FinetuneConfig(task=kw.pop("task", "TrainToyB"), model="TinyCLIP", pretrained=None, **kw)


def test_defaults_mode_and_penalty_tasks():
    plain = resolve_config(toy())
    assert plain.run.mode.name == "standard" and plain.reg_settings == NoSettings() and plain.run.name == "standard"
    assert (plain.lr, plain.batch_size, plain.epochs) == (TOY_DEFAULTS["lr"], TOY_DEFAULTS["batch_size"], TOY_DEFAULTS["epochs"])
    assert plain.wd == PAPER_DEFAULTS["wd"]

    reg = resolve_config(toy(reg="tau_jp"))
    # --reg tau_jp without --mode fine-tunes linearised; penalty data = other tasks + control.
    assert reg.run.mode.name == "linear" and reg.run.name == "linear-tau_jp"
    assert reg.lr == TOY_DEFAULTS["lr_linear"]  # a mode-specific task default wins in that mode
    assert reg.reg_settings.penalty_tasks == ("TrainToyA", "TrainToyC", "TrainToyCtl") and reg.reg_settings.penalty_coef == 0.1
    assert resolve_config(toy(reg="tau_jp", mode="standard", variant="strict")).run.name == "standard-tau_jp_strict"
    assert resolve_config(toy(lr=3e-4, epochs=7)).lr == 3e-4
    assert resolve_config(FinetuneConfig(task="TrainToyA", model="ViT-L-14", reg="tau_jp")).reg_settings.penalty_batch == 4


def test_continual_uses_earlier_tasks_and_the_control_only():
    order = ("TrainToyB", "TrainToyA", "TrainToyC")
    cfg = resolve_config(toy(task="TrainToyC", reg="tau_jp", variant="continual", options=dict(task_order=order)))
    settings = cfg.reg_settings
    assert settings.penalty_tasks == ("TrainToyB", "TrainToyA", "TrainToyCtl") and settings.task_order == order
    first = resolve_config(toy(task="TrainToyB", reg="tau_jp", variant="continual", options=dict(task_order=order)))
    assert first.reg_settings.penalty_tasks == ("TrainToyCtl",)  # the first task knows no other task: the control alone


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mode="nonsense"), r"unknown --mode 'nonsense'"),
        (dict(mode="posthoc"), r"evaluation-only"),
        (dict(reg="l2"), r"unknown --reg 'l2'"),
        (dict(reg="tau_jp", variant="greedy"), r"unknown --variant 'greedy'"),
        (dict(variant="strict"), r"--variant strict only applies to --reg tau_jp"),
        (dict(options=dict(penalty_coef=0.5)), r"--penalty-coef only applies"),
        (dict(reg="tau_jp", variant="continual"), r"needs --task-order"),
        (dict(reg="tau_jp", variant="continual", options=dict(task_order=("TrainToyA", "TrainToyC"))), r"does not contain the task TrainToyB"),
        (dict(reg="tau_jp", options=dict(task_order=("TrainToyA", "TrainToyB"))), r"--task-order only applies to --variant continual"),
        (dict(reg="tau_jp", options=dict(penalty_tasks=("TrainToyA", "TrainToyB"))), r"contains the task being fine-tuned"),
        (dict(reg="tau_jp", options=dict(penalty_tasks=("NoSuchTask",))), r"unknown task 'NoSuchTask'"),
        (dict(task="TrainToyNaN", reg="tau_jp"), r"no task besides TrainToyNaN"),
        (dict(task="NoSuchTask"), r"unknown task 'NoSuchTask'"),
        (dict(micro_batch=17), r"--micro-batch must be between 1 and --batch-size \(16\)"),
        (dict(lr=-1.0), r"--lr must be a positive"),
        (dict(wandb="cloud"), r"unknown --wandb"),
        (dict(init_from="/nonexistent/finetuned.safetensors"), r"--init-from .* does not exist"),
        (dict(tag="a/b"), r"--tag 'a/b'"),
        # issue 11 item 7: non-finite and out-of-range numbers, empty task lists
        (dict(wd=float("nan")), r"--wd must be a finite number"),
        (dict(wd=float("inf")), r"--wd must be a finite number"),
        (dict(reg="tau_jp", options=dict(penalty_coef=float("nan"))), r"--penalty-coef must be a finite number"),
        (dict(reg="tau_jp", options=dict(penalty_coef=float("inf"))), r"--penalty-coef must be a finite number"),
        (dict(num_workers=-1), r"--num-workers must be >= 0"),
        (dict(reg="tau_jp", options=dict(penalty_tasks=",")), r"--penalty-tasks is empty"),
        # the new recipes' own options
        (dict(reg="l2_sp", options=dict(l2_coef=-1.0)), r"--l2-coef must be a finite number >= 0"),
        (dict(reg="l2_sp", options=dict(l2_match_gain=0.1)), r"--l2-match-gain only applies with --l2-match"),
        (dict(reg="l2_sp", options=dict(l2_match="a/b")), r"--l2-match 'a/b' must be a run folder name"),
        (dict(options=dict(l2_coef=0.5)), r"--l2-coef only applies to --reg l2_sp"),
        (dict(mode="talos", options=dict(talos_keep=0.0)), r"--talos-keep must be a fraction"),
        (dict(options=dict(talos_keep=0.5)), r"--talos-keep only applies to --mode talos"),
        (dict(reg="tau_jp", options=dict(talos_keep=0.5)), r"--talos-keep only applies to --mode talos"),
        (dict(options=dict(no_such_option=1)), r"unknown option --no-such-option"),
    ],
)
def test_invalid_combinations_are_one_line_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message) as info:
        resolve_config(toy(**kwargs))
    assert "\n" not in str(info.value)


def test_new_recipes_resolve_with_their_defaults_and_names():
    l2 = resolve_config(toy(reg="l2_sp", options=dict(l2_match="linear-tau_jp")))
    assert l2.run.mode.name == "standard" and l2.run.name == "standard-l2_sp"
    assert (l2.reg_settings.l2_coef, l2.reg_settings.l2_match) == (0.1, "linear-tau_jp")
    talos = resolve_config(toy(mode="talos", options=dict(talos_keep=0.25)))
    assert talos.run.name == "talos" and talos.mode_settings.talos_keep == 0.25 and talos.mode_settings.talos_batches == 8
    assert resolve_config(toy(mode="attn_only")).run.name == "attn_only"
    # the recorded config stays flat: the plug-ins' settings beside the common ones, as before
    tau = resolve_config(toy(reg="tau_jp")).to_json()
    assert tau["penalty_tasks"] == ["TrainToyA", "TrainToyC", "TrainToyCtl"] and tau["variant"] == "efficient" and "lr" in tau


def test_finetune_cli_builds_the_plugin_options():
    import finetune  # src/finetune.py

    args = finetune.parse_args(["--task", "TrainToyB", "--reg", "tau_jp", "--penalty-coef", "0.5", "--penalty-tasks", "TrainToyA,TrainToyC"])
    cfg = finetune.config_from_args(args)
    assert cfg.options == {"penalty_coef": 0.5, "penalty_tasks": "TrainToyA,TrainToyC"}
    plan = resolve_config(dataclasses.replace(cfg, model="TinyCLIP", pretrained=None))
    assert plan.reg_settings.penalty_tasks == ("TrainToyA", "TrainToyC") and plan.reg_settings.penalty_coef == 0.5


def test_training_settings_exclude_operational_fields():
    a = resolve_config(toy(reg="tau_jp"))
    b = dataclasses.replace(a, device="cuda", num_workers=4, save_every=3, wandb="offline", checkpoint_root="/elsewhere")
    assert a.training_settings() == b.training_settings()
    assert a.training_settings() != dataclasses.replace(a, lr=1.0).training_settings()


def test_schedule_warmup_then_cosine():
    base, warmup, total = 1e-3, 4, 12
    lrs = [learning_rate(s, base, warmup, total) for s in range(total)]
    assert lrs[:4] == pytest.approx([base / 4, base / 2, 3 * base / 4, base])
    assert lrs[4] == pytest.approx(base) and lrs[8] == pytest.approx(base / 2)  # cos(pi/2)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:])) and lrs[-1] > 0


def test_penalty_tasks_naming_a_suite_use_its_other_tasks_and_control():
    # a real8 task trained for the 20-task study: real20's other 19 tasks plus ImageNet
    cfg = resolve_config(FinetuneConfig(task="Cars", reg="tau_jp", options=dict(penalty_tasks=("real20",)))).reg_settings
    assert len(cfg.penalty_tasks) == 20 and "Cars" not in cfg.penalty_tasks and cfg.penalty_tasks[-1] == "ImageNet"
    assert cfg.penalty_tasks[:2] == ("SUN397", "RESISC45")
    default = resolve_config(FinetuneConfig(task="Cars", reg="tau_jp")).reg_settings
    assert len(default.penalty_tasks) == 8  # its home suite, real8: seven others plus ImageNet
