"""Image embeddings for FID/KID and FINC; FINC's are cached as .npy files per (input, extractor).

- ``teacher``: the teacher UNet's mid-block features at a small timestep (t = 10, seeded noise), averaged over
  space. No extra weights, works offline. Its label names the network by a fingerprint of its weights, so two
  FIDs are in the same features exactly when their labels match. Checked on a degradation ladder of held-out
  patches (noise, blur, colour shift: FID grows with each step) and against pure noise, which it scores far worse
  than any model's samples (tests/test_metrics.py). A random-weights conv net ("randconv") used before failed that
  check (it barely saw blur and scored RGB noise close to the teacher's samples) and was removed.
- ``inception``: torch-fidelity's Inception-V3 (optional extra ``[inception]``), the standard FID features; its
  weights file must already be in torch's hub cache, since nothing is downloaded here.
- ``dinov2``: facebook/dinov2-base through transformers, from the local Hugging Face cache.
- ``pixels``: the image, area-downsampled to at most 16x16, in [0, 1], flattened (768 values at 3x16x16); FINC only.

Every extractor is a module with a ``label`` that names it in every output.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import PartialState
from accelerate.utils import gather_object
from torch import nn
from tqdm.auto import tqdm

from wgunet.common.errors import UserError
from wgunet.common.files import write_file, write_json
from wgunet.common.pixels import to_signed, to_unit
from wgunet.common.processes import my_share, on_main
from wgunet.evaluation.image_sets import ImageSet, ImageSource, as_source
from wgunet.training.teacher import load_teacher

EXTRACTORS = ("pixels", "teacher", "inception", "dinov2")
TEACHER_TIMESTEP = 10
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"  # the file torch-fidelity downloads
DINOV2 = "facebook/dinov2-base"


class MetricError(UserError):
    """A feature extractor that cannot be used here; the message says what to install or where to put weights."""


class PixelFeatures(nn.Module):
    """The image itself, area-downsampled to at most ``side`` x ``side``, in [0, 1], flattened."""

    def __init__(self, side: int = 16):
        super().__init__()
        self.side = side
        self.label = f"pixels (area-downsampled to {side}x{side}, [0, 1])"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = to_unit(images)
        if x.shape[-1] > self.side:
            x = F.adaptive_avg_pool2d(x, self.side)
        return x.flatten(1)


class TeacherFeatures(nn.Module):
    """Mid-block features of a diffusers UNet2DModel at a small t, spatially averaged.

    Images of another size than the teacher's are area-resized to it first, so that every set is embedded at
    the scale the teacher was trained on; a latent teacher embeds the latents of its autoencoder.
    """

    def __init__(self, unet, scheduler, autoencoder, source: str):
        super().__init__()
        from wgunet.training.teacher import FeatureTaps

        self.unet, self.scheduler, self.autoencoder, self.taps = unet, scheduler, autoencoder, FeatureTaps(unet)
        self.cache_key = _input_key(source, "", {})  # the teacher's files: retrained, its features change
        self.fingerprint = weights_fingerprint(unet)
        self.label = (f"teacher mid-block at t={TEACHER_TIMESTEP} ({source}, weights {self.fingerprint}); offline; "
                      "compares sets scored with this same network only, NOT comparable to published FID")

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x0 = to_signed(images)
        size = self.unet.config.sample_size * (self.autoencoder.factor if self.autoencoder else 1)
        if x0.shape[-2:] != (size, size):
            x0 = F.interpolate(x0, size=(size, size), mode="area")
        if self.autoencoder is not None:
            x0 = self.autoencoder.encode(x0).float().cpu()
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
        t = torch.full((len(x0),), TEACHER_TIMESTEP)
        noisy = self.scheduler.add_noise(x0, noise, t).to(self.unet.device, self.unet.dtype)
        self.unet(noisy, t.to(self.unet.device))  # wherever sampling left the teacher
        return self.taps.pop()["mid"].float().mean(dim=(-2, -1)).cpu()


def weights_fingerprint(module: nn.Module) -> str:
    """The first 12 hex digits of a sha256 over a module's tensors (names, shapes and float32 values): the same on
    every device and in fp32 or fp16 for fp16 weights; a retrained, replaced or lossily cast network gets another."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


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
        x = F.interpolate(to_unit(images), size=(224, 224), mode="bicubic", align_corners=False)
        return self.model(pixel_values=(x - self.mean) / self.std).pooler_output


