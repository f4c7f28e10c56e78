"""STIG's spectrum representation: centred log magnitude with a floor, the phase kept, and the radius channel."""

from __future__ import annotations

import torch

from wgunet.evaluation.spectral import normalized_radius

LOG_SCALE = 8.0  # log |F| / LOG_SCALE is within about [-1, 1] for images in [0, 1]
# OPEN (which log): log(|F| + floor), not log(1 + |F|): an additive correction is then a gain on |F| at every
# frequency, where log(1 + |F|) is nearly linear for the small high-frequency magnitudes; it restored low-passed
# patches better (docs/results.md, STIG refinement). The floor lies
# well below uint8 quantisation noise (|F| ~ 0.036 at 32x32), so only exact zeros sit on it.
MAGNITUDE_FLOOR = 1e-3
SPECTRUM = f"log(|F| + {MAGNITUDE_FLOOR}) / {LOG_SCALE}"  # saved with each refiner, checked when one is loaded


def to_spectrum(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scaled log-magnitude, phase) of [0, 1] images (B, C, H, W), DC centred."""
    spectrum = torch.fft.fftshift(torch.fft.fft2(images.double()), dim=(-2, -1))
    return (torch.log(spectrum.abs() + MAGNITUDE_FLOOR) / LOG_SCALE).float(), spectrum.angle()


def from_spectrum(log_magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """The image whose centred spectrum has this magnitude and phase, clipped to [0, 1]."""
    magnitude = (torch.exp(log_magnitude.double() * LOG_SCALE) - MAGNITUDE_FLOOR).clamp_min(0)
    spectrum = torch.polar(magnitude, phase.double())
    images = torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1))).real
    return images.clamp(0, 1).float()


def low_frequency_mask(size: int, radius: float) -> torch.Tensor:
    return (normalized_radius(size, size) < radius).float()


def with_radius(spectra: torch.Tensor) -> torch.Tensor:
    """Append each frequency's normalised radius as a channel.

    OPEN (position): convolutions barely know where they are, but the gain a spectrum needs depends on
    the radius (a small model loses the high frequencies), so both networks see it (CoordConv).
    """
    b, _, h, w = spectra.shape
    radius = normalized_radius(h, w, spectra.device)
    return torch.cat([spectra, radius.to(spectra.dtype).expand(b, 1, h, w)], dim=1)


