"""The measures over named image sets, as the commands and the report use them; tensors in, dataclasses out.

Nothing here reads or writes a file: the sets, models and extractors come loaded, and ``wgunet.evaluation.outputs`` writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wgunet.common.results import Result
from wgunet.evaluation.fid import FidKidScore
from wgunet.evaluation.finc import FincResult, finc
from wgunet.evaluation.image_sets import ImageSet, ImageSource, as_source, same_size
from wgunet.evaluation.spectral import (
    SetStatistics,
    SpectralScores,
    accumulate,
    resample_weights,
    scores_of,
    streaming_batch,
)


@dataclass
class SetScores(Result):
    source: str
    num: int
    spectrum: list[float]  # mean reduced spectrum (see spectral.reduced_spectrum)
    scores: SpectralScores  # against the reference set
    fid_kid: FidKidScore | None  # None when FID/KID were not asked for


@dataclass
class SpectrumResult(Result):
    convention: str  # of the reduced spectra (spectral.CONVENTIONS)
    reference: str
    num_reference: int
    radius: list[float]
    real_spectrum: list[float]
    sets: dict[str, SetScores]

    @property
    def features(self) -> str | None:
        """The FID/KID extractor's label (one scorer serves every set)."""
        return next((s.fid_kid.features for s in self.sets.values() if s.fid_kid), None)


def score_sets(sets: dict[str, ImageSet | ImageSource], reference: ImageSet | ImageSource,
               fid_kid: dict[str, FidKidScore] | None, bootstrap: int = 200, convention: str = "seed") -> SpectrumResult:
    """Reduced spectra and spectral scores with 95% intervals of each set vs the reference, with each set's FID/KID
    (scored by the caller: wgunet.evaluation.fid.FidKid) when given.

    Every set is read in batches (``ImageSource``) and reduced to what the scores need (``spectral.accumulate``):
    memory does not grow with the number of images. Each set's resamples come from seed 0, its own drawn first,
    then the reference's; the reference is accumulated once per distinct set size, under those weights."""
    sources = {name: as_source(s) for name, s in sets.items()}
    real_source = as_source(reference)
    same_size(sources, real_source)
    batch = streaming_batch(real_source.size)
    references: dict[int, SetStatistics] = {}
    result = None
    for name, source in sources.items():
        generator = torch.Generator().manual_seed(0)
        weights = [resample_weights(n, bootstrap, generator) if bootstrap else None for n in (len(source), len(real_source))]
        if len(source) not in references:
            references[len(source)] = accumulate(real_source.batches(batch), len(real_source), weights[1], convention)
        real = references[len(source)]
        if result is None:
            result = SpectrumResult(convention, real_source.source, len(real_source), real.radius.tolist(),
                                    real.spectra.mean(0).tolist(), {})
        stats = accumulate(source.batches(batch), len(source), weights[0], convention)
        result.sets[name] = SetScores(source.source, len(source), stats.spectra.mean(0).tolist(), scores_of(stats, real),
                                      fid_kid[name] if fid_kid else None)
    return result


@dataclass
class ModeComparison:
    """FINC between two named sets: what ``test`` has more of than ``reference``, and what it misses."""

    test: ImageSource
    reference: ImageSource
    names: tuple[str, str]  # what to call the two sets in captions ("student", "teacher")
    features: str  # the embedding's label
    result: FincResult

    def to_dict(self) -> dict:
        return {"test": self.test.source, "reference": self.reference.source, "features": self.features,
                "num_test": len(self.test), "num_reference": len(self.reference),
                **self.result.to_dict(self.test.names, self.reference.names)}

    def mode_rows(self, images_per_row: int = 10) -> list[tuple[str, object]]:
        """(caption, top images (k, H, W, C)) per mode, both directions, for plots.plot_modes."""
        rows = []
        test_name, reference_name = self.names
        for modes, image_set, owner, direction in (
                (self.result.test_modes, self.test, test_name, f"{test_name} has more"),
                (self.result.reference_modes, self.reference, reference_name, f"{test_name} misses")):
            for j in range(len(modes)):
                picked = image_set.take(modes.top[j][:images_per_row]).permute(0, 2, 3, 1).numpy()
                rows.append((f"{owner} mode {j + 1}\n{direction}\nλ = {float(modes.eigenvalues[j]):.4f}", picked))
        return rows


def compare_modes(test: ImageSet | ImageSource, reference: ImageSet | ImageSource, test_features, reference_features,
                  features: str, names: tuple[str, str] = ("test", "reference"), **options) -> ModeComparison:
    """FINC on features already computed for both sets (``options``: sigma, rho, r, num_modes, top_k, seed); the
    sets are kept as sources, from which a plot reads its top images."""
    return ModeComparison(as_source(test), as_source(reference), names, features,
                          finc(test_features, reference_features, **options))
