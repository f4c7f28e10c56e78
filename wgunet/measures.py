"""The measures over named image sets, as the commands and the report use them; tensors in, dataclasses out.

Nothing here reads or writes a file: the sets, models and extractors come loaded, and ``wgunet.outputs`` writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from .finc import FincResult, finc
from .images import ImageSet, same_size
from .metrics import FidKidScore
from .results import Result
from .spectral import SpectralScores, image_statistics, spectral_scores


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


def score_sets(sets: dict[str, ImageSet], reference: ImageSet, fid_kid: dict[str, FidKidScore] | None,
               bootstrap: int = 200, convention: str = "seed") -> SpectrumResult:
    """Reduced spectra and spectral scores with 95% intervals of each set vs the reference, with each set's FID/KID
    (scored by the caller: wgunet.metrics.FidKid) when given."""
    same_size(sets, reference)
    real = image_statistics(reference.images, convention=convention)
    result = SpectrumResult(convention, reference.source, len(reference), real["radius"].tolist(),
                            real["spectra"].mean(0).tolist(), {})
    for name, image_set in sets.items():
        stats = image_statistics(image_set.images, convention=convention)
        result.sets[name] = SetScores(image_set.source, len(image_set), stats["spectra"].mean(0).tolist(),
                                      spectral_scores(stats, real, bootstrap),
                                      fid_kid[name] if fid_kid else None)
    return result


@dataclass
class ModeComparison:
    """FINC between two named sets: what ``test`` has more of than ``reference``, and what it misses."""

    test: ImageSet
    reference: ImageSet
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
                picked = image_set.images[modes.top[j][:images_per_row]].permute(0, 2, 3, 1).numpy()
                rows.append((f"{owner} mode {j + 1}\n{direction}\nλ = {float(modes.eigenvalues[j]):.4f}", picked))
        return rows


def compare_modes(test: ImageSet, reference: ImageSet, test_features, reference_features, features: str,
                  names: tuple[str, str] = ("test", "reference"), **options) -> ModeComparison:
    """FINC on features already computed for both sets (``options``: sigma, rho, r, num_modes, top_k, seed)."""
    return ModeComparison(test, reference, names, features, finc(test_features, reference_features, **options))
