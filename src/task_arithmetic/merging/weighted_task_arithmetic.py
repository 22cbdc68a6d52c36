"""Task arithmetic with one coefficient per task: theta = theta_0 + sum_i lambda_i * tau_i."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import UserError
from .base import finite_number
from .task_arithmetic import TaskArithmeticAlgorithm


def _is_vector(values: Any) -> bool:
    """A list, tuple or 1-d NumPy array / tensor of coefficients."""
    if isinstance(values, (str, bytes)):
        return False
    if hasattr(values, "ndim"):
        return values.ndim == 1
    return isinstance(values, Sequence)


class WeightedTaskArithmeticAlgorithm(TaskArithmeticAlgorithm):
    """`scaling_factors`: {model name: lambda} covering every fine-tuned model, or a list in pool order."""

    def __init__(self, scaling_factors: Mapping[str, float] | Sequence[float], inplace: bool = False, **options: Any):
        super().__init__(scaling_factor=1.0, inplace=inplace, **options)
        if isinstance(scaling_factors, Mapping):
            self.scaling_factors: dict[str, float] | list[float] = {str(k): finite_number(f"scaling_factors.{k}", v) for k, v in scaling_factors.items()}
        elif _is_vector(scaling_factors):
            self.scaling_factors = [finite_number(f"scaling_factors[{i}]", v) for i, v in enumerate(list(scaling_factors))]
        else:
            raise UserError(f"scaling_factors must be a mapping {{model: coefficient}} or a list, got {scaling_factors!r}")
        del self.scaling_factor  # one coefficient per task instead

    def check_model_names(self, names: list[str]) -> None:
        factors = self.scaling_factors
        if isinstance(factors, list):
            if len(factors) != len(names):
                raise UserError(f"scaling_factors has {len(factors)} values for {len(names)} models ({', '.join(names)}); give one per model")
            return
        missing = [n for n in names if n not in factors]
        unknown = [n for n in factors if n not in names]
        if missing or unknown:
            raise UserError(
                f"scaling_factors must name exactly the fine-tuned models ({', '.join(names)}); "
                f"missing: {', '.join(missing) or 'none'}, unknown: {', '.join(unknown) or 'none'}"
            )

    def coefficients(self, names: list[str]) -> dict[str, float]:
        if isinstance(self.scaling_factors, list):
            return dict(zip(names, self.scaling_factors))
        return {name: self.scaling_factors[name] for name in names}
