"""Reduced (azimuthally averaged) power spectra and the spectral scores between image sets (the reduced spectrum
of Yang et al., "Diffusion Probabilistic Model Made Slim", CVPR 2023).

Two conventions (``reduced_spectrum(convention=...)``):
- ``seed`` (default, the seed's definition): luma -> remove DC -> 2-D Hann window -> |DFT|^2, centred -> mean
  over rings of normalised radius r in [0, 1], r = 1 at the spectrum's corner (H / sqrt(2) for a square image).
- ``frequency_bias`` (autonomousvision/frequency_bias, so that curves compare with published ones): per RGB
  channel, no window, DC kept, |DFT|^2 with the Nyquist row and column repeated at both ends (an odd
  (N + 1)^2 grid centred on DC), mean over rings of integer pixel radius floor(sqrt(k^2 + l^2)), then the mean
  over channels. Square images only, as in its code; its radius is reported as ring / (N / sqrt(2)), r = 1 at
  the corner, so that the bands below mean the same frequencies in both.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
from dataclasses import dataclass, fields
from typing import Iterable, Iterator

import torch

from wgunet.common.pixels import to_unit
from wgunet.common.results import Estimate, Result, bootstrapped

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)

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


CONVENTIONS = ("seed", "frequency_bias")


@torch.no_grad()
def reduced_spectrum(images: torch.Tensor, bins: int | None = None, normalize: bool = False,
                     log: bool = False, convention: str = "seed") -> tuple[torch.Tensor, torch.Tensor]:
    """(radius (R,), spectrum (B, R)) of (B, C, H, W) or (B, H, W) images; empty rings are dropped.

    ``normalize`` divides each image's spectrum by its maximum power, ``log`` takes log10, as the seed's
    display form (the most powerful frequency is then 0).
    """
    if convention == "frequency_bias":
        radius, spectrum = _frequency_bias_spectrum(images)
    elif convention == "seed":
        radius, spectrum = _seed_spectrum(images, bins)
    else:
        raise ValueError(f"unknown spectrum convention {convention!r}; choose {' or '.join(CONVENTIONS)}")
    if normalize:
        spectrum = spectrum / spectrum.amax(dim=1, keepdim=True).clamp_min(1e-30)
    if log:
        spectrum = torch.log10(spectrum.clamp_min(1e-30))
    return radius, spectrum


def _frequency_bias_spectrum(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = (images if images.dim() == 4 else images[:, None]).float()
    batch, channels, height, width = x.shape
    if height != width:
        raise ValueError(f"the frequency_bias convention is defined for square images, got {height} x {width}")
    power = torch.fft.fft2(x).abs().pow(2)
    if height % 2 == 0:  # the Nyquist row and column at both ends: an odd grid whose centre is DC
        half = height // 2
        power = torch.cat([power[..., : half + 1, :], power[..., half : half + 1, :], power[..., half + 1 :, :]], -2)
        power = torch.cat([power[..., : half + 1], power[..., half : half + 1], power[..., half + 1 :]], -1)
    power = torch.fft.fftshift(power, dim=(-2, -1))
    offsets = torch.arange(power.shape[-1], device=x.device) - (power.shape[-1] - 1) / 2
    ring = torch.sqrt(offsets[:, None] ** 2 + offsets[None, :] ** 2).long().flatten()
    counts = torch.bincount(ring).float()
    sums = torch.zeros(batch * channels, len(counts), device=x.device).index_add_(1, ring, power.flatten(0, 1).flatten(1))
    spectrum = (sums / counts).view(batch, channels, -1).mean(1)
    return torch.arange(len(counts), device=x.device) / (height / math.sqrt(2)), spectrum


def _seed_spectrum(images: torch.Tensor, bins: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    gray = to_gray(images.float() if not images.is_floating_point() else images).float()
    height, width = gray.shape[-2:]
    gray = gray - gray.mean(dim=(-2, -1), keepdim=True)
    window = torch.outer(torch.hann_window(height, periodic=False, device=gray.device),
                         torch.hann_window(width, periodic=False, device=gray.device))
    power = torch.fft.fftshift(torch.fft.fft2(gray * window).abs().pow(2), dim=(-2, -1))
    radius, means, counts = ring_mean(power, bins)
    keep = counts > 0
    return radius[keep], means[:, keep]


def ring_mean(values: torch.Tensor, bins: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ring radius (R,), mean of centred (..., H, W) values over each ring of normalised radius (..., R), pixels per
    ring (R,)); empty rings (none for square images) hold 0. Differentiable: STIG's profile discriminator uses it."""
    height, width = values.shape[-2:]
    bins = bins or default_bins(height, width)
    index, radius = _rings(height, width, bins, values.device)
    counts = torch.bincount(index, minlength=bins).float()
    flat = values.flatten(-2)
    sums = torch.zeros(*flat.shape[:-1], bins, device=values.device, dtype=values.dtype).index_add_(-1, index, flat)
    return radius, sums / counts.clamp_min(1), counts


