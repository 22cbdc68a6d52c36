"""The merging evaluation's coefficient choice: on average normalised Val accuracy, and on absolute
accuracy when every fine-tuned Val accuracy is 0 (normalised accuracy is then undefined), as
task addition does (both use addition.choose)."""

from toyworld import isolated_toy_world

from task_arithmetic.evaluation.addition import Scores, choose
from task_arithmetic.evaluation.merging import METHODS, evaluate_merging
from task_arithmetic.evaluation.session import EvalOptions, EvalSession, RunSelection
from task_arithmetic.recipes import EvaluatedRun
from task_arithmetic.typed_json import dump


def test_choice_falls_back_to_absolute_accuracy_only_when_normalised_is_undefined():
    alphas = [0.0, 0.5, 1.0]
    curve = [Scores({}, {}, 0.9, 0.5), Scores({}, {}, 0.2, 0.8), Scores({}, {}, 0.3, 0.8)]
    assert choose(alphas, curve) == (1, "avg_normalized")  # ties keep the smaller coefficient
    undefined = [Scores({}, {}, a, None) for a in (0.1, 0.4, 0.4)]
    assert choose(alphas, undefined) == (1, "avg_accuracy")


def test_merging_evaluation_with_every_finetuned_val_accuracy_zero(tmp_path, monkeypatch):
    alphas = (0.0, 0.5, 1.0)
    with isolated_toy_world(tmp_path, n_val=4, n_test=4) as toy:
        session = EvalSession(RunSelection(toy.spec, toy.layout, toy.data_location, EvaluatedRun.parse("standard"), toy.tasks), EvalOptions(device="cpu"))
        monkeypatch.setattr(session, "finetuned_accuracy", lambda task, split: 0.0)  # every fine-tuned model scores 0
        result = dump(evaluate_merging(session, alphas, methods=[m for m in METHODS if m.name == "task_arithmetic"]))
    row = result["methods"]["task_arithmetic"]
    assert row["selected_on"] == "avg_accuracy"
    scores = [point["avg_accuracy"] for point in row["val_curve"]]
    assert row["coefficient"] == alphas[scores.index(max(scores))]
    assert row["val"]["avg_normalized"] is None and row["test"]["avg_normalized"] is None
