"""Procedural images of coloured shapes, with the mix of (shape, colour) set per image set.

A known ground truth for mode-finding tools: plant a (shape, colour) in one set and not the other, and
FINC must find it.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230), "yellow": (230, 210, 40)}


def uniform_mix() -> dict[tuple[str, str], float]:
    return {(shape, colour): 1.0 for shape in SHAPES for colour in COLOURS}


def _mask(shape: str, size: int, cy: float, cx: float, radius: float) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] + 0.5
    if shape == "circle":
        return (y - cy) ** 2 + (x - cx) ** 2 <= radius**2
    if shape == "square":
        return (np.abs(y - cy) <= radius * 0.85) & (np.abs(x - cx) <= radius * 0.85)
    if shape == "triangle":  # pointing up: inside the apex's two edges, above the base
        top, base = cy - radius, cy + radius * 0.8
        half_width = (y - top) / (base - top) * radius
        return (y >= top) & (y <= base) & (np.abs(x - cx) <= half_width)
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


def make_shapes(n: int, mix: dict[tuple[str, str], float] | None = None, size: int = 32,
                seed: int = 0) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """``n`` uint8 images (n, 3, size, size) of one shape each, drawn with probabilities ∝ ``mix``, and their labels."""
    mix = mix or uniform_mix()
    kinds = list(mix)
    weights = np.array([mix[k] for k in kinds], dtype=float)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(kinds), size=n, p=weights / weights.sum())
    images = np.empty((n, 3, size, size), np.uint8)
    for i, k in enumerate(chosen):
        shape, colour = kinds[k]
        # near the centre, so that pixel features see the shape and not mostly its position
        radius = rng.uniform(0.28, 0.38) * size
        cy, cx = size / 2 + rng.uniform(-0.1, 0.1, 2) * size
        background = rng.uniform(10, 50) + rng.normal(0, 4, (3, size, size))
        image = np.broadcast_to(background, (3, size, size)).copy()
        image[:, _mask(shape, size, cy, cx, radius)] = np.array(COLOURS[colour])[:, None] + rng.normal(0, 8, 3)[:, None]
        images[i] = np.clip(image, 0, 255)
    return images, [kinds[k] for k in chosen]
