"""The merge CLI on Hydra: defaults lists, relative interpolation, sweeps, --cfg, hydra.* overrides,
seed, and the suite's safety rules (config search path, unknown keys) as one-line errors."""

import pytest

from task_arithmetic.errors import UserError
from task_arithmetic.merging.config import compose, compose_job, parse_command_line, sweep


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def root(tmp_path):
    write(tmp_path / "merge.yaml", "defaults:\n  - method: ta\n  - modelpool: pool\n  - taskpool: null\n  - _self_\nseed: null\ncheckpoint_root: null\nresults_root: null\ndata_location: null\n")
    write(tmp_path / "method/ta.yaml", "_target_: fusion_bench.method.TaskArithmeticAlgorithm\nscaling_factor: 0.3\n")
    write(tmp_path / "modelpool/_shared.yaml", "processor: ${.models._pretrained_}\n")
    write(
        tmp_path / "modelpool/pool.yaml",
        "defaults:\n  - /extra/names@names: [a, b]\n  - _shared\n  - _self_\n_target_: RunModelPool\nmodels:\n  _pretrained_: base\n",
    )
    write(tmp_path / "extra/names/a.yaml", "a: {split: test}\n")
    write(tmp_path / "extra/names/b.yaml", "b: {split: val}\n")
    return tmp_path


def test_defaults_lists_and_relative_interpolation(root):
    config, choices = compose(["seed=3"], root)
    assert choices == {"method": "ta", "modelpool": "pool", "taskpool": None}
    assert config["modelpool"]["processor"] == "base"  # FusionBench's ${.x}
    assert config["modelpool"]["names"] == {"a": {"split": "test"}, "b": {"split": "val"}}
    assert config["seed"] == 3 and config["taskpool"] is None


def test_sweeps_cfg_and_hydra_overrides(root):
    jobs = sweep(["method.scaling_factor=0.1,0.2,0.3", "seed=1,2"])
    assert len(jobs) == 6 and ["method.scaling_factor=0.1", "seed=2"] in jobs
    with pytest.raises(UserError, match="only with -m"):
        compose(["method.scaling_factor=0.1,0.2"], root)
    request = parse_command_line(["-m", "--cfg", "job", "method.scaling_factor=0.1,0.2"])
    assert request.multirun and request.cfg == "job" and request.overrides == ["method.scaling_factor=0.1,0.2"]
    config, _choices, hydra = compose_job(["hydra.job.chdir=false", "hydra.verbose=true", "method.inplace=true"], root)
    assert hydra["job"]["chdir"] is False and config["method"]["inplace"] is True
    with pytest.raises(UserError, match="unsupported option '--config-dir'"):
        parse_command_line(["--config-dir", "/tmp"])


def test_configs_only_from_the_search_path_and_unknown_keys(root):
    for bad in ("method=../../x", "method=/etc/x", "modelpool=..\\x"):
        with pytest.raises(UserError, match="paths under config/"):
            compose([bad], root)
    with pytest.raises(UserError, match="hydra.searchpath cannot be overridden"):
        compose(["hydra.searchpath=[file:///tmp]"], root)
    with pytest.raises(UserError, match=r"unknown config key 'method.scale' .*valid keys: _target_, scaling_factor, inplace"):
        compose(["method.scale=1"], root)
    with pytest.raises(UserError, match="unknown method config 'nope'; available: ta"):
        compose(["method=nope"], root)
    config, _ = compose(["+modelpool.models.c=x"], root)
    assert config["modelpool"]["models"]["c"] == "x"


def test_merge_entry_point_prints_cfg_and_runs_multirun_jobs(capsys):
    from merge import main  # src/merge.py

    assert main.__wrapped__(["--cfg", "job", "method=ties_merging", "taskpool=null"]) == {}
    out = capsys.readouterr().out
    assert "_target_: TiesMergingAlgorithm" in out and "hydra:" not in out
    reports = main.__wrapped__(["-m", "method.scaling_factor=0.1,0.2", "dry_run=true", "taskpool=null", "print_config=false"])
    assert reports == [{}, {}]
    assert capsys.readouterr().out.count("[multirun] job") == 2
