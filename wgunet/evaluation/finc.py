"""FINC: Fourier-based identification of novel clusters (Zhang, Jalali, Li, Farnia, CVPR 2025).

Gaussian kernel k(x, y) = exp(-||x - y||^2 / (2 sigma^2)), approximated by random Fourier features
phi(x) = r^-1/2 [cos(w_j . x), sin(w_j . x)]_{j=1..r}, w_j ~ N(0, sigma^-2 I), so phi(x) . phi(y) ~ k(x, y).
C_X = mean phi(x) phi(x)^T over the test set, C_Y over the reference set: 2r x 2r whatever n is.
Eigenvectors of C_X - rho C_Y with positive eigenvalues are the modes the test set has more of than rho
times the reference; a sample's score for mode v is (v . phi(x))^2.

Everything streams over chunks of rows in float32 BLAS, so memory is O(r^2 + chunk * (d + r)), not O(n).
Every matrix here is Phi^T diag(w) Phi, of rank at most n_X + n_Y: with well fewer samples than features
(n_X + n_Y < 3/4 of 2r, where it is faster) its nonzero eigenpairs come, exactly, from an (n_X + n_Y)-sized problem.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from wgunet.common.errors import UserError


class FincError(UserError):
    """Features that FINC cannot use; the message names the problem."""


@dataclass
class Modes:
    eigenvalues: torch.Tensor  # (k,), positive, largest first: each mode's excess mass
    vectors: torch.Tensor  # (2r, k)
    scores: torch.Tensor  # (n, k): (v . phi(x))^2 of the samples of the set that has the mode
    top: torch.Tensor  # (k, top_k): sample indices, best first
    sizes: torch.Tensor  # (k,): samples this set has in excess on the mode (see mode_sizes)
    noise_floor: float  # eigenvalues below it are sampling noise (see finc)

    def __len__(self) -> int:
        return len(self.eigenvalues)

    def to_dict(self, names: list[str]) -> list[dict]:
        """Per mode: eigenvalue, size, and the names and scores of its top samples (``names`` of that set)."""
        return [{"eigenvalue": float(self.eigenvalues[j]), "size": int(self.sizes[j]),
                 "top": [names[i] for i in self.top[j].tolist()],
                 "top_scores": [float(self.scores[i, j]) for i in self.top[j].tolist()]} for j in range(len(self))]


@dataclass
class FincResult:
    sigma: float
    rho: float
    r: int
    test_modes: Modes  # more in the test set than rho x the reference
    reference_modes: Modes  # more in the reference than rho x the test set: what the test set misses

    def to_dict(self, test_names: list[str], reference_names: list[str]) -> dict:
        return {"sigma": self.sigma, "rho": self.rho, "r": self.r,
                "noise_floor": {"test": self.test_modes.noise_floor, "reference": self.reference_modes.noise_floor},
                "test_modes": self.test_modes.to_dict(test_names),
                "reference_modes": self.reference_modes.to_dict(reference_names)}


class FourierFeatures:
    """phi(x) = r^-1/2 [cos(x W), sin(x W)], W (d, r) ~ N(0, sigma^-2), seeded."""

    def __init__(self, dim: int, r: int, sigma: float, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.weights = torch.randn(dim, r, generator=generator) / sigma
        self.r = r

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        projection = x @ self.weights
        return torch.cat([projection.cos(), projection.sin()], dim=1) / self.r**0.5


def check_features(features: torch.Tensor, name: str) -> torch.Tensor:
    if features.dim() != 2 or len(features) == 0:
        raise FincError(f"the {name} set is empty or not (n, d) features (shape {tuple(features.shape)})")
    if not torch.isfinite(features).all():
        bad = int((~torch.isfinite(features)).any(dim=1).sum())
        raise FincError(f"the {name} features hold NaN or Inf in {bad} rows: fix the extractor or drop those images")
    return features.float()


def median_distance(test: torch.Tensor, reference: torch.Tensor, sample: int = 2000, seed: int = 0) -> float:
    """sigma rule: the median pairwise Euclidean distance in a seeded subsample of both sets."""
    generator = torch.Generator().manual_seed(seed)
    pooled = torch.cat([test[torch.randperm(len(test), generator=generator)[:sample // 2]],
                        reference[torch.randperm(len(reference), generator=generator)[:sample // 2]]])
    distances = torch.cdist(pooled, pooled)
    return float(distances[torch.triu_indices(len(pooled), len(pooled), 1).unbind()].median())


def half_split(n: int, seed: int) -> torch.Tensor:
    """A seeded random half of n rows (True: the first half), for the split-half noise matrices."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)) < n // 2


