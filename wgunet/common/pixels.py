"""Pixel ranges: uint8 at every boundary, [0, 1] or [-1, 1] only inside a computation."""

from __future__ import annotations

import torch


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [0, 1]."""
    return images.float() / 255


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1, 1], the range diffusion models work in."""
    return images.float() / 127.5 - 1


def unit_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float in [0, 1] -> uint8 (rounded)."""
    return (images * 255).round().clamp(0, 255).to(torch.uint8)
