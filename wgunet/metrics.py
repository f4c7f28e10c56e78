"""FID and KID through torchmetrics, with the feature extractor chosen by name (or passed as a module).

- ``inception``: the standard torch-fidelity Inception-V3 (optional extra ``[inception]``); its weights file
  must already be in torch's hub cache, since nothing is downloaded here.
- ``dinov2``: facebook/dinov2-base through transformers, from the local Hugging Face cache.
- ``randconv``: a fixed, seeded random conv net. Works offline with no weights; its scores rank models
  against each other on this project's data but are NOT comparable to any published FID.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from .cli import UserError

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"  # the file torch-fidelity downloads
DINOV2 = "facebook/dinov2-base"
EXTRACTORS = ("inception", "dinov2", "randconv")


class MetricError(UserError):
    """A feature extractor that cannot be used here; the message says what to install or where to put weights."""


class RandomConvFeatures(nn.Module):
    """Weights-free features: a seeded random conv net (uint8 images in, 256 features out), for offline use."""

    num_features = 256
    label = "randconv (random conv features, offline; NOT comparable to published FID)"

    def __init__(self, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        widths = [3, 32, 64, 128, self.num_features]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(cout, cin, 3, 3, generator=generator) / (cin * 9) ** 0.5, requires_grad=False)
            for cin, cout in zip(widths, widths[1:])
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 127.5 - 1
        x = F.interpolate(x, size=(32, 32), mode="area") if x.shape[-1] != 32 else x  # one scale for every set
        for depth, weight in enumerate(self.weights):
            x = F.leaky_relu(F.conv2d(x, weight, padding=1, stride=1 if depth == 0 else 2), 0.2)
        return x.mean(dim=(-2, -1))


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


def feature_extractor(name: str = "auto") -> tuple[nn.Module, str]:
    """(module mapping uint8 (N, 3, H, W) images to (N, F) features, label for every output).

    ``auto`` picks the best one available: inception, then dinov2, then randconv.
    """
    if name == "auto":
        for candidate in ("inception", "dinov2"):
            try:
                return feature_extractor(candidate)
            except MetricError:
                continue
        return feature_extractor("randconv")
    if name == "inception":
        if importlib.util.find_spec("torch_fidelity") is None:
            raise MetricError("the inception extractor needs torch-fidelity: pip install 'wgunet[inception]' "
                              "(or use --features randconv, offline and labelled not comparable)")
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
    if name == "randconv":
        return RandomConvFeatures(), RandomConvFeatures.label
    raise MetricError(f"unknown feature extractor {name!r}; choose auto, {', '.join(EXTRACTORS)}")


class Precomputed(nn.Module):
    """Passes features through, so the extractor runs once per image and FID and KID share its output."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID of two (N, F) feature sets, through torchmetrics."""
    fid = FrechetInceptionDistance(feature=Precomputed(real.shape[-1]), reset_real_features=True)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    return float(fid.compute())


class FidKid:
    """FID with a 95% interval and KID of generated sets against one reference set.

    The extractor is built and the reference's features are computed once, however many sets are scored.
    The interval is the basic bootstrap one, [2 FID - q97.5, 2 FID - q2.5] over resampled images of both
    sets: a resample repeats images, which biases FID upward, and the basic interval reflects that bias
    back instead of sitting above the estimate as the percentile one does. Clipped at 0: for two sets of one
    distribution (FID near 0) it can miss the estimate, as any interval built from a bias estimate can.
    """

    def __init__(self, reference: torch.Tensor, features: str | nn.Module = "auto", batch_size: int = 256,
                 bootstrap: int = 50, seed: int = 0):
        if isinstance(features, nn.Module):
            self.feature, self.label = features, getattr(features, "label", type(features).__name__)
        else:
            self.feature, self.label = feature_extractor(features)
        self.batch_size, self.bootstrap, self.seed = batch_size, bootstrap, seed
        self.real = self._features(reference)

    @torch.no_grad()
    def _features(self, images: torch.Tensor) -> torch.Tensor:
        if len(images) < 2:
            raise MetricError("FID and KID need at least 2 images in each set")
        return torch.cat([self.feature(images[first : first + self.batch_size])
                          for first in range(0, len(images), self.batch_size)])

    def __call__(self, generated: torch.Tensor) -> dict:
        """FID, its interval, KID (mean, std over subsets) of uint8 (N, 3, H, W) images, and the extractor's label."""
        real, fake = self.real, self._features(generated)
        fid = frechet_distance(real, fake)
        generator = torch.Generator().manual_seed(self.seed)
        resampled = torch.tensor([frechet_distance(real[torch.randint(len(real), (len(real),), generator=generator)],
                                                   fake[torch.randint(len(fake), (len(fake),), generator=generator)])
                                  for _ in range(self.bootstrap)])
        q_low, q_high = (resampled.quantile(q).item() for q in (0.025, 0.975)) if self.bootstrap else (fid, fid)
        with warnings.catch_warnings():  # KID keeps every feature in memory; at these set sizes that is intended
            warnings.simplefilter("ignore", UserWarning)
            kid = KernelInceptionDistance(feature=Precomputed(real.shape[-1]),
                                          subset_size=min(1000, len(fake), len(real)), subsets=50)
        kid.update(real, real=True)
        kid.update(fake, real=False)
        kid_mean, kid_std = kid.compute()
        return {"fid": fid, "fid_ci95": [max(0.0, 2 * fid - q_high), max(0.0, 2 * fid - q_low)],
                "kid_mean": float(kid_mean), "kid_std": float(kid_std), "features": self.label}


def fid_kid(generated: torch.Tensor, reference: torch.Tensor, features: str | nn.Module = "auto",
            batch_size: int = 256, bootstrap: int = 50, seed: int = 0) -> dict:
    """FID (with interval) and KID of one generated set; see ``FidKid``."""
    return FidKid(reference, features, batch_size, bootstrap, seed)(generated)
