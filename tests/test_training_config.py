import dataclasses

import pytest

from task_arithmetic.errors import UserError
from task_arithmetic.training.config import PAPER_DEFAULTS, FinetuneConfig, resolve_config
from task_arithmetic.training.schedule import learning_rate
from test_training_support import TOY_DEFAULTS, register_tasks

register_tasks()


def toy(**kw) -> FinetuneConfig:
    return FinetuneConfig(task=kw.pop("task", "TrainToyB"), model="TinyCLIP", pretrained=None, **kw)


def test_defaults_mode_and_penalty_tasks():
    plain = resolve_config(toy())
    assert plain.mode == "standard" and plain.penalty_tasks is None and plain.run == "standard"
    assert (plain.lr, plain.batch_size, plain.epochs) == (TOY_DEFAULTS["lr"], TOY_DEFAULTS["batch_size"], TOY_DEFAULTS["epochs"])
    assert plain.wd == PAPER_DEFAULTS["wd"] and plain.penalty_coef == PAPER_DEFAULTS["penalty_coef"]

    reg = resolve_config(toy(reg="tau_jp"))
    # --reg tau_jp without --mode fine-tunes linearised; penalty data = other tasks + control.
    assert reg.mode == "linear" and reg.run == "linear-tau_jp"
    assert reg.lr == TOY_DEFAULTS["lr_linear"]  # a mode-specific task default wins in that mode
    assert reg.penalty_tasks == ("TrainToyA", "TrainToyC", "TrainToyCtl")
    assert resolve_config(toy(reg="tau_jp", mode="standard", variant="strict")).run == "standard-tau_jp_strict"
    assert resolve_config(toy(lr=3e-4, epochs=7)).lr == 3e-4
    assert resolve_config(FinetuneConfig(task="TrainToyA", model="ViT-L-14", reg="tau_jp")).penalty_batch == 4


def test_continual_uses_earlier_tasks_only():
    cfg = resolve_config(toy(task="TrainToyC", reg="tau_jp", variant="continual", task_order=("TrainToyB", "TrainToyA", "TrainToyC")))
    assert cfg.penalty_tasks == ("TrainToyB", "TrainToyA") and cfg.task_order == ("TrainToyB", "TrainToyA", "TrainToyC")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mode="nonsense"), r"unknown --mode 'nonsense'"),
        (dict(mode="posthoc"), r"evaluation-only"),
        (dict(reg="l2"), r"unknown --reg 'l2'"),
        (dict(reg="tau_jp", variant="greedy"), r"unknown --variant 'greedy'"),
        (dict(variant="strict"), r"--variant strict only applies to --reg tau_jp"),
        (dict(penalty_coef=0.5), r"--penalty-coef only applies"),
        (dict(reg="tau_jp", variant="continual"), r"needs --task-order"),
        (dict(reg="tau_jp", variant="continual", task_order=("TrainToyB", "TrainToyA")), r"TrainToyB is the first task"),
        (dict(reg="tau_jp", variant="continual", task_order=("TrainToyA", "TrainToyC")), r"does not contain the task TrainToyB"),
        (dict(reg="tau_jp", task_order=("TrainToyA", "TrainToyB")), r"--task-order only applies to --variant continual"),
        (dict(reg="tau_jp", penalty_tasks=("TrainToyA", "TrainToyB")), r"contains the task being fine-tuned"),
        (dict(reg="tau_jp", penalty_tasks=("NoSuchTask",)), r"unknown task 'NoSuchTask'"),
        (dict(task="TrainToyNaN", reg="tau_jp"), r"no task besides TrainToyNaN"),
        (dict(task="NoSuchTask"), r"unknown task 'NoSuchTask'"),
        (dict(micro_batch=17), r"--micro-batch must be between 1 and --batch-size \(16\)"),
        (dict(lr=-1.0), r"--lr must be a positive"),
        (dict(wandb="cloud"), r"unknown --wandb"),
        (dict(init_from="/nonexistent/finetuned.safetensors"), r"--init-from .* does not exist"),
        (dict(tag="a/b"), r"--tag 'a/b'"),
    ],
)
def test_invalid_combinations_are_one_line_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message) as info:
        resolve_config(toy(**kwargs))
    assert "\n" not in str(info.value)


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
    cfg = resolve_config(FinetuneConfig(task="Cars", reg="tau_jp", penalty_tasks=("real20",)))
    assert len(cfg.penalty_tasks) == 20 and "Cars" not in cfg.penalty_tasks and cfg.penalty_tasks[-1] == "ImageNet"
    assert cfg.penalty_tasks[:2] == ("SUN397", "RESISC45")
    default = resolve_config(FinetuneConfig(task="Cars", reg="tau_jp"))
    assert len(default.penalty_tasks) == 8  # its home suite, real8: seven others plus ImageNet