def stig_log_spectrum(images: torch.Tensor) -> torch.Tensor:
    """STIG's per-image spectrum for its LFD: log(1 + |fftshift(fft2(x))|) per channel of [0, 1] images, min-max
    scaled over each whole (C, H, W) image to [0, 1]; flattened to (B, C * H * W)."""
    spectrum = torch.log1p(torch.fft.fftshift(torch.fft.fft2(images), dim=(-2, -1)).abs()).flatten(1)
    low, high = spectrum.amin(1, keepdim=True), spectrum.amax(1, keepdim=True)
    return (spectrum - low) / (high - low).clamp_min(1e-12)


@torch.no_grad()
def image_statistics(images: torch.Tensor, batch_size: int = 2048, convention: str = "seed") -> dict[str, torch.Tensor]:
    """Per-image reduced spectra, DFT magnitudes and STIG spectra of uint8 or [0, 1] images (N, C, H, W)."""
    spectra, magnitudes, stig, radius = [], [], [], None
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        chunk = chunk.float() if images.is_floating_point() else to_unit(chunk)
        radius, spectrum = reduced_spectrum(chunk, convention=convention)
        spectra.append(spectrum)
        magnitudes.append(torch.fft.fft2(chunk, norm="ortho").abs().flatten(1))
        stig.append(stig_log_spectrum(chunk))
    return {"radius": radius, "spectra": torch.cat(spectra), "magnitude": torch.cat(magnitudes),
            "stig_spectrum": torch.cat(stig)}


