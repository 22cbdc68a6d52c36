"""Statistics over seeds: spread (mean, sd, t interval), claim counts, the seeds summary; seed parsing."""

import math
import sys
from pathlib import Path

import pytest

from task_arithmetic.embedded.presets import get_preset, preset_for_tag, with_pretrain_seed
from task_arithmetic.errors import UserError
from task_arithmetic.reporting.claims import FAILS, HOLDS, MISSING, Claim
from task_arithmetic.reporting.collect import RunResults
from task_arithmetic.reporting.seeds import count_claims, headline_numbers, split_by_draw, spread, summarize_seeds

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from run_study import parse_seeds  # noqa: E402


def test_spread_matches_the_textbook_t_interval():
    s = spread([0.70, 0.74, 0.78])
    assert s.n == 3 and s.mean == pytest.approx(0.74)
    assert s.sd == pytest.approx(0.04)  # sample sd, n - 1
    half = 4.302652729911275 * 0.04 / math.sqrt(3)  # t(0.975, 2 dof)
    assert (s.low, s.high) == (pytest.approx(0.74 - half), pytest.approx(0.74 + half))


def test_spread_of_one_seed_has_no_interval_and_equal_values_a_zero_width_one():
    one = spread([0.5])
    assert (one.mean, one.sd, one.low, one.high) == (0.5, None, None, None)
    flat = spread([0.3, 0.3, 0.3, 0.3])
    assert flat.sd == pytest.approx(0.0) and flat.low == pytest.approx(0.3) and flat.high == pytest.approx(0.3)
    with pytest.raises(ValueError):
        spread([])


def test_claims_are_counted_per_claim_and_scope_over_the_seeds_that_checked_them():
    seed = lambda a, b: [Claim("A", "x", a, ""), Claim("B", "y", b, "")]  # noqa: E731
    counts = count_claims([seed(HOLDS, FAILS), seed(HOLDS, MISSING), seed(FAILS, HOLDS)])
    assert [(c.claim, c.holds, c.evaluated, c.seeds) for c in counts] == [("A", 2, 3, 3), ("B", 1, 2, 3)]


def _runs(single: float, tuned: float) -> dict[str, RunResults]:
    from task_arithmetic.evaluation.addition import AdditionResult, Chosen, Scores, ZeroShot
    from task_arithmetic.evaluation.single_task import Averages, SingleTaskResult
    from task_arithmetic.recipes import EvaluatedRun

    def scores(avg: float) -> Scores:
        return Scores({}, {}, avg, avg / single)

    def block(avg: float, alpha: float) -> Chosen:
        return Chosen(alpha, scores(avg), scores(avg))

    results = {
        "single_task": SingleTaskResult({}, {}, Averages(0.4, 0.4, single, single), {}),
        "addition": AdditionResult([], [], [], 0.3, "avg_normalized", block(tuned, 0.3), block(tuned - 0.2, 1.0), ZeroShot(scores(0.4)), {}),
    }
    return {"standard": RunResults("standard", EvaluatedRun.parse("standard"), results)}


def test_headline_numbers_and_the_summary_over_seeds():
    numbers = headline_numbers(_runs(0.9, 0.6))
    name = "standard (non-linear FT)"
    assert numbers["zero-shot, single-task avg"] == 0.4
    assert numbers[f"{name}, single-task avg"] == 0.9
    assert numbers[f"{name}, addition tuned α, normalised"] == pytest.approx(0.6 / 0.9)
    assert numbers[f"{name}, addition α = 1, absolute"] == pytest.approx(0.4)
    assert numbers[f"{name}, addition chosen α"] == 0.3

    summary = summarize_seeds(["seed 0", "seed 1"], [_runs(0.9, 0.6), _runs(0.8, 0.5)])
    s = summary.numbers[f"{name}, single-task avg"]
    assert s.n == 2 and s.mean == pytest.approx(0.85) and s.sd == pytest.approx(math.sqrt(0.005))
    text = summary.markdown()
    assert "| standard (non-linear FT), single-task avg | 85.0 ± 7.1 |" in text
    assert "| standard (non-linear FT), addition chosen α | 0.30 ± 0.00 |" in text
    # the ordering claim needs linear and tau-Jp runs: counted as not evaluated, never as failing
    assert "holds in **0 of 0** seeds (not evaluated in 2)" in text
    assert summary.to_json()["numbers"][f"{name}, single-task avg"]["values"] == [0.9, 0.8]


