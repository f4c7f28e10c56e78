import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from shapes import make_shapes, uniform_mix

from wgunet.evaluation.features import PixelFeatures
from wgunet.evaluation.finc import FincError, FourierFeatures, RowSpace, covariance, finc

PLANTED = ("triangle", "red")


def shapes(n, mix, seed):
    images, labels = make_shapes(n, mix, seed=seed)
    return PixelFeatures()(torch.from_numpy(images)), labels


@pytest.fixture(scope="module")
def planted():
    reference_mix = uniform_mix()
    reference_mix.pop(PLANTED)
    test_mix = {**uniform_mix(), PLANTED: 2.0}
    test, labels = shapes(800, test_mix, 1)
    reference, _ = shapes(800, reference_mix, 2)
    return test, labels, reference


def test_the_planted_mode_is_the_top_test_mode(planted):
    test, labels, reference = planted
    result = finc(test, reference, r=1000)
    modes = result.test_modes
    assert len(modes.eigenvalues) >= 1 and torch.all(modes.eigenvalues[:-1] >= modes.eigenvalues[1:])
    top = [labels[i] for i in modes.top[0].tolist()]
    assert len(top) == 25 and sum(label == PLANTED for label in top) / 25 >= 0.9
    assert modes.scores.shape == (800, len(modes.eigenvalues))
    # deterministic for a seed
    again = finc(test, reference, r=1000)
    assert torch.equal(again.test_modes.top, modes.top) and torch.equal(again.test_modes.eigenvalues, modes.eigenvalues)


def clusters(counts, seed, dim=8):
    """Gaussian clusters (std 0.5) around centres 10 apart, ``counts[j]`` points around centre j."""
    generator = torch.Generator().manual_seed(seed)
    centres = 10 * torch.eye(dim)
    return torch.cat([centres[j] + 0.5 * torch.randn(n, dim, generator=generator) for j, n in enumerate(counts)])


def test_a_mode_size_counts_the_samples_in_excess():
    """A novel cluster of 333 (absent from the reference) and an over-represented one (400 in the test set vs
    250 expected from the reference's share): their sizes are those counts within 10%."""
    novel = finc(clusters([200, 200, 200, 200, 333], 0), clusters([200, 200, 200, 200, 0], 1), sigma=2.0, r=1000)
    assert abs(int(novel.test_modes.sizes[0]) - 333) <= 33, novel.test_modes.sizes
    assert float(novel.test_modes.eigenvalues[0]) * 1133 < 300  # eigenvalue x n, the old size, undercounts
    over = finc(clusters([400, 200, 200, 200], 2), clusters([200, 200, 200, 200], 3), sigma=2.0, r=1000)
    excess = 400 - 1000 * 200 / 800  # n_test (p_test - p_reference) = 400 - 250
    assert abs(int(over.test_modes.sizes[0]) - excess) <= 0.1 * excess, over.test_modes.sizes


@pytest.mark.parametrize("r", [500, 800])  # 256 + 800 samples: the 2r x 2r path (r 500) and the row-space one
def test_each_direction_has_the_noise_floor_and_the_modes_of_its_own_matrix(planted, r):
    test, _, reference = planted
    small, rho = test[:256], 0.5
    result = finc(small, reference, rho=rho, r=r)
    phi = FourierFeatures(small.shape[1], r, result.sigma, seed=0)
    (c_test, noise_test), (c_reference, noise_reference) = covariance(small, phi, seed=0), covariance(reference, phi,
                                                                                                      seed=1)

    def floor(noise):
        return 1.5 * float(torch.linalg.eigvalsh(noise).abs().max())

    assert result.test_modes.noise_floor == pytest.approx(floor(noise_test + rho * noise_reference), rel=1e-5)
    assert result.reference_modes.noise_floor == pytest.approx(floor(noise_reference + rho * noise_test), rel=1e-5)
    assert result.reference_modes.noise_floor != pytest.approx(result.test_modes.noise_floor, rel=0.05)
    for modes, matrix in ((result.test_modes, c_test - rho * c_reference),
                          (result.reference_modes, c_reference - rho * c_test)):
        values, vectors = torch.linalg.eigh(matrix)
        expected = values.flip(0)[: len(modes.eigenvalues)]
        assert len(modes.eigenvalues) >= 1 and modes.eigenvalues.double() == pytest.approx(expected, rel=1e-4)
        assert len(values[values > modes.noise_floor]) == len(modes.eigenvalues)
        # the same directions, up to sign
        overlap = (vectors.flip(1)[:, : len(modes.eigenvalues)].float() * modes.vectors).sum(0).abs()
        assert overlap == pytest.approx(torch.ones_like(overlap), abs=1e-3)


