"""Reduced (azimuthally averaged) power spectra and the spectral scores between image sets (seed 000).

reduced_spectrum: luma -> remove DC -> 2-D Hann window -> |DFT|^2, centred -> mean over rings of normalised
radius r in [0, 1], r = 1 at the spectrum's corner (H / sqrt(2) for a square image). Batched torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from .data import to_unit
from .results import Estimate, Result

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")
BANDS = {"low": (0.0, 1 / 3), "mid": (1 / 3, 2 / 3), "high": (2 / 3, 1.0)}


def to_gray(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> luma (B, H, W); (B, 1, H, W) and (B, H, W) pass through."""
    if images.dim() == 3:
        return images
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected (B, H, W), (B, 1, H, W) or (B, 3, H, W) images, got shape {tuple(images.shape)}")
    if images.shape[1] == 1:
        return images[:, 0]
    weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device)
    return torch.einsum("bchw,c->bhw", images, weights)


def normalized_radius(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W) radius of every centred DFT frequency, 0 at DC and 1 at the corner.

    Each axis is normalised by its own half-size, then by sqrt(2), so the corner is r = 1 for any H, W.
    """
    ky = (torch.arange(height, device=device) - height // 2) / (height / 2)
    kx = (torch.arange(width, device=device) - width // 2) / (width / 2)
    return torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2) / math.sqrt(2)


def _rings(height: int, width: int, bins: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Ring index of every centred frequency, and each ring's centre radius."""
    radius = normalized_radius(height, width, device)
    index = torch.clamp((radius * bins).long(), max=bins - 1).flatten()
    return index, (torch.arange(bins, device=device) + 0.5) / bins


def default_bins(height: int, width: int) -> int:
    """One ring per pixel of radius out to the corner: ceil(min(H, W) / sqrt(2)), 23 for 32 x 32."""
    return math.ceil(min(height, width) / math.sqrt(2))


@torch.no_grad()
def reduced_spectrum(images: torch.Tensor, bins: int | None = None, normalize: bool = False,
                     log: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(radius (R,), spectrum (B, R)) of (B, C, H, W) or (B, H, W) images; empty rings are dropped.

    ``normalize`` divides each image's spectrum by its maximum power, ``log`` takes log10, as the seed's
    display form (the most powerful frequency is then 0).
    """
    gray = to_gray(images.float() if not images.is_floating_point() else images).float()
    height, width = gray.shape[-2:]
    gray = gray - gray.mean(dim=(-2, -1), keepdim=True)
    window = torch.outer(torch.hann_window(height, periodic=False, device=gray.device),
                         torch.hann_window(width, periodic=False, device=gray.device))
    power = torch.fft.fftshift(torch.fft.fft2(gray * window).abs().pow(2), dim=(-2, -1)).flatten(1)
    bins = bins or default_bins(height, width)
    index, radius = _rings(height, width, bins, gray.device)
    counts = torch.bincount(index, minlength=bins).float()
    sums = torch.zeros(power.shape[0], bins, device=gray.device).index_add_(1, index, power)
    keep = counts > 0
    spectrum = sums[:, keep] / counts[keep]
    if normalize:
        spectrum = spectrum / spectrum.amax(dim=1, keepdim=True).clamp_min(1e-30)
    if log:
        spectrum = torch.log10(spectrum.clamp_min(1e-30))
    return radius[keep], spectrum


@torch.no_grad()
def image_statistics(images: torch.Tensor, batch_size: int = 2048) -> dict[str, torch.Tensor]:
    """Per-image reduced spectra and DFT magnitudes of uint8 or [0, 1] images (N, C, H, W), in batches."""
    spectra, magnitudes, radius = [], [], None
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        chunk = chunk.float() if images.is_floating_point() else to_unit(chunk)
        radius, spectrum = reduced_spectrum(chunk)
        spectra.append(spectrum)
        magnitudes.append(torch.fft.fft2(chunk, norm="ortho").abs().flatten(1))
    return {"radius": radius, "spectra": torch.cat(spectra), "magnitude": torch.cat(magnitudes)}


@dataclass(frozen=True)
class SpectralScores(Result):
    """Generated set vs reference set, each with its 95% bootstrap interval."""

    log_spectral_distance_db: Estimate  # RMS over rings of 10 log10(S_gen / S_ref); 0 is ideal
    lfd: Estimate  # log frequency distance (see _scores); 0 is ideal
    high_frequency_ratio: Estimate  # power at r >= 2/3, generated / reference; 1 is ideal
    band_error_low: Estimate  # mean |log10 power ratio| for r < 1/3
    band_error_mid: Estimate  # ... for 1/3 <= r < 2/3
    band_error_high: Estimate  # ... for r >= 2/3

    def items(self) -> list[tuple[str, Estimate]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


def _scores(radius: torch.Tensor, generated: torch.Tensor, reference: torch.Tensor, generated_magnitude: torch.Tensor,
            reference_magnitude: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scores of mean spectra; every argument may carry a leading bootstrap dimension."""
    log_ratio = torch.log10(generated.clamp_min(1e-30)) - torch.log10(reference.clamp_min(1e-30))
    high = radius >= BANDS["high"][0]
    scores = {
        # log-spectral distance in dB: RMS over rings of 10 log10(S_gen / S_ref)
        "log_spectral_distance_db": (10 * log_ratio).pow(2).mean(-1).sqrt(),
        # LFD (Jiang et al. 2021, as STIG reports it): log(mean |F_real - F_fake|^2 + 1).
        # OPEN (unpaired sets): F is each set's mean orthonormal-DFT magnitude per channel, images in [0, 1].
        "lfd": torch.log((reference_magnitude - generated_magnitude).pow(2).mean(-1) + 1),
        # the spectral-bias headline: power at r >= 2/3, generated over reference (1 = no bias)
        "high_frequency_ratio": generated[..., high].sum(-1) / reference[..., high].sum(-1),
    }
    for band, (low, top) in BANDS.items():  # mean |log10 ratio| per third of the radius
        inside = (radius >= low) & ((radius < top) if top < 1 else (radius <= top))
        scores[f"band_error_{band}"] = log_ratio[..., inside].abs().mean(-1)
    return scores


def spectral_scores(generated: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], bootstrap: int = 200,
                    seed: int = 0) -> SpectralScores:
    """Each score's value and 95% bootstrap interval (both sets resampled with replacement, images as units)."""
    if not torch.equal(generated["radius"], reference["radius"]):
        raise ValueError("the generated and reference images differ in size; spectral scores need one size")
    value = _scores(reference["radius"], generated["spectra"].mean(0), reference["spectra"].mean(0),
                    generated["magnitude"].mean(0), reference["magnitude"].mean(0))
    generator = torch.Generator().manual_seed(seed)

    def resampled_means(stats: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(stats["spectra"])
        draws = torch.randint(0, n, (bootstrap, n), generator=generator)
        weights = torch.zeros(bootstrap, n).scatter_add_(1, draws, torch.full((bootstrap, n), 1.0 / n))
        return weights @ stats["spectra"], weights @ stats["magnitude"]

    generated_spectra, generated_magnitude = resampled_means(generated)
    reference_spectra, reference_magnitude = resampled_means(reference)
    samples = _scores(reference["radius"], generated_spectra, reference_spectra, generated_magnitude, reference_magnitude)
    return SpectralScores(**{name: Estimate(float(value[name]), (float(samples[name].quantile(0.025)),
                                                                 float(samples[name].quantile(0.975))))
                             for name in value})