def test_seed_lists_and_pretraining_seed_tags():
    assert parse_seeds("0,1, 2") == (0, 1, 2)
    for bad in ("0,a", "-1", "", "1,,2"):
        with pytest.raises(UserError, match="--seeds takes comma-separated"):
            parse_seeds(bad)
    default = get_preset("default")
    assert with_pretrain_seed(default, 0) is default
    seeded = with_pretrain_seed(default, 2)
    assert seeded.weight_tag == "embedded-p2" and seeded.pretrain.seed == 2
    assert seeded.pretrain.digest() != default.pretrain.digest()  # cached weights are never mixed up
    assert preset_for_tag("embedded-p2") == seeded and preset_for_tag("embedded-smoke-p1").pretrain.seed == 1
    for bad in ("embedded-p", "embedded-p01", "embedded-px"):
        with pytest.raises(UserError):
            preset_for_tag(bad)


def test_one_more_run_falls_in_the_t_prediction_interval():
    s = spread([0.70, 0.74, 0.78])
    half = 4.302652729911275 * 0.04 * math.sqrt(1 + 1 / 3)  # t(0.975, 2 dof) * sd * sqrt(1 + 1/n)
    assert (s.one_low, s.one_high) == (pytest.approx(0.74 - half), pytest.approx(0.74 + half))
    assert s.one_low < s.low and s.one_high > s.high


def test_the_spread_splits_into_pretraining_draws_and_fine_tuning_seeds():
    # draws 0 and 1, three fine-tuning seeds each: means 0.5 and 0.7; within-draw deviations -0.01, 0, +0.01
    values = [0.49, 0.50, 0.51, 0.69, 0.70, 0.71]
    split = split_by_draw(values, [0, 0, 0, 1, 1, 1])
    assert split.between_draws == pytest.approx(math.sqrt(2) * 0.1)  # sd of (0.5, 0.7)
    assert split.within_draws == pytest.approx(math.sqrt(4 * 0.01**2 / 4))  # pooled: 4 squares over 2 + 2 dof
    assert split_by_draw(values, [0, 0, 0, 0, 0, 0]) is None  # one draw
    assert split_by_draw([0.5, 0.6, 0.7], [0, 1, 1]) is None  # a draw with one seed


def test_crossed_pretraining_and_fine_tuning_seeds_make_every_pair_once(tmp_path):
    from task_arithmetic.pipeline.study import PAIRED, StudyConfig, embedded_study, replicates

    study = embedded_study(StudyConfig("smoke", tmp_path / "data", tmp_path / "ck", tmp_path / "res", "cpu", False))
    crossed = replicates(study, (0, 1), (0, 2))
    assert [(r.pretrain_seed, r.seed) for r in crossed] == [(0, 0), (0, 1), (2, 0), (2, 1)]
    assert crossed[0].study is study  # the single-seed study itself
    assert crossed[1].study.spec == study.spec and crossed[2].study.spec.pretrained == "embedded-smoke-p2"
    assert len({(r.study.layout.checkpoint_root, r.study.spec.model_id) for r in crossed}) == 4  # four places
    assert [(r.pretrain_seed, r.seed) for r in replicates(study, (0, 1), PAIRED)] == [(0, 0), (1, 1)]
    with pytest.raises(UserError, match="--pretrain-seeds takes distinct seeds"):
        replicates(study, (0, 1), (2, 2))
