"""Image embeddings for FID/KID and FINC; FINC's are cached as .npy files per (input, extractor).

- ``teacher``: the teacher UNet's mid-block features at a small timestep (t = 10, seeded noise), averaged over
  space. No extra weights, works offline. Checked on a degradation ladder of held-out patches (noise, blur,
  colour shift: FID grows with each step) and against pure noise, which it scores far worse than any model's
  samples (tests/test_metrics.py). A random-weights conv net ("randconv") used before failed that check (it
  barely saw blur and scored RGB noise close to the teacher's samples) and was removed.
- ``inception``: torch-fidelity's Inception-V3 (optional extra ``[inception]``), the standard FID features; its
  weights file must already be in torch's hub cache, since nothing is downloaded here.
- ``dinov2``: facebook/dinov2-base through transformers, from the local Hugging Face cache.
- ``pixels``: the image, area-downsampled to at most 16x16, in [0, 1], flattened (768 values at 3x16x16); FINC only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .cli import UserError
from .files import write_file, write_json

EXTRACTORS = ("pixels", "teacher", "inception", "dinov2")
FID_EXTRACTORS = ("teacher", "inception", "dinov2")
TEACHER_TIMESTEP = 10
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"  # the file torch-fidelity downloads
DINOV2 = "facebook/dinov2-base"


class MetricError(UserError):
    """A feature extractor that cannot be used here; the message says what to install or where to put weights."""


def pixel_features(images: torch.Tensor, side: int = 16) -> torch.Tensor:
    x = images.float() / 255
    if x.shape[-1] > side:
        x = F.adaptive_avg_pool2d(x, side)
    return x.flatten(1)


class TeacherFeatures(torch.nn.Module):
    """Mid-block features of a diffusers UNet2DModel at a small t, spatially averaged.

    Images of another size than the teacher's are area-resized to it first, so that every set is embedded at
    the scale the teacher was trained on.
    """

    def __init__(self, teacher: str):
        super().__init__()
        from .teacher import FeatureTaps, load_teacher

        self.unet, self.scheduler = load_teacher(teacher)
        self.taps = FeatureTaps(self.unet)
        self.label = (f"teacher mid-block at t={TEACHER_TIMESTEP} ({teacher}); offline; compares sets scored with "
                      "this same teacher only, NOT comparable to published FID")

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x0 = images.float() / 127.5 - 1
        size = self.unet.config.sample_size
        if x0.shape[-2:] != (size, size):
            x0 = F.interpolate(x0, size=(size, size), mode="area")
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
        t = torch.full((len(x0),), TEACHER_TIMESTEP)
        self.unet(self.scheduler.add_noise(x0, noise, t), t)
        return self.taps.pop()["mid"].float().mean(dim=(-2, -1))


class DINOv2Features(nn.Module):
    """CLS features of DINOv2 (ImageNet-normalised 224x224 input) from the local Hugging Face cache."""

    label = f"dinov2 ({DINOV2})"

    def __init__(self):
        super().__init__()
        from transformers import AutoModel

        self.model = AutoModel.from_pretrained(DINOV2, local_files_only=True).eval()
        self.num_features = self.model.config.hidden_size
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406])[:, None, None])
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225])[:, None, None])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(images.float() / 255, size=(224, 224), mode="bicubic", align_corners=False)
        return self.model(pixel_values=(x - self.mean) / self.std).pooler_output


def inception_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS


def feature_extractor(name: str = "auto", teacher: str = "assets/teacher") -> tuple[nn.Module, str]:
    """(module mapping uint8 (N, 3, H, W) images to (N, F) features, label for every output).

    ``auto`` picks the best one available for FID: inception, then dinov2, then the teacher's features.
    """
    if name == "auto":
        for candidate in ("inception", "dinov2"):
            try:
                return feature_extractor(candidate)
            except MetricError:
                continue
        return feature_extractor("teacher", teacher)
    if name == "teacher":
        module = TeacherFeatures(teacher)
        return module, module.label
    if name == "inception":
        if importlib.util.find_spec("torch_fidelity") is None:
            raise MetricError("the inception extractor needs torch-fidelity: pip install 'wgunet[inception]' "
                              "(or use --features teacher, offline and labelled not comparable)")
        if not inception_weights_path().is_file():
            raise MetricError(f"Inception weights not found: put {INCEPTION_WEIGHTS} (from torch-fidelity's releases) "
                              f"at {inception_weights_path()}, or set TORCH_HOME to a folder whose hub/checkpoints/ has it")
        from torchmetrics.image.fid import NoTrainInceptionV3

        module = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                    feature_extractor_weights_path=str(inception_weights_path()))
        module.num_features = 2048
        return module, "inception (torch-fidelity Inception-V3, pool3, 2048 features)"
    if name == "dinov2":
        if importlib.util.find_spec("transformers") is None:
            raise MetricError("the dinov2 extractor needs transformers: pip install transformers")
        try:
            module = DINOv2Features()
        except OSError as error:
            raise MetricError(f"{DINOV2} is not in the local Hugging Face cache ({error}); where there is internet, "
                              f"run `huggingface-cli download {DINOV2}`") from None
        return module, module.label
    raise MetricError(f"unknown feature extractor {name!r}; choose auto, {', '.join(FID_EXTRACTORS)}")


def _input_key(source: str, extractor: str, options: dict) -> str:
    """Changes when the input files change (path, size, modification time) or the extractor does."""
    path = Path(source)
    if path.is_dir():
        # hidden files (a folder's lock, unfinished writes) are not the input
        stamp = [(str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))
                 if p.is_file() and not p.name.startswith(".")]
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
    module, label = feature_extractor(extractor, teacher)
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
    write_file(path, lambda handle: np.save(handle, features.numpy()))
    write_json(label_path, {"label": label, "source": source})
    return features, label
