"""The merging evaluation's coefficient choice: on average normalised Val accuracy, and on absolute
accuracy when every fine-tuned Val accuracy is 0 (normalised accuracy is then undefined), as
task addition does."""

from toyworld import isolated_toy_world

from task_arithmetic.evaluation import merging
from task_arithmetic.evaluation.merging import METHODS, choose_coefficient, evaluate_merging
from task_arithmetic.vectors import RunRecipe


def test_choice_falls_back_to_absolute_accuracy_only_when_normalised_is_undefined():
    alphas = [0.0, 0.5, 1.0]
    curve = [{"avg_normalized": 0.5, "avg_accuracy": 0.9}, {"avg_normalized": 0.8, "avg_accuracy": 0.2}, {"avg_normalized": 0.8, "avg_accuracy": 0.3}]
    assert choose_coefficient(alphas, curve) == (1, "avg_normalized")  # ties keep the smaller coefficient
    undefined = [{"avg_normalized": None, "avg_accuracy": a} for a in (0.1, 0.4, 0.4)]
    assert choose_coefficient(alphas, undefined) == (1, "avg_accuracy")


def test_merging_evaluation_with_every_finetuned_val_accuracy_zero(tmp_path, monkeypatch):
    alphas = (0.0, 0.5, 1.0)
    with isolated_toy_world(tmp_path, n_val=4, n_test=4) as toy:
        monkeypatch.setattr(merging, "_single", lambda pool, taskpool, task: 0.0)  # every fine-tuned model scores 0
        result = evaluate_merging(toy.spec, toy.layout, toy.data_location, RunRecipe("standard"), toy.tasks, alphas,
                                  methods=[m for m in METHODS if m.name == "task_arithmetic"])
    row = result["methods"]["task_arithmetic"]
    assert row["selected_on"] == "avg_accuracy"
    scores = [point["avg_accuracy"] for point in row["val_curve"]]
    assert row["coefficient"] == alphas[scores.index(max(scores))]
    assert row["val"]["avg_normalized"] is None and row["test"]["avg_normalized"] is None
