"""FID and KID through torchmetrics, on the features of any extractor in ``wgunet.evaluation.features`` (or a module).

The scores are Frechet and kernel distances in that extractor's feature space. Only the ``inception`` features
give numbers comparable to published FID; the offline default where its weights are absent, the shipped or
given teacher's own features, ranks sets scored with that same teacher and nothing else (the label says so).
"""

from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance, _compute_fid
from torchmetrics.image.kid import KernelInceptionDistance

from wgunet.common.results import Estimate, Result, bootstrapped
from wgunet.evaluation.features import MetricError, compute_features, label
from wgunet.evaluation.image_sets import ImageSet, ImageSource


class Precomputed(nn.Module):
    """Passes features through, so the extractor runs once per image and FID and KID share its output."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID of two (N, F) feature sets, through torchmetrics."""
    # sync_on_compute off: the features are whole on this process (under several processes torchmetrics would
    # otherwise gather from processes that are not computing this)
    fid = FrechetInceptionDistance(feature=Precomputed(real.shape[-1]), reset_real_features=True, sync_on_compute=False)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    return float(fid.compute())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio of two uint8 image sets, in dB."""
    return float(10 * torch.log10(255**2 / (a.float() - b.float()).pow(2).mean()))


@dataclass(frozen=True)
class ReferenceStatistics:
    """A reference set as FID sees it: the mean and covariance of its features (EDM's and clean-fid's .npz)."""

    mu: torch.Tensor  # (F,) float64
    sigma: torch.Tensor  # (F, F) float64, normalised by n - 1 as torchmetrics does
    features: str | None  # the extractor's label; None for a published file that does not name it
    num: int | None  # images behind the statistics, when known
    path: str | None = None  # the file they were read from

    @staticmethod
    def of(features: torch.Tensor, label: str) -> ReferenceStatistics:
        mu, sigma = moments(features)
        return ReferenceStatistics(mu, sigma, label, len(features))

    def describe(self) -> str:
        count = f", {self.num} images" if self.num else ""
        return f"statistics {self.path}{count}" if self.path else f"statistics{count}"


def moments(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = features.double()
    centred = x - x.mean(0)
    return x.mean(0), centred.T @ centred / (len(x) - 1)


@dataclass(frozen=True)
class FidKidScore(Result):
    fid: Estimate  # with its interval and bootstrap bias (results.bootstrapped)
    kid_mean: float | None  # mean and std over 50 subsets (torchmetrics), drawn from the seed: reproducible;
    kid_std: float | None  # None against reference statistics, which KID cannot use
    features: str  # the extractor's label: which feature space the distances are in
    against: str  # what FID compares with: the reference images, or the statistics file


Images = ImageSet | ImageSource | torch.Tensor  # uint8 (N, 3, H, W), held or read in batches


class FidKid:
    """FID with a 95% interval and KID of generated sets against one reference set.

    The extractor is built and the reference's features are computed once, however many sets are scored.
    With the ``state`` of several processes, ``features`` (and the reference's, here) are split among them
    (wgunet.evaluation.features.compute_features); ``score`` is then work for one process.
    The interval and bias come from resampled images of both sets (``results.bootstrapped``): a resample repeats
    images, which raises FID, and the interval is moved to the estimate; ``bias`` says by how much.
    """

    def __init__(self, reference: Images | ReferenceStatistics, extractor: nn.Module, batch_size: int = 256,
                 bootstrap: int = 50, seed: int = 0, state: PartialState | None = None):
        self.feature, self.label = extractor, label(extractor)
        self.batch_size, self.bootstrap, self.seed, self.state = batch_size, bootstrap, seed, state
        if isinstance(reference, ReferenceStatistics):
            if reference.features is not None and reference.features != self.label:
                raise MetricError(f"the reference statistics were made with {reference.features!r} features and this "
                                  f"run uses {self.label!r}: make them again with `eval.py fid-ref --features ...` "
                                  "or pick the same --features")
            self.real, self.statistics = None, reference
        else:
            self.real, self.statistics = self.features(reference), None

    def features(self, images: Images) -> torch.Tensor:
        """The extractor's (N, F) features of uint8 (N, 3, H, W) images, read batch by batch."""
        if len(images) < 2:
            raise MetricError("FID and KID need at least 2 images in each set")
        return compute_features(images, self.feature, self.batch_size, self.state)

    def __call__(self, generated: Images) -> FidKidScore:
        """FID with its interval and KID of uint8 (N, 3, H, W) images."""
        return self.score(self.features(generated))

    def score(self, fake: torch.Tensor) -> FidKidScore:
        """FID with its interval and KID of a generated set's features (``features``)."""
        real = self.real
        if self.statistics is not None:
            return self._against_statistics(fake)
        fid = frechet_distance(real, fake)
        generator = torch.Generator().manual_seed(self.seed)
        resampled = torch.tensor([frechet_distance(real[torch.randint(len(real), (len(real),), generator=generator)],
                                                   fake[torch.randint(len(fake), (len(fake),), generator=generator)])
                                  for _ in range(self.bootstrap)])
        with warnings.catch_warnings():  # KID keeps every feature in memory; at these set sizes that is intended
            warnings.simplefilter("ignore", UserWarning)
            kid = KernelInceptionDistance(feature=Precomputed(real.shape[-1]),
                                          subset_size=min(1000, len(fake), len(real)), subsets=50,
                                          sync_on_compute=False)
        kid.update(real, real=True)
        kid.update(fake, real=False)
        with torch.random.fork_rng(devices=[]):  # torchmetrics draws KID's subsets from the global generator
            torch.manual_seed(self.seed)
            kid_mean, kid_std = kid.compute()
        return FidKidScore(bootstrapped(fid, resampled, floor=0.0), float(kid_mean), float(kid_std), self.label,
                           f"the reference images ({len(real)})")

    def _against_statistics(self, fake: torch.Tensor) -> FidKidScore:
        """FID against fixed statistics; its interval resamples the generated set only (the reference is fixed)."""
        mu, sigma = self.statistics.mu, self.statistics.sigma
        if fake.shape[1] != len(mu):
            raise MetricError(f"the reference statistics have {len(mu)} features and {self.label!r} gives "
                              f"{fake.shape[1]}: they were made with another extractor")

        def distance(features: torch.Tensor) -> float:
            return float(_compute_fid(mu, sigma, *moments(features)))

        fid = distance(fake)
        generator = torch.Generator().manual_seed(self.seed)
        resampled = torch.tensor([distance(fake[torch.randint(len(fake), (len(fake),), generator=generator)])
                                  for _ in range(self.bootstrap)])
        return FidKidScore(bootstrapped(fid, resampled, floor=0.0), None, None, self.label,
                           self.statistics.describe())


def covariance_problem(mu: torch.Tensor, sigma: torch.Tensor) -> str | None:
    """What makes (mu, sigma) no mean and covariance: non-finite values, asymmetry, a negative eigenvalue beyond
    rounding (FID's matrix square root then has no meaning); None when they are sound."""
    if not (torch.isfinite(mu).all() and torch.isfinite(sigma).all()):
        return "NaN or Inf values"
    scale = sigma.abs().max().clamp_min(1e-30)
    if (sigma - sigma.T).abs().max() > 1e-6 * scale:
        return "sigma is not symmetric"
    smallest = torch.linalg.eigvalsh(sigma).min()
    if smallest < -1e-6 * scale:
        return f"sigma has a negative eigenvalue ({float(smallest):.3g}): not a covariance"
    return None


def read_fid_reference(path: str | Path) -> ReferenceStatistics:
    """FID reference statistics from an .npz with ``mu`` and ``sigma`` (this project's, EDM's or clean-fid's); the
    extractor's name and the image count are read when the file has them. Nothing in it is unpickled."""
    if not Path(path).is_file():
        raise MetricError(f"FID reference statistics {str(path)!r} do not exist: make them with "
                          "`eval.py fid-ref SET --out stats.npz`")
    try:
        with np.load(path, allow_pickle=False) as archive:
            mu, sigma = torch.from_numpy(archive["mu"]).double(), torch.from_numpy(archive["sigma"]).double()
            label = str(archive["features"]) if "features" in archive else None
            num = int(archive["num"]) if "num" in archive else None
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise MetricError(f"{str(path)!r} is not FID reference statistics (an .npz with 'mu' and 'sigma'): {error}; "
                          "make them with `eval.py fid-ref SET --out stats.npz`") from None
    if mu.dim() != 1 or sigma.shape != (len(mu), len(mu)):
        raise MetricError(f"{str(path)!r}: 'mu' must be (F,) and 'sigma' (F, F), got {tuple(mu.shape)} and "
                          f"{tuple(sigma.shape)}")
    problem = covariance_problem(mu, sigma)
    if problem:
        raise MetricError(f"{str(path)!r} holds no valid FID statistics ({problem}): make them again with "
                          "`eval.py fid-ref SET --out stats.npz`")
    return ReferenceStatistics(mu, sigma, label, num, str(path))
