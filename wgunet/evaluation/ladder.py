"""Inputs whose answer is known, for checking that a measure means what its name says.

A degradation ladder takes clean uint8 images (N, 3, H, W) a step further from themselves at each level:
additive Gaussian noise (sigma in units of the [-1, 1] range), Gaussian blur (sigma in pixels, 7 taps,
reflected borders) and a warm colour shift (red up, blue down, in units of the [-1, 1] range). Any distance to
the clean set's distribution must grow along every ladder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LEVELS = {"noise": (0.0, 0.05, 0.1, 0.2), "blur": (0.0, 0.7, 1.2, 2.0), "colour": (0.0, 0.1, 0.2, 0.4)}


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def noised(images: torch.Tensor, sigma: float, seed: int = 1) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    return _to_uint8(images.float() + noise * sigma * 127.5)


def blurred(images: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma == 0:
        return images
    taps = torch.arange(-3, 4).float()
    kernel = (-taps**2 / (2 * sigma**2)).exp()
    kernel = (kernel / kernel.sum()).repeat(images.shape[1], 1, 1, 1)
    x = F.pad(images.float(), (3, 3, 3, 3), mode="reflect")
    x = F.conv2d(x, kernel.view(-1, 1, 1, 7), groups=images.shape[1])
    return _to_uint8(F.conv2d(x, kernel.view(-1, 1, 7, 1), groups=images.shape[1]))


def colour_shifted(images: torch.Tensor, shift: float) -> torch.Tensor:
    direction = torch.tensor([1.0, 0.0, -1.0]).view(1, 3, 1, 1)
    return _to_uint8(images.float() + 127.5 * shift * direction)


def circular_blur(images: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Gaussian low-pass (7 taps, circular borders, zero phase): as a small model under-produces high frequencies,
    with no border artefacts for a spectral refiner to learn (STIG's restoration check)."""
    taps = torch.arange(-3, 4).float()
    kernel = torch.exp(-taps**2 / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).view(1, 1, 1, 7).expand(images.shape[1], 1, 1, 7)
    x = F.conv2d(F.pad(images.float(), (3, 3, 0, 0), mode="circular"), kernel, groups=images.shape[1])
    x = F.conv2d(F.pad(x, (0, 0, 3, 3), mode="circular"), kernel.transpose(-1, -2), groups=images.shape[1])
    return _to_uint8(x)


DEGRADATIONS = {"noise": noised, "blur": blurred, "colour": colour_shifted}


def degradation_ladders(images: torch.Tensor) -> dict[str, list[tuple[float, torch.Tensor]]]:
    """{"noise" | "blur" | "colour": [(level, degraded images), ...]} at ``LEVELS``, level 0 first."""
    return {name: [(level, DEGRADATIONS[name](images, level)) for level in levels] for name, levels in LEVELS.items()}


def rgb_noise(shape: tuple[int, ...], seed: int = 2) -> torch.Tensor:
    """Uniform RGB noise images: what a collapsed generator draws."""
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
