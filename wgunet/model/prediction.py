"""What a diffusion model's output means (``prediction_type``): one place for training targets and x0 estimates.

Forward process (DDPM eq. 4): x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps. The network predicts eps
("epsilon"), x0 ("sample") or v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 ("v_prediction", Salimans & Ho 2022).
Any other type is an error wherever a model is trained, probed or sampled.
"""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler

from wgunet.common.errors import UserError

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


class PredictionError(UserError):
    """A model whose prediction_type this project cannot use."""


def prediction_type(scheduler: DDPMScheduler) -> str:
    kind = scheduler.config.prediction_type
    if kind not in PREDICTION_TYPES:
        raise PredictionError(f"prediction_type {kind!r} is not supported ({', '.join(PREDICTION_TYPES)})")
    return kind


def training_target(scheduler: DDPMScheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the network should output for x_t made from (x0, noise, t)."""
    kind = prediction_type(scheduler)
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    return x0


def predicted_x0(scheduler: DDPMScheduler, noisy: torch.Tensor, output: torch.Tensor, t: int) -> torch.Tensor:
    """x0 from the network's output at timestep t (DDPM eq. 15 for epsilon; x0 = sqrt(abar) x_t - sqrt(1-abar) v)."""
    kind = prediction_type(scheduler)
    abar = scheduler.alphas_cumprod[t]
    if kind == "epsilon":
        return (noisy - (1 - abar).sqrt() * output) / abar.sqrt()
    if kind == "v_prediction":
        return abar.sqrt() * noisy - (1 - abar).sqrt() * output
    return output
