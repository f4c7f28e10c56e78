import pytest
import torch

from wgunet import WGDown, WGUp
from wgunet.model.blocks import INITIAL_GATES


def checkerboard(size: int = 16, channels: int = 4) -> torch.Tensor:
    i, j = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return ((-1.0) ** (i + j)).expand(2, channels, size, size).contiguous()


def test_fresh_wgdown_suppresses_nyquist_checkerboard():
    x = checkerboard()
    aliased = x[..., ::2, ::2]  # plain stride-2 subsampling keeps the full checkerboard energy, folded to DC
    out = WGDown(4)(x)
    assert out.shape == (2, 4, 8, 8)
    assert aliased.pow(2).mean() >= 10 * out.pow(2).mean()


def test_fresh_wgdown_passes_a_constant_unchanged_in_level():
    x = torch.full((2, 4, 16, 16), 0.7)
    assert torch.allclose(WGDown(4)(x), torch.full((2, 4, 8, 8), 0.7), atol=1e-6)


def test_equal_gates_give_aliased_subsampling():
    """The known fact behind the initialisation: LL+LH+HL+HH = 2 x[0::2, 0::2] for orthonormal Haar."""
    block = WGDown(4)
    with torch.no_grad():
        block.gate.out.bias.fill_(0.0)  # sigmoid(0) = 0.5 on every band
    x = torch.randn(2, 4, 16, 16)
    assert torch.allclose(block(x), x[..., ::2, ::2], atol=1e-6)


def test_gates_start_at_the_documented_values_and_learn():
    block = WGDown(3, temb_channels=8)
    x, temb = torch.randn(2, 3, 8, 8), torch.randn(2, 8)
    gates = block.gate(x, temb)
    assert gates.shape == (2, 4, 3, 1, 1)
    assert torch.allclose(gates[0, :, 0, 0, 0], torch.tensor(INITIAL_GATES), atol=1e-6)
    block(x, temb).sum().backward()
    assert block.gate.out.weight.grad.abs().sum() > 0
    assert block.gate.out.bias.grad.abs().sum() > 0


def test_wgup_shapes_and_time_conditioning():
    up = WGUp(8, out_channels=6, temb_channels=5)
    x = torch.randn(2, 8, 4, 4)
    assert up(x).shape == (2, 6, 8, 8)
    assert up(x, torch.randn(2, 5)).shape == (2, 6, 8, 8)
    with pytest.raises(ValueError, match="without temb_channels"):
        WGUp(8)(x, torch.randn(2, 5))


def test_fresh_wgup_is_nearest_neighbour_of_its_ll_chunk_when_details_are_closed():
    up = WGUp(4)
    with torch.no_grad():
        up.gate.out.bias.view(4, 4)[1:] = -30.0  # close the detail bands
    x = torch.randn(1, 4, 4, 4)
    ll = 0.5 * up.expand(x)[:, :4]  # gate 0.5 on LL
    expected = 0.5 * ll.repeat_interleave(2, -1).repeat_interleave(2, -2)  # Haar IDWT of LL alone
    assert torch.allclose(up(x), expected, atol=1e-6)


@pytest.mark.parametrize("wavelet", ["db2", "bior2.2"])
def test_blocks_take_any_wavelet(wavelet):
    x = torch.randn(1, 4, 8, 8)
    assert WGDown(4, wavelet=wavelet)(x).shape == (1, 4, 4, 4)
    assert WGUp(4, wavelet=wavelet)(x).shape == (1, 4, 16, 16)
    with pytest.raises(ValueError, match="unknown or unsupported wavelet"):
        WGDown(4, wavelet="nope")


@pytest.mark.parametrize("wavelet", ["haar", "db2", "bior2.2"])
def test_folded_gates_equal_the_four_band_formulation_with_exact_gradients(wavelet):
    """WG-Down and WG-Up fold the gates into the filters; outputs and gradients (x, gates, 1x1 weights) are those
    of gating the four bands of dwt2 / idwt2, and gradcheck passes in float64."""
    from wgunet.model.wavelets import four_band_down, four_band_up, gated_dwt2, gated_expand_idwt2

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=generator, requires_grad=True)
    gates = torch.rand(2, 4, 3, 1, 1, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(4 * 5, 3, 1, 1, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(4 * 5, dtype=torch.float64, generator=generator, requires_grad=True)
    up_gates = torch.rand(2, 4, 5, 1, 1, dtype=torch.float64, generator=generator, requires_grad=True)

    pairs = [(lambda *a: gated_dwt2(*a, wavelet), lambda *a: four_band_down(*a, wavelet), (x, gates)),
             (lambda *a: gated_expand_idwt2(*a, wavelet), lambda *a: four_band_up(*a, wavelet), (x, weight, bias, up_gates))]
    for folded, reference, inputs in pairs:
        out, expected = folded(*inputs), reference(*inputs)
        assert out.shape == expected.shape and torch.allclose(out, expected, atol=1e-12)
        probe = torch.randn(out.shape, dtype=torch.float64, generator=generator)
        got = torch.autograd.grad((out * probe).sum(), inputs)
        want = torch.autograd.grad((expected * probe).sum(), inputs)
        assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(got, want))
        assert torch.autograd.gradcheck(folded, inputs)


def test_blocks_in_float32_match_the_four_band_formulation():
    from wgunet.model.wavelets import four_band_down, four_band_up

    down, up = WGDown(16, temb_channels=8), WGUp(16, 8, temb_channels=8)
    for block in (down, up):  # gates away from their initial values
        torch.nn.init.normal_(block.gate.out.weight, std=0.5)
    x, temb = torch.randn(4, 16, 16, 16), torch.randn(4, 8)
    expected_down = four_band_down(x, down.gate(x, temb))
    expected_up = four_band_up(x, up.expand.weight, up.expand.bias, up.gate(x, temb))
    assert (down(x, temb) - expected_down).abs().max() < 1e-5 and (up(x, temb) - expected_up).abs().max() < 1e-5
