"""Image embeddings for FINC, computed once per (input, extractor) and cached as .npy files.

- ``pixels``: the image, area-downsampled to at most 16x16, in [0, 1], flattened (768 values at 3x16x16).
- ``teacher``: the teacher UNet's mid-block features at a small timestep (t = 10, seeded noise),
  averaged over space. No extra weights, works offline.
- ``inception``, ``dinov2``: the FID extractors of ``wgunet.metrics``, when their weights are present.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .metrics import feature_extractor

EXTRACTORS = ("pixels", "teacher", "inception", "dinov2")
TEACHER_TIMESTEP = 10


def pixel_features(images: torch.Tensor, side: int = 16) -> torch.Tensor:
    x = images.float() / 255
    if x.shape[-1] > side:
        x = F.adaptive_avg_pool2d(x, side)
    return x.flatten(1)


class TeacherFeatures(torch.nn.Module):
    """Mid-block features of a diffusers UNet2DModel at a small t, spatially averaged."""

    def __init__(self, teacher: str):
        super().__init__()
        from .teacher import FeatureTaps, load_teacher

        self.unet, self.scheduler = load_teacher(teacher)
        self.taps = FeatureTaps(self.unet)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x0 = images.float() / 127.5 - 1
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
        t = torch.full((len(x0),), TEACHER_TIMESTEP)
        self.unet(self.scheduler.add_noise(x0, noise, t), t)
        return self.taps.pop()["mid"].float().mean(dim=(-2, -1))


def _input_key(source: str, extractor: str, options: dict) -> str:
    """Changes when the input files change (path, size, modification time) or the extractor does."""
    path = Path(source)
    if path.is_dir():
        stamp = [(str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))
                 if p.is_file()]
    elif path.is_file():
        stamp = [(path.stat().st_size, path.stat().st_mtime_ns)]
    else:
        stamp = []  # built-in sets are fixed by their name
    text = json.dumps([str(path.resolve()) if stamp else source, stamp, extractor, options], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@torch.no_grad()
def compute_features(images: torch.Tensor, extractor: str, teacher: str = "assets/teacher",
                     batch_size: int = 256) -> tuple[torch.Tensor, str]:
    """(N, F) float32 features and the extractor's label."""
    if extractor == "pixels":
        return pixel_features(images), "pixels (area-downsampled to 16x16, [0, 1])"
    if extractor == "teacher":
        module, label = TeacherFeatures(teacher), f"teacher mid-block at t={TEACHER_TIMESTEP} ({teacher})"
    elif extractor in ("inception", "dinov2"):
        module, label = feature_extractor(extractor)
    else:
        raise ValueError(f"unknown extractor {extractor!r}; choose one of {', '.join(EXTRACTORS)}")
    chunks = [module(images[s : s + batch_size]).float() for s in
              tqdm(range(0, len(images), batch_size), desc=f"{extractor} features", leave=False)]
    return torch.cat(chunks), label


def cached_features(source: str, images: torch.Tensor, extractor: str, cache: str | Path,
                    teacher: str = "assets/teacher") -> tuple[torch.Tensor, str]:
    """``compute_features``, stored as ``cache/<extractor>-<key>.npy`` and reused while the input is unchanged."""
    options = {"teacher": _input_key(teacher, "", {}) if extractor == "teacher" else None, "n": len(images)}
    path = Path(cache) / f"{extractor}-{_input_key(source, extractor, options)}.npy"
    label_path = path.with_suffix(".json")
    if path.is_file() and label_path.is_file():
        return torch.from_numpy(np.load(path)), json.loads(label_path.read_text())["label"]
    features, label = compute_features(images, extractor, teacher)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + f".{os.getpid()}.tmp.npy")
    np.save(temporary, features.numpy())
    temporary.rename(path)
    label_path.write_text(json.dumps({"label": label, "source": source}))
    return features, label
