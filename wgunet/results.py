"""What every measure returns: small dataclasses, turned into JSON-ready dicts in one place."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch


def plain(value: Any) -> Any:
    """JSON-ready: dataclasses and dicts recursively, tuples and tensors as lists, NaN as None."""
    if dataclasses.is_dataclass(value):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


class Result:
    """Mixin for result dataclasses: ``to_dict`` for JSON."""

    def to_dict(self) -> dict[str, Any]:
        return plain(self)


@dataclasses.dataclass(frozen=True)
class Estimate(Result):
    """A point estimate and its 95% interval."""

    value: float
    ci95: tuple[float, float]

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.ci95[0]:.4f}, {self.ci95[1]:.4f}]"