@dataclass(frozen=True)
class SpectralScores(Result):
    """Generated set vs reference set, each with its 95% bootstrap interval."""

    log_spectral_distance_db: Estimate  # RMS over rings of 10 log10(S_gen / S_ref); 0 is ideal
    lfd_stig: Estimate  # LFD exactly as STIG's evaluation computes it (see _scores); 0 is ideal
    lfd_mean_magnitude: Estimate  # this project's unpaired LFD on mean orthonormal |DFT| (see _scores); 0 is ideal
    high_frequency_ratio: Estimate  # power at r >= 2/3, generated / reference; 1 is ideal
    band_error_low: Estimate  # mean |log10 power ratio| for r < 1/3
    band_error_mid: Estimate  # ... for 1/3 <= r < 2/3
    band_error_high: Estimate  # ... for r >= 2/3

    def items(self) -> list[tuple[str, Estimate]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


def _scores(radius: torch.Tensor, generated: torch.Tensor, reference: torch.Tensor, generated_magnitude: torch.Tensor,
            reference_magnitude: torch.Tensor, generated_stig: torch.Tensor,
            reference_stig: torch.Tensor) -> dict[str, torch.Tensor]:
    """Scores of the sets' mean statistics; every argument may carry a leading bootstrap dimension."""
    log_ratio = torch.log10(generated.clamp_min(1e-30)) - torch.log10(reference.clamp_min(1e-30))
    high = radius >= BANDS["high"][0]
    scores = {
        # log-spectral distance in dB: RMS over rings of 10 log10(S_gen / S_ref)
        "log_spectral_distance_db": (10 * log_ratio).pow(2).mean(-1).sqrt(),
        # STIG's LFD (its eval.py and utils/metric.py): each set's mean of stig_log_spectrum, quantised as its PNG
        # round trip does (x 255, truncated to integers), then ln(1 + sum over H, W, C of the squared difference).
        # Its script subtracts the two uint8 arrays, which wraps around; the difference is taken in integers here.
        "lfd_stig": torch.log1p((torch.floor(255 * reference_stig) - torch.floor(255 * generated_stig)).pow(2).sum(-1)),
        # The Focal Frequency Loss paper's LFD, log(mean |F_real - F_fake|^2 + 1), is paired (one fake per real
        # image). OPEN (unpaired sets): F is each set's mean orthonormal-DFT magnitude per channel, images in [0, 1].
        "lfd_mean_magnitude": torch.log((reference_magnitude - generated_magnitude).pow(2).mean(-1) + 1),
        # the spectral-bias headline: power at r >= 2/3, generated over reference (1 = no bias)
        "high_frequency_ratio": generated[..., high].sum(-1) / reference[..., high].sum(-1),
    }
    for band, (low, top) in BANDS.items():  # mean |log10 ratio| per third of the radius
        inside = (radius >= low) & ((radius < top) if top < 1 else (radius <= top))
        scores[f"band_error_{band}"] = log_ratio[..., inside].abs().mean(-1)
    return scores


STATISTICS = ("spectra", "magnitude", "stig_spectrum")  # what the scores are computed from, per image


def resample_weights(n: int, bootstrap: int, generator: torch.Generator) -> torch.Tensor:
    """(bootstrap, n) weights: each row a resample of n images drawn with replacement, as counts / n."""
    draws = torch.randint(0, n, (bootstrap, n), generator=generator)
    return torch.zeros(bootstrap, n).scatter_add_(1, draws, torch.full((bootstrap, n), 1.0 / n))


@dataclass
class SetStatistics:
    """What the scores need of one set, accumulated image by image: the per-image reduced spectra (N, R: small),
    each statistic's mean, and its mean under each bootstrap resample (B, D) given the resample weights."""

    radius: torch.Tensor
    spectra: torch.Tensor
    means: dict[str, torch.Tensor]
    resampled: dict[str, torch.Tensor]


def streaming_batch(size: tuple[int, int]) -> int:
    """Images per batch when a set is read to accumulate its statistics: about 2 M pixels."""
    return max(1, 2**21 // (size[0] * size[1]))


@contextlib.contextmanager
def large_blocks_returned() -> Iterator[None]:
    """Inside: every large allocation (>= 128 KiB) its own memory mapping, returned to the system when freed.

    glibc raises its mmap threshold to the largest block freed so far; after the first batch the big FFT buffers
    then come from the heap, which they fragment, and a process streaming thousands of batches grows by
    gigabytes. On exit the thresholds are set where glibc's own rule ends (mmap 32 MiB, trim twice that): a process
    that trains after scoring (the evaluation during training) then reuses its heap, instead of mapping and
    zeroing fresh pages for every activation, which made each training step about 2.5x slower on a CPU.
    Linux with glibc only; elsewhere nothing changes."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        yield
        return
    mallopt(M_MMAP_THRESHOLD, 128 * 1024)  # fixed, which also switches glibc's dynamic raise off
    try:
        yield
    finally:
        mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit glibc
        mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024)


def accumulate(batches: Iterable[tuple[int, torch.Tensor]], num: int, weights: torch.Tensor | None,
               convention: str = "seed") -> SetStatistics:
    """``SetStatistics`` of a set read batch by batch (first index, uint8 or [0, 1] images): memory grows with the
    bootstrap and the image size, not with the number of images."""
    spectra, sums, resampled, radius = [], {}, {}, None
    with large_blocks_returned():
        for start, batch in batches:
            stats = image_statistics(batch, convention=convention)
            radius = stats["radius"]
            spectra.append(stats["spectra"])
            for key in STATISTICS:
                sums[key] = sums.get(key, 0) + stats[key].double().sum(0)
                if weights is not None:
                    resampled[key] = resampled.get(key, 0) + weights[:, start : start + len(batch)] @ stats[key]
    return SetStatistics(radius, torch.cat(spectra), {k: (v / num).float() for k, v in sums.items()}, resampled)


def in_memory(stats: dict[str, torch.Tensor], weights: torch.Tensor | None) -> SetStatistics:
    """``SetStatistics`` of per-image statistics already in memory (``image_statistics``)."""
    return SetStatistics(stats["radius"], stats["spectra"], {k: stats[k].mean(0) for k in STATISTICS},
                         {k: weights @ stats[k] for k in STATISTICS} if weights is not None else {})


def scores_of(generated: SetStatistics, reference: SetStatistics) -> SpectralScores:
    """Each score's value, 95% interval and bias (``results.bootstrapped``) from two sets' statistics."""
    if not torch.equal(generated.radius, reference.radius):
        raise ValueError("the generated and reference images differ in size; spectral scores need one size")
    value = _scores(reference.radius, *[s.means[k] for k in STATISTICS for s in (generated, reference)])
    if not generated.resampled:
        return SpectralScores(**{name: bootstrapped(float(value[name]), torch.empty(0)) for name in value})
    samples = _scores(reference.radius, *[s.resampled[k] for k in STATISTICS for s in (generated, reference)])
    return SpectralScores(**{name: bootstrapped(float(value[name]), samples[name]) for name in value})


def spectral_scores(generated: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], bootstrap: int = 200,
                    seed: int = 0) -> SpectralScores:
    """Each score's value, 95% interval and bias (``results.bootstrapped``; both sets resampled with
    replacement, images as units, the generated set's resamples drawn first; ``bootstrap=0`` gives the value as
    both ends) of per-image statistics (``image_statistics``)."""
    generator = torch.Generator().manual_seed(seed)
    weights = [resample_weights(len(s["spectra"]), bootstrap, generator) if bootstrap else None
               for s in (generated, reference)]
    return scores_of(in_memory(generated, weights[0]), in_memory(reference, weights[1]))
