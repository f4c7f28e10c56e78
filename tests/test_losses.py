import pytest
import torch

from wgunet.training.losses import frequency_loss, frequency_weight, spatial_loss


def one_over_f_images(n: int, size: int) -> torch.Tensor:
    """Images whose amplitude spectrum falls as 1/f (power 1/f^2), like natural photographs."""
    fy, fx = torch.meshgrid(torch.fft.fftfreq(size), torch.fft.fftfreq(size), indexing="ij")
    amplitude = 1 / torch.clamp((fx**2 + fy**2).sqrt(), min=1 / size)
    spectrum = amplitude * torch.exp(2j * torch.pi * torch.rand(n, 3, size, size))
    images = torch.fft.ifft2(spectrum).real
    return images / images.abs().amax(dim=(-3, -2, -1), keepdim=True)


def cosine(size: int, cycles: int) -> torch.Tensor:
    x = torch.arange(size)
    return torch.cos(2 * torch.pi * cycles * x / size)[None, :].expand(size, size)


def test_frequency_loss_charges_high_frequency_errors_more():
    x0 = one_over_f_images(8, 32)
    teacher = torch.randn(8, 16, 32, 32)
    low, high = cosine(32, 1), cosine(32, 13)
    assert torch.allclose(low.pow(2).mean(), high.pow(2).mean())  # equal-energy errors
    low_error = frequency_loss([(teacher + 0.1 * low, teacher)], x0)
    high_error = frequency_loss([(teacher + 0.1 * high, teacher)], x0)
    assert high_error > 3 * low_error
    # the spatial loss cannot tell them apart
    assert torch.allclose(spatial_loss([(teacher + 0.1 * low, teacher)]), spatial_loss([(teacher + 0.1 * high, teacher)]))


def test_with_alpha_zero_the_frequency_loss_is_the_mse_and_sums_over_pairs():
    x0 = one_over_f_images(2, 16)
    pairs = [(torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16)), (torch.randn(2, 8, 8, 8), torch.randn(2, 8, 8, 8))]
    mse = [torch.nn.functional.mse_loss(s, t) for s, t in pairs]
    assert torch.allclose(frequency_loss(pairs, x0, alpha=0.0), mse[0] + mse[1], rtol=1e-5)
    assert torch.allclose(spatial_loss(pairs), (mse[0] + mse[1]) / 2)


def test_frequency_weight_is_resized_normalised_and_gradient_free():
    x0 = one_over_f_images(3, 32).requires_grad_()
    weight = frequency_weight(x0, (8, 8))
    assert weight.shape == (3, 1, 8, 8) and not weight.requires_grad
    assert torch.allclose(weight.mean(dim=(-2, -1)), torch.ones(3, 1))
    assert weight[:, 0, 0, 0].max() < weight[:, 0, 4, 4].min()  # DC (most power) gets the least weight
    black = frequency_weight(torch.zeros(1, 3, 8, 8), (8, 8), eps=1e-2)
    assert torch.isfinite(black).all()


def test_frequency_loss_gradient_is_finite_at_zero_error():
    student = torch.zeros(1, 2, 8, 8, requires_grad=True)
    frequency_loss([(student, torch.zeros(1, 2, 8, 8))], torch.rand(1, 3, 8, 8)).backward()
    assert torch.isfinite(student.grad).all()


WEIGHTINGS = {  # loss.freq_weight and its options -> the weight's definition on the full FFT2 grid, float64
    "inverse_magnitude": (dict(weight="inverse_magnitude"), lambda x0, d: frequency_weight(x0, tuple(d.shape[-2:]))),
    "uniform": (dict(weight="uniform"), lambda x0, d: torch.ones_like(d.real)),
    # Jiang et al., ICCV 2021: |F_T - F_S|^alpha over its maximum per image and channel, detached
    "focal": (dict(weight="focal", focal_alpha=1.0),
              lambda x0, d: d.abs() / d.abs().amax(dim=(-2, -1), keepdim=True)),
    "focal alpha 2, log": (dict(weight="focal", focal_alpha=2.0, focal_log=True),
                           lambda x0, d: torch.log1p(d.abs() ** 2) / torch.log1p(d.abs() ** 2).amax(dim=(-2, -1), keepdim=True)),
    "focal batch maximum": (dict(weight="focal", focal_batch=True), lambda x0, d: d.abs() / d.abs().amax()),
}


