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


INTERVAL_KIND = "bootstrap 95% spread around the estimate"


@dataclasses.dataclass(frozen=True)
class Estimate(Result):
    """A plug-in estimate, its 95% interval and the bootstrap's estimate of its bias (see ``bootstrapped``)."""

    value: float
    ci95: tuple[float, float]
    bias: float = 0.0  # mean of the resampled scores less the estimate: what resampling adds to a set score

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.ci95[0]:.4f}, {self.ci95[1]:.4f}] (bootstrap bias {self.bias:+.4f})"


def bootstrapped(value: float, resampled: torch.Tensor, floor: float | None = None) -> Estimate:
    """``value`` with the 95% interval of its resampled scores, moved so that their median falls on ``value``:
    [v - (m - q2.5), v + (q97.5 - m)], clipped at ``floor``; no resamples: v alone.

    A score of two sets (a distance, a ratio of means) computed on resampled sets is biased: repeated images
    shrink a set's diversity, which raises FID and the spectral distances. A plain percentile interval then can
    lie wholly above its own estimate. Moved to the estimate, the interval holds it and is as wide as the
    resampling spread; ``bias`` (mean resample less estimate) says how far the bootstrap puts the plug-in
    estimate from the score of the sets' distributions. For a score whose bias is small beside its spread (the
    high-frequency ratio, band errors of different sets) this is the percentile interval; for a distance between
    two samples of one distribution it is the sampling spread, not a range that holds 0 (tests/test_metrics.py)."""
    if not len(resampled):
        return Estimate(value, (value, value), 0.0)
    low, middle, high = (float(resampled.quantile(q)) for q in (0.025, 0.5, 0.975))
    interval = (value - (middle - low), value + (high - middle))
    if floor is not None:
        interval = (max(floor, interval[0]), max(floor, interval[1]))
    return Estimate(value, interval, float(resampled.mean()) - value)