def test_no_mode_between_sets_of_the_same_mix():
    a, _ = shapes(800, uniform_mix(), 3)
    b, _ = shapes(800, uniform_mix(), 4)
    result = finc(a, b, r=1000)
    assert len(result.test_modes) == 0 and len(result.reference_modes) == 0
    assert result.test_modes.noise_floor > 0


def exact_eigenvalues(x, y, sigma, rho):
    """The kernel-matrix form: eigenvalues of K^1/2 diag(w) K^1/2, w = +1/n_x on X and -rho/n_y on Y."""
    pooled = torch.cat([x, y]).double()
    kernel = torch.exp(-torch.cdist(pooled, pooled).pow(2) / (2 * sigma**2))
    values, vectors = torch.linalg.eigh(kernel)
    root = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    weights = torch.cat([torch.full((len(x),), 1 / len(x)), torch.full((len(y),), -rho / len(y))]).double()
    return torch.linalg.eigvalsh(root @ torch.diag(weights) @ root).flip(0)


def test_random_fourier_features_match_the_exact_kernel_method(planted):
    test, _, reference = planted
    x, y, rho, r = test[:500], reference[:500], 1.0, 4000
    sigma = 4.0
    phi = FourierFeatures(x.shape[1], r, sigma, seed=0)
    # C_X - rho C_Y as finc solves it with well fewer samples than features (500 + 500 against 2r = 8,000)
    weights = torch.cat([torch.full((len(x),), 1 / len(x)), torch.full((len(y),), -rho / len(y))]).double()
    approximate = RowSpace(torch.cat([phi(x), phi(y)])).eigvalsh(weights).flip(0)
    exact = exact_eigenvalues(x, y, sigma, rho)
    # Theorem (Hoeffding over the r frequency pairs, union over the m^2 kernel entries, delta = 0.01): every
    # kernel entry is within eps, so each eigenvalue of the weighted form is within (1 + rho) * eps.
    m, delta = len(x) + len(y), 0.01
    bound = (1 + rho) * math.sqrt(2 * math.log(2 * m**2 / delta) / r)
    assert torch.all((approximate[:5] - exact[:5]).abs() <= bound)
    assert torch.all((approximate[-5:] - exact[-5:]).abs() <= bound)
    assert torch.allclose(approximate[:3], exact[:3], rtol=0.1)  # in practice far inside the bound


def test_bad_features_get_clear_errors():
    good = torch.rand(10, 4)
    with pytest.raises(FincError, match="test set is empty"):
        finc(torch.zeros(0, 4), good)
    with pytest.raises(FincError, match="feature dimensions differ: test 4, reference 5"):
        finc(good, torch.rand(10, 5))
    bad = good.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(FincError, match="reference features hold NaN or Inf in 1 rows"):
        finc(good, bad)


@pytest.mark.slow
def test_eval_finc_end_to_end_with_the_feature_cache(tmp_path):
    reference_mix = uniform_mix()
    reference_mix.pop(PLANTED)
    for name, mix, seed in (("test", {**uniform_mix(), PLANTED: 2.0}, 1), ("reference", reference_mix, 2)):
        images, _ = make_shapes(300, mix, seed=seed)
        np.savez(tmp_path / f"{name}.npz", images=images.transpose(0, 2, 3, 1))
    command = [sys.executable, "eval.py", "finc", "--test", str(tmp_path / "test.npz"), "--reference",
               str(tmp_path / "reference.npz"), "--features", "pixels", "--r", "500", "--out", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "finc.json").read_text())
    assert report["test_modes"] and isinstance(report["test_modes"][0]["eigenvalue"], float)
    assert [m["eigenvalue"] for m in report["test_modes"]] == sorted([m["eigenvalue"] for m in report["test_modes"]],
                                                                     reverse=True)
    assert "reference_modes" in report and len(report["test_modes"][0]["top"]) == 25
    assert (tmp_path / "out" / "finc_modes.png").stat().st_size > 5_000
    cached = sorted((tmp_path / "out" / "feature_cache").glob("*.npy"))
    assert len(cached) == 2
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert subprocess.run(command, capture_output=True).returncode == 0
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "out" / "feature_cache").glob("*.npy"))] == stamps
