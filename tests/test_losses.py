import torch

from wgunet.losses import frequency_loss, frequency_weight, spatial_loss


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


def test_the_half_spectrum_loss_equals_the_full_spectrum_definition_with_its_gradients():
    """frequency_loss takes one rfft2 of each difference; the definition is the mean over the full FFT2 grid."""
    torch.manual_seed(0)
    x0 = torch.rand(2, 3, 12, 12, dtype=torch.float64) * 2 - 1
    pairs = [(torch.randn(2, 4, h, w, dtype=torch.float64, requires_grad=True), torch.randn(2, 4, h, w, dtype=torch.float64))
             for h, w in ((12, 12), (6, 6), (5, 7), (4, 9))]  # even, odd and non-square sizes

    def definition(pairs):
        return sum((frequency_weight(x0, tuple(t.shape[-2:])) * (torch.fft.fft2(t, norm="ortho")
                    - torch.fft.fft2(s, norm="ortho")).abs().pow(2)).mean() for s, t in pairs)

    loss = frequency_loss(pairs, x0)
    fast = torch.autograd.grad(loss, [s for s, _ in pairs])
    reference = definition(pairs)
    exact = torch.autograd.grad(reference, [s for s, _ in pairs])
    assert torch.allclose(loss.double(), reference, rtol=1e-6)
    assert all(torch.allclose(a.double(), b, rtol=1e-5, atol=1e-8) for a, b in zip(fast, exact))
