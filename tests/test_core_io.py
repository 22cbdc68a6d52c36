
import pytest
import torch

from task_arithmetic.errors import UserError
from task_arithmetic.io import atomic_write_json, load_weights, read_json, save_weights


def test_weights_round_trip_keeps_values_and_metadata(tmp_path):
    tensors = {"a.weight": torch.randn(3, 4), "b": torch.arange(5)}
    path = save_weights(tmp_path / "w.safetensors", tensors, {"model_name": "X", "step": 3})
    loaded, meta = load_weights(path)
    assert set(loaded) == set(tensors)
    assert torch.equal(loaded["a.weight"], tensors["a.weight"]) and torch.equal(loaded["b"], tensors["b"])
    assert meta == {"model_name": "X", "step": 3}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_unreadable_weights_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="cannot read weights file"):
        load_weights(bad)
    with pytest.raises(UserError, match="does not exist"):
        load_weights(tmp_path / "missing.safetensors")


def test_atomic_json_replaces_whole_file(tmp_path):
    path = tmp_path / "r.json"
    atomic_write_json(path, {"x": 1})
    atomic_write_json(path, {"x": 2})
    assert read_json(path) == {"x": 2}
    path.write_text("{broken")
    with pytest.raises(UserError, match="not valid JSON"):
        read_json(path)
