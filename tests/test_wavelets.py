import numpy as np
import pytest
import pywt
import torch

from wgunet.model.wavelets import dwt2, idwt2

WAVELETS = ["haar", "db2", "sym4", "coif1", "bior2.2", "bior3.5", "rbio1.3"]


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_perfect_reconstruction(wavelet):
    x = torch.randn(2, 3, 16, 12)
    assert torch.allclose(idwt2(dwt2(x, wavelet), wavelet), x, atol=1e-5)


def test_reconstruction_at_every_supported_wavelet():
    from wgunet.model.wavelets import supported_wavelets

    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    worst = {w: (idwt2(dwt2(x, w), w) - x).abs().max().item() for w in supported_wavelets()}
    assert max(worst.values()) < 1e-8, {w: e for w, e in worst.items() if e >= 1e-8}


@pytest.mark.parametrize("wavelet", WAVELETS)
def test_matches_pywt_periodization_band_by_band(wavelet):
    x = torch.randn(2, 3, 16, 12)
    bands = dwt2(x, wavelet)
    assert bands.shape == (2, 4, 3, 8, 6)
    ca, (ch, cv, cd) = pywt.dwt2(x.double().numpy(), wavelet, mode="periodization", axes=(-2, -1))
    for i, reference in enumerate([ca, ch, cv, cd]):
        np.testing.assert_allclose(bands[:, i].numpy(), reference, atol=1e-5, err_msg=f"band {i}")


def test_image_smaller_than_filter_still_inverts():
    x = torch.randn(1, 1, 4, 4, dtype=torch.float64)  # sym4 has 8 taps
    assert torch.allclose(idwt2(dwt2(x, "sym4"), "sym4"), x, atol=1e-10)


@pytest.mark.parametrize("wavelet", ["haar", "db2", "bior2.2"])
def test_gradcheck(wavelet):
    x = torch.randn(1, 2, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: dwt2(t, wavelet), (x,))
    bands = torch.randn(1, 4, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: idwt2(t, wavelet), (bands,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_keeps_dtype(dtype):
    x = torch.randn(1, 2, 8, 8).to(dtype)
    for wavelet in ["haar", "db2"]:
        assert dwt2(x, wavelet).dtype == dtype
        assert idwt2(dwt2(x, wavelet), wavelet).dtype == dtype


def test_non_contiguous_input():
    x = torch.randn(2, 8, 8, 3).permute(0, 3, 1, 2)
    assert torch.allclose(dwt2(x), dwt2(x.contiguous()))


def test_odd_size_is_a_clear_error():
    with pytest.raises(ValueError, match="even height and width"):
        dwt2(torch.randn(1, 1, 7, 8))


def test_unknown_wavelet_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown or unsupported wavelet 'haat'"):
        dwt2(torch.randn(1, 1, 8, 8), "haat")
    with pytest.raises(ValueError, match="unsupported"):
        dwt2(torch.randn(1, 1, 8, 8), "dmey")


def test_formulation_traced_by_torch_compile_equals_eager(monkeypatch):
    """Under torch.compile the Haar transforms and WG-Down take the one-expression formulation that Inductor fuses;
    run eagerly (as if tracing) it gives the eager path's values and gradients, on a non-contiguous input too."""
    from wgunet.model.wavelets import gated_dwt2

    x = torch.randn(2, 6, 4, 3, dtype=torch.float64).permute(0, 3, 1, 2).requires_grad_()  # (2, 3, 6, 4)
    gates = torch.rand(2, 4, 3, 1, 1, dtype=torch.float64, requires_grad=True)
    transforms = {"dwt2": lambda: dwt2(x), "idwt2": lambda: idwt2(dwt2(x) * gates),
                  "gated_dwt2": lambda: gated_dwt2(x, gates)}
    eager = {}
    for name, transform in transforms.items():
        y = transform()
        eager[name] = (y, torch.autograd.grad(y, (x, gates), torch.ones_like(y), allow_unused=True))
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    for name, transform in transforms.items():
        y = transform()
        gradients = torch.autograd.grad(y, (x, gates), torch.ones_like(y), allow_unused=True)
        assert torch.allclose(y, eager[name][0], atol=1e-12), name
        for got, want in zip(gradients, eager[name][1]):
            assert (got is None and want is None) or torch.allclose(got, want, atol=1e-12), name
    assert torch.autograd.gradcheck(lambda t: idwt2(dwt2(t) * gates.detach()), (x,))