def covariance(features: torch.Tensor, phi: FourierFeatures, chunk: int = 8192,
               seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, H): C = mean phi(x) phi(x)^T, and H = (C_half1 - C_half2) / 2 over a seeded random half split.

    H has the sampling noise of C with the signal removed; it sets the noise floor. Both are accumulated
    chunk by chunk in the same pass (float32 products, float64 sums).
    """
    half = half_split(len(features), seed)
    sums = [torch.zeros(2 * phi.r, 2 * phi.r, dtype=torch.float64) for _ in range(2)]
    for start in range(0, len(features), chunk):
        block = phi(features[start : start + chunk])
        first = half[start : start + chunk]
        sums[0] += block[first].T @ block[first]
        sums[1] += block[~first].T @ block[~first]
    first_count, second_count = int(half.sum()), len(features) - int(half.sum())
    noise = (sums[0] / max(first_count, 1) - sums[1] / max(second_count, 1)) / 2
    return (sums[0] + sums[1]) / len(features), noise


def half_weights(n: int, seed: int) -> torch.Tensor:
    """Per-row weights w with Phi^T diag(w) Phi = H of ``covariance``: +1/(2 n_1) on one half, -1/(2 n_2) on the
    other."""
    half = half_split(n, seed)
    first_count, second_count = int(half.sum()), n - int(half.sum())
    return torch.where(half, 0.5 / max(first_count, 1), -0.5 / max(second_count, 1)).double()


class RowSpace:
    """Eigenproblems of M = Phi^T diag(w) Phi for rows Phi (m, 2r), m < 2r, solved in the m-dimensional row space.

    Phi^T = Q R (thin QR), so M = Q (R diag(w) R^T) Q^T: the eigenvalues of the m x m matrix R diag(w) R^T are
    M's nonzero ones and Q U its eigenvectors. The other 2r - m eigenvalues are 0 and never clear a floor.
    """

    def __init__(self, rows: torch.Tensor):
        self.q, self.r = torch.linalg.qr(rows.double().T)

    def eigvalsh(self, weights: torch.Tensor) -> torch.Tensor:
        return torch.linalg.eigvalsh((self.r * weights) @ self.r.T)

    def eigh(self, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, vectors = torch.linalg.eigh((self.r * weights) @ self.r.T)
        return values, self.q @ vectors


class CovarianceSpectra:
    """C and H of both sets (``covariance``) as 2r x 2r matrices, and the eigenproblems of their weighted sums."""

    def __init__(self, test: torch.Tensor, reference: torch.Tensor, phi: FourierFeatures, seed: int, chunk: int):
        (self.c_test, self.h_test), (self.c_reference, self.h_reference) = (
            covariance(test, phi, chunk, seed), covariance(reference, phi, chunk, seed + 1))

    def noise_eigenvalues(self, on_test: float, on_reference: float) -> torch.Tensor:
        """Of on_test H_test + on_reference H_reference, ascending."""
        return torch.linalg.eigvalsh(on_test * self.h_test + on_reference * self.h_reference)

    def difference_eigenpairs(self, on_test: float, on_reference: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Of on_test C_test + on_reference C_reference, ascending."""
        return torch.linalg.eigh(on_test * self.c_test + on_reference * self.c_reference)


class RowSpaceSpectra:
    """The same eigenproblems, each matrix being Phi^T diag(w) Phi over both sets' rows, solved in their row space
    (``RowSpace``): exact, and faster when the sets hold well fewer samples than 2r (``chunk`` is unused: the rows
    are held whole)."""

    def __init__(self, test: torch.Tensor, reference: torch.Tensor, phi: FourierFeatures, seed: int, chunk: int):
        self.rows = RowSpace(torch.cat([phi(test), phi(reference)]))
        self.sizes = len(test), len(reference)
        self.halves = half_weights(len(test), seed), half_weights(len(reference), seed + 1)

    def noise_eigenvalues(self, on_test: float, on_reference: float) -> torch.Tensor:
        return self.rows.eigvalsh(torch.cat([on_test * self.halves[0], on_reference * self.halves[1]]))

    def difference_eigenpairs(self, on_test: float, on_reference: float) -> tuple[torch.Tensor, torch.Tensor]:
        # C = Phi^T diag(1/n) Phi over a set's own rows
        return self.rows.eigh(torch.cat([torch.full((n,), weight / n, dtype=torch.float64)
                                         for n, weight in zip(self.sizes, (on_test, on_reference))]))


