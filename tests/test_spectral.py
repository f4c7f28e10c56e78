import math

import numpy as np
import pytest
import torch

from wgunet.spectral import image_statistics, reduced_spectrum, spectral_scores


def power_law_field(n: int, height: int, width: int, a: float) -> torch.Tensor:
    """Gaussian random fields with power spectrum 1/f^a."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.fftfreq(width)[None, :]
    f = torch.sqrt(fy**2 + fx**2)
    amplitude = torch.where(f > 0, f.clamp_min(1e-9) ** (-a / 2), torch.zeros(()))
    noise = torch.fft.fft2(torch.randn(n, height, width, dtype=torch.float64))
    return torch.fft.ifft2(noise * amplitude).real.float()


def test_white_noise_has_a_flat_spectrum():
    radius, spectrum = reduced_spectrum(torch.randn(256, 3, 32, 32))
    mean = spectrum.mean(0)
    assert radius.min() > 0 and radius.max() < 1
    away_from_dc = mean[radius > 0.15]
    assert away_from_dc.max() / away_from_dc.min() < 1.25


@pytest.mark.parametrize("a", [1.0, 2.0, 3.0])
def test_power_law_fields_give_their_slope(a):
    radius, spectrum = reduced_spectrum(power_law_field(64, 64, 64, a))
    band = (radius > 0.08) & (radius < 0.7)  # inside the inscribed circle, clear of the DC ring
    slope = np.polyfit(np.log(radius[band].numpy()), np.log(spectrum.mean(0)[band].numpy()), 1)[0]
    assert abs(slope + a) < 0.15, slope


def test_a_sinusoid_peaks_at_its_radius_and_sizes_can_differ():
    height, width, cycles = 32, 48, 9
    x = torch.arange(width)
    image = torch.cos(2 * math.pi * cycles * x / width).expand(height, width)[None]
    radius, spectrum = reduced_spectrum(image)
    expected = cycles / (width / 2) / math.sqrt(2)  # each axis normalised by its half-size, then by sqrt(2)
    assert abs(radius[spectrum[0].argmax()] - expected) <= 1 / len(radius) + 1e-6
    _, normalized = reduced_spectrum(image, normalize=True, log=True)
    assert normalized.max() == pytest.approx(0.0, abs=1e-6)


def test_the_corner_is_radius_one_and_inputs_may_be_gray():
    radius, spectrum = reduced_spectrum(torch.rand(2, 1, 16, 16))
    assert len(radius) == math.ceil(16 / math.sqrt(2)) and radius[-1] == pytest.approx(1 - 0.5 / len(radius))
    _, gray = reduced_spectrum(torch.rand(2, 16, 16))
    assert gray.shape == spectrum.shape
    with pytest.raises(ValueError, match="expected"):
        reduced_spectrum(torch.rand(2, 2, 16, 16))


def test_spectral_scores_see_missing_high_frequencies_with_intervals():
    reference = (power_law_field(200, 32, 32, 2.0)[:, None].expand(-1, 3, -1, -1) * 0.1 + 0.5).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(reference, 3, stride=1, padding=1, count_include_pad=False)
    same = image_statistics(reference[:100])
    scores_same = spectral_scores(same, image_statistics(reference[100:]), bootstrap=50)
    scores_blur = spectral_scores(image_statistics(blurred[:100]), image_statistics(reference[100:]), bootstrap=50)
    assert 0.8 < scores_same.high_frequency_ratio.value < 1.25
    assert scores_blur.high_frequency_ratio.value < 0.3
    low, high = scores_blur.high_frequency_ratio.ci95
    assert low <= scores_blur.high_frequency_ratio.value <= high and high - low > 0
    for name in ("log_spectral_distance_db", "lfd", "band_error_high"):
        assert getattr(scores_blur, name).value > getattr(scores_same, name).value
    assert scores_blur.band_error_high.value > scores_blur.band_error_low.value
