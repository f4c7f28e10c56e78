"""Per-timestep spectral-bias probe, after the analysis of Yang et al., "Diffusion Probabilistic Model Made Slim"
(CVPR 2023): which radii a model recovers from x_t, next to the optimal linear denoiser
G_t = sqrt(abar_t) / (abar_t + (1 - abar_t) / |X0|^2) (the per-frequency Wiener filter).

For each timestep t, clean reference images x0 are noised with a fixed seed, each model predicts x0, and
the reduced spectra give, per radius r:
- ``power``: S(x0_hat) / S(x0), below 1 where the prediction lacks power (spectral bias);
- ``recovered``: 1 - S(x0_hat - x0) / S(x0), the share of the clean signal recovered at r (1 = exact).
The cut-off is the smallest r where ``recovered`` falls below one half: the model recovers at least half of the
clean signal at every radius below it. When even the lowest ring is below one half there is no such radius and
the cut-off is None ("none" in tables, null in JSON), not that ring's radius.

Latent models (wgunet.model.autoencoder): x_t is made from the encoded reference in the latent space, where the models and
the Wiener filter (defined on the diffusion's own x0, the latents) denoise; every estimate is decoded, and the
spectra are those of RGB images against the reference, so the autoencoder's own loss counts as not recovered.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler

from wgunet.common.errors import UserError
from wgunet.common.pixels import to_signed
from wgunet.common.results import Result
from wgunet.evaluation.spectral import reduced_spectrum
from wgunet.model.prediction import predicted_x0
from wgunet.sampling.loading import Checkpoint

DEFAULT_TIMESTEPS = (50, 150, 300, 500, 700, 900)


class ProbeError(UserError):
    """A probe that cannot run as asked; the message says what to change."""


@dataclass
class ProbeCurves(Result):
    power: list[list[float]]  # per timestep, per radius: S(x0_hat) / S(x0)
    recovered: list[list[float]]  # per timestep, per radius: 1 - S(x0_hat - x0) / S(x0)
    cutoff: list[float | None]  # per timestep (see cutoff_radius)


@dataclass
class ProbeResult(Result):
    radius: list[float]
    timesteps: list[int]
    models: dict[str, ProbeCurves]  # the models probed, then "optimal linear (Wiener)"
    space: str = "pixels"  # where x_t is made and denoised: "pixels", or "latents" (estimates decoded)


def cutoff_radius(radius: torch.Tensor, recovered: torch.Tensor) -> float | None:
    """The first radius where less than half is recovered; 1.0 when every ring recovers half, None when none does."""
    below = torch.nonzero(recovered < 0.5)
    if not len(below):
        return 1.0
    return float(radius[below[0, 0]]) if below[0, 0] > 0 else None


def format_cutoff(cutoff: float | None) -> str:
    return "none" if cutoff is None else f"{cutoff:.2f}"


def wiener_x0(noisy: torch.Tensor, abar: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    """G_t applied per frequency; ``power`` is the reference set's mean |X0|^2 (orthonormal DFT, per channel)."""
    gain = abar.sqrt() / (abar + (1 - abar) / power.clamp_min(1e-12))
    return torch.fft.ifft2(torch.fft.fft2(noisy, norm="ortho") * gain, norm="ortho").real


@torch.no_grad()
def spectral_probe(models: dict[str, Checkpoint | tuple[torch.nn.Module, DDPMScheduler]], reference: torch.Tensor,
                   timesteps: tuple[int, ...] = DEFAULT_TIMESTEPS, seed: int = 0, batch_size: int = 128) -> ProbeResult:
    """Curves and cut-offs per model and timestep; the Wiener filter uses the first model's noise schedule."""
    models = {name: Checkpoint(*loaded) for name, loaded in models.items()}
    autoencoder = next(iter(models.values())).autoencoder
    if any((m.autoencoder is None) != (autoencoder is None) for m in models.values()):
        raise ProbeError("the probe compares models that denoise in one space: all pixel models or all latent ones")
    x0 = to_signed(reference)
    clean_latents = x0 if autoencoder is None else torch.cat([autoencoder.encode(x0[s : s + batch_size]).cpu()
                                                              for s in range(0, len(x0), batch_size)])
    power = torch.fft.fft2(clean_latents, norm="ortho").abs().pow(2).mean(0)
    noise = torch.randn(clean_latents.shape, generator=torch.Generator().manual_seed(seed))
    first_schedule = next(iter(models.values())).scheduler
    for name, (_, schedule, _) in models.items():
        steps = schedule.config.num_train_timesteps
        if any(not 0 <= t < steps for t in timesteps):
            raise ProbeError(f"probe timesteps must lie in [0, {steps - 1}] for {name!r} (trained on {steps} steps), "
                             f"got {list(timesteps)}")
    radius, clean = reduced_spectrum(x0)
    clean = clean.mean(0)
    result = ProbeResult(radius.tolist(), list(timesteps), {}, "pixels" if autoencoder is None else "latents")
    predictors = {name: (lambda noisy, t, m=model, s=scheduler: predicted_x0(s, noisy, _output(m, noisy, t), t))
                  for name, (model, scheduler, _) in models.items()}
    predictors["optimal linear (Wiener)"] = lambda noisy, t: wiener_x0(noisy, first_schedule.alphas_cumprod[t], power)
    for name, predict in predictors.items():
        curves = result.models[name] = ProbeCurves([], [], [])
        for t in timesteps:
            abar = first_schedule.alphas_cumprod[t]
            estimates = []
            for start in range(0, len(x0), batch_size):
                clean_batch, noise_batch = clean_latents[start : start + batch_size], noise[start : start + batch_size]
                noisy = abar.sqrt() * clean_batch + (1 - abar).sqrt() * noise_batch
                estimate = predict(noisy, t)
                estimates.append(estimate if autoencoder is None else autoencoder.decode(estimate).cpu())
            estimate = torch.cat(estimates)
            predicted_power = reduced_spectrum(estimate)[1].mean(0)
            error_power = reduced_spectrum(estimate - x0)[1].mean(0)
            recovered = 1 - error_power / clean
            curves.power.append((predicted_power / clean).tolist())
            curves.recovered.append(recovered.tolist())
            curves.cutoff.append(cutoff_radius(radius, recovered))
    return result


def _output(model: torch.nn.Module, noisy: torch.Tensor, t: int) -> torch.Tensor:
    timesteps = torch.full((len(noisy),), t, device=model.device)
    return model(noisy.to(model.device, model.dtype), timesteps).sample.float().cpu()


def probe_table(result: ProbeResult) -> str:
    """Markdown table: the cut-off radius (recovered >= 1/2 below it) per model and timestep."""
    names = list(result.models)
    lines = ["| t | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for i, t in enumerate(result.timesteps):
        lines.append(f"| {t} | " + " | ".join(format_cutoff(result.models[n].cutoff[i]) for n in names) + " |")
    return "\n".join(lines)