def mode_scores(features: torch.Tensor, phi: FourierFeatures, vectors: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    return torch.cat([(phi(features[s : s + chunk]) @ vectors).pow(2) for s in range(0, len(features), chunk)])


def mode_sizes(scores: torch.Tensor, other_scores: torch.Tensor, rho: float) -> torch.Tensor:
    """(k,) samples a set has in excess on each mode: n_X (p_X - rho p_Y), p the share of a set on the mode.

    ``scores`` (n_X, k) are the set's own, ``other_scores`` (n_Y, k) the other set's on the same modes. A sample
    inside a cluster that mode v captures scores about kappa = <phi(x), mu_c>^2 / |mu_c|^2 (the cluster's mean
    kernel value), one outside it near 0; kappa is estimated from the set as the score-weighted mean score,
    sum s^2 / sum s, and a sample is on the mode when its score is at least kappa / 2. The eigenvalue is the
    same excess in kernel mass; times n it undercounts by the factor kappa < 1 (FINC's article reports
    eigenvalues; the count rule is this project's).
    """
    kappa = scores.pow(2).sum(0) / scores.sum(0).clamp_min(1e-30)
    on_mode = (scores >= kappa / 2).float().mean(0)
    other_on_mode = (other_scores >= kappa / 2).float().mean(0)
    return (len(scores) * (on_mode - rho * other_on_mode)).clamp_min(0).round().long()


def top_modes(eigenvalues: torch.Tensor, vectors: torch.Tensor, floor: float, features: torch.Tensor,
              other: torch.Tensor, rho: float, phi: FourierFeatures, num_modes: int, top_k: int, chunk: int) -> Modes:
    """The eigenpairs whose eigenvalue clears ``floor`` (largest first), scored on ``features`` (the set that has
    more of them) and sized against ``other``."""
    order = torch.argsort(eigenvalues, descending=True, stable=True)[:num_modes]
    order = order[eigenvalues[order] > floor]
    eigenvalues, vectors = eigenvalues[order], vectors[:, order].float()
    scores = mode_scores(features, phi, vectors, chunk)
    # a stable sort on (-score, index) makes the top lists deterministic even with tied scores
    top = torch.argsort(-scores.T, dim=1, stable=True)[:, :top_k]
    sizes = mode_sizes(scores, mode_scores(other, phi, vectors, chunk), rho)
    return Modes(eigenvalues.float(), vectors, scores, top, sizes, floor)


def finc(test: torch.Tensor, reference: torch.Tensor, *, sigma: float | None = None, rho: float = 1.0, r: int = 2000,
         num_modes: int = 10, top_k: int = 25, seed: int = 0, chunk: int = 8192, floor_factor: float = 1.5,
         timings: dict[str, float] | None = None) -> FincResult:
    """Both directions: ``test_modes`` (more in test than rho x reference) and ``reference_modes`` (missed).

    ``timings``, when given, receives the seconds of each phase (for bench/finc.py).
    """
    clock = _Clock(timings)
    test, reference = check_features(test, "test"), check_features(reference, "reference")
    if test.shape[1] != reference.shape[1]:
        raise FincError(f"feature dimensions differ: test {test.shape[1]}, reference {reference.shape[1]}; "
                        "compute both with the same extractor")
    # OPEN (bandwidth): sigma defaults to half the median pairwise distance of the pooled sets; the plain
    # median blurs neighbouring modes together (e.g. red triangles with red squares in the planted test).
    sigma = sigma or 0.5 * median_distance(test, reference, seed=seed)
    phi = FourierFeatures(test.shape[1], r, sigma, seed)
    clock("bandwidth and frequencies")
    # OPEN (which positive eigenvalues count): finite samples alone make C_X - rho C_Y have positive
    # eigenvalues. A mode is reported only above floor_factor x the largest |eigenvalue| of a split-half noise
    # matrix with the same sampling noise as the difference and no signal. H_X (half-split difference / 2) has
    # the sampling noise of C_X, so C_X - rho C_Y has that of H_X + rho H_Y (independent and symmetric, so the
    # sign does not matter), and the reverse direction C_Y - rho C_X that of H_Y + rho H_X: each direction
    # gets its own floor (equal at rho = 1).
    def floor_of(eigenvalues: torch.Tensor) -> float:
        return floor_factor * float(max(eigenvalues[-1], -eigenvalues[0]))

    # the row space is 10-50x faster at 300-1,300 samples (measured), slower near 2r
    solver = RowSpaceSpectra if len(test) + len(reference) < 1.5 * r else CovarianceSpectra
    spectra = solver(test, reference, phi, seed, chunk)
    test_floor = floor_of(spectra.noise_eigenvalues(1, rho))
    reference_floor = test_floor if rho == 1 else floor_of(spectra.noise_eigenvalues(rho, 1))
    clock("covariances (linear in n)")
    test_eigenpairs = spectra.difference_eigenpairs(1, -rho)
    # with rho = 1 the other direction is the same matrix negated: one eigendecomposition serves both
    reference_eigenpairs = ((-test_eigenpairs[0], test_eigenpairs[1]) if rho == 1
                            else spectra.difference_eigenpairs(-rho, 1))
    clock("eigendecompositions (independent of n)")
    result = FincResult(sigma, rho, r,
                        top_modes(*test_eigenpairs, test_floor, test, reference, rho, phi, num_modes, top_k, chunk),
                        top_modes(*reference_eigenpairs, reference_floor, reference, test, rho, phi, num_modes, top_k,
                                  chunk))
    clock("scoring passes (linear in n)")
    return result


class _Clock:
    """Records the seconds since the previous call under each name, into ``timings`` (no-op without one)."""

    def __init__(self, timings: dict[str, float] | None):
        self.timings, self.last = timings, time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[name] = now - self.last
        self.last = now