@pytest.mark.parametrize("name", WEIGHTINGS)
def test_each_weighting_equals_its_full_spectrum_definition_in_value_and_gradient(name):
    """frequency_loss takes one rfft2 of each difference; the definition is the mean over the full FFT2 grid of the
    weight times |FFT2(T) - FFT2(S)|^2, the weight a constant (no gradient flows through it)."""
    options, weight = WEIGHTINGS[name]
    torch.manual_seed(0)
    x0 = torch.rand(2, 3, 12, 12, dtype=torch.float64) * 2 - 1
    pairs = [(torch.randn(2, 4, h, w, dtype=torch.float64, requires_grad=True), torch.randn(2, 4, h, w, dtype=torch.float64))
             for h, w in ((12, 12), (6, 6), (5, 7), (4, 9))]  # even, odd and non-square sizes

    def definition(pairs):
        total = 0
        for s, t in pairs:
            difference = torch.fft.fft2(t, norm="ortho") - torch.fft.fft2(s, norm="ortho")
            total = total + (weight(x0, difference.detach()) * difference.abs().pow(2)).mean()
        return total

    loss = frequency_loss(pairs, x0, **options)
    fast = torch.autograd.grad(loss, [s for s, _ in pairs])
    reference = definition(pairs)
    exact = torch.autograd.grad(reference, [s for s, _ in pairs])
    assert loss.dtype == torch.float64 and torch.allclose(loss, reference, rtol=1e-10)
    assert all(torch.allclose(a, b, rtol=1e-9, atol=1e-12) for a, b in zip(fast, exact))


@pytest.mark.parametrize("options", [dict(), dict(alpha=2.0, log_matrix=True), dict(batch_matrix=True)])
def test_focal_weighting_equals_the_focal_frequency_loss_package(options):
    """Jiang et al.'s own implementation (pip install focal-frequency-loss, in the dev extra)."""
    ffl = pytest.importorskip("focal_frequency_loss", reason="focal-frequency-loss is not installed (pip install -e '.[dev]')")
    torch.manual_seed(1)
    student, teacher = torch.randn(3, 5, 8, 10, dtype=torch.float64), torch.randn(3, 5, 8, 10, dtype=torch.float64)
    theirs = ffl.FocalFrequencyLoss(**options)(student, teacher)
    ours = frequency_loss([(student, teacher)], torch.zeros(3, 3, 8, 10, dtype=torch.float64), weight="focal",
                          focal_alpha=options.get("alpha", 1.0), focal_log=options.get("log_matrix", False),
                          focal_batch=options.get("batch_matrix", False))
    assert torch.allclose(ours, theirs, rtol=1e-10)


def test_an_unknown_weighting_is_refused_by_the_config_with_the_choices():
    from wgunet.training.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="inverse_magnitude, focal, uniform"):
        load_config("configs/default.yaml", ["loss.freq_weight=focl"])
    assert load_config("configs/default.yaml", ["loss.freq_weight=focal"]).loss.freq_weight == "focal"


@pytest.mark.parametrize("switched_off", ["spatial", "freq"])
def test_a_switched_off_term_is_not_computed(switched_off, monkeypatch):
    from wgunet.training import loop

    def refuse(*args, **kwargs):
        raise AssertionError(f"the {switched_off} term was computed with its lambda 0")

    monkeypatch.setattr(loop, {"spatial": "spatial_loss", "freq": "frequency_loss"}[switched_off], refuse)
    terms = training_terms([f"loss.lambda_{switched_off}=0"])
    assert switched_off not in terms and {"ddpm", "loss"} <= set(terms) and torch.isfinite(terms["loss"])


def training_terms(overrides: list[str]) -> dict[str, torch.Tensor]:
    """One batch's loss terms of the embedded default (the shipped teacher) with ``overrides``."""
    from wgunet.training import loop
    from wgunet.training.config import load_config

    config = load_config("configs/default.yaml", overrides)
    models = loop.build_models(config)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    return loop.loss_terms(models.trainable, models.scheduler, models.teacher, models.taps, images,
                           torch.Generator().manual_seed(0), config, models.autoencoder)
