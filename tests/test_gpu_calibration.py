"""The dry run's images/s table: read from the GPU check's results files (pipeline/calibration.py)."""

from __future__ import annotations

import json

import pytest

from task_arithmetic.pipeline.calibration import format_table, measured, seconds_per_image
from task_arithmetic.pipeline.plan import gpu_hours


def test_gpu_check_results_become_the_cost_table(tmp_path):
    assert "none measured yet" in format_table(tmp_path) and seconds_per_image("ViT-B-32", tmp_path) is None
    header = {"gpu": "NVIDIA H100 80GB HBM3", "date": "2026-05-01T10:00:00+00:00",
              "calibration": {"ViT-B-32": {"precision": "bf16", "plain": 2000.0, "linearized": 1250.0},
                              "ViT-L-14": {"precision": "bf16", "plain": 250.0, "linearized": 160.0}}}
    (tmp_path / "gpu-nvidia-h100-80gb-hbm3.json").write_text(json.dumps({"header": header, "steps": []}))
    (tmp_path / "gpu-broken.json").write_text("{not json")  # a half-copied file is no measurement
    (tmp_path / "cpu-quick.json").write_text(json.dumps({"header": {**header, "gpu": None}}))  # the CPU dry run is not a GPU figure
    rows = measured(tmp_path)
    assert [(r.model, r.plain, r.linearized) for r in rows] == [("ViT-B-32", 2000.0, 1250.0), ("ViT-L-14", 250.0, 160.0)]
    table = format_table(tmp_path)
    assert "ViT-L-14" in table and "NVIDIA H100 80GB HBM3" in table and "2026-05-01" in table
    per_image, row = seconds_per_image("ViT-B-32", tmp_path)
    assert per_image == {"plain": pytest.approx(1 / 2000), "linearized": pytest.approx(1 / 1250)} and row.precision == "bf16"
    assert gpu_hours({"plain": 3_600_000, "linearized": 0}, per_image) == pytest.approx(0.5)