def inception_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS


def feature_extractor(name: str, teacher: Callable[[], nn.Module] | None = None) -> nn.Module:
    """A module mapping uint8 (N, 3, H, W) images to (N, F) features, with a ``label`` for every output.

    ``auto`` picks the best one available for FID: inception, then dinov2, then the teacher's features.
    ``teacher`` builds the TeacherFeatures of the command's (already loaded) teacher, only when they are used.
    """
    if name == "auto":
        for candidate in ("inception", "dinov2"):
            try:
                return feature_extractor(candidate)
            except MetricError:
                continue
        return feature_extractor("teacher", teacher)
    if name == "pixels":
        return PixelFeatures()
    if name == "teacher":
        if teacher is None:
            raise MetricError("teacher features need a teacher: pass --teacher")
        return teacher()
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
        module.label = "inception (torch-fidelity Inception-V3, pool3, 2048 features)"
        return module
    if name == "dinov2":
        if importlib.util.find_spec("transformers") is None:
            raise MetricError("the dinov2 extractor needs transformers: pip install transformers")
        try:
            return DINOv2Features()
        except OSError as error:
            raise MetricError(f"{DINOV2} is not in the local Hugging Face cache ({error}); where there is internet, "
                              f"run `huggingface-cli download {DINOV2}`") from None
    raise MetricError(f"unknown feature extractor {name!r}; choose auto, {', '.join(EXTRACTORS)}")


def teacher_features(teacher: str) -> Callable[[], nn.Module]:
    """Builds the teacher's feature extractor, loading the teacher, only if an extractor asks for it."""
    return lambda: TeacherFeatures(*load_teacher(teacher), teacher)


def label(extractor: nn.Module) -> str:
    return getattr(extractor, "label", type(extractor).__name__)


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
def compute_features(images: ImageSet | ImageSource | torch.Tensor, extractor: nn.Module, batch_size: int = 256,
                     state: PartialState | None = None) -> torch.Tensor:
    """(N, F) float32 features of uint8 images, read and embedded batch by batch: only the features are kept.

    With the ``state`` of several processes (``accelerate launch`` / ``torchrun``) each embeds every n-th batch and
    every process gets all N rows. Split by batch, not by image: each image then sits in the same batch at the same
    place as on one process, so the features are those of one process (the teacher features' noise is drawn per
    place in a batch).
    """
    source = as_source(images)
    starts = list(range(0, len(source), batch_size))
    several = state is not None and state.num_processes > 1
    mine = my_share(state, starts) if several else starts
    chunks = {s: extractor(source.read(s, min(len(source), s + batch_size))).float().cpu() for s in
              tqdm(mine, desc="features", leave=False, disable=several and not state.is_main_process)}
    if several:  # pickled between this job's own processes, as torch.distributed sends objects
        chunks = {s: chunk for part in gather_object([chunks]) for s, chunk in part.items()}
    return torch.cat([chunks[s] for s in starts])


def cached_features(image_set: ImageSet | ImageSource, extractor: nn.Module, cache: str | Path,
                    state: PartialState | None = None) -> torch.Tensor:
    """``compute_features`` of an image set, stored as ``cache/<key>.npy`` and reused while the set's files, its
    size and the extractor are unchanged. With ``state``: computed by every process, written by the main one."""
    options = {"extractor": getattr(extractor, "cache_key", None), "n": len(image_set)}
    path = Path(cache) / f"{_input_key(image_set.source, label(extractor), options)}.npy"
    if on_main(state, path.is_file) if state else path.is_file():
        return torch.from_numpy(np.load(path))
    features = compute_features(image_set, extractor, state=state)
    if state is None or state.is_main_process:
        write_file(path, lambda handle: np.save(handle, features.numpy()))
        write_json(path.with_suffix(".json"), {"label": label(extractor), "source": image_set.source})
    return features
