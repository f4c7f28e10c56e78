"""One-level 2-D discrete wavelet transform and its inverse, in torch.

Filter banks come from PyWavelets (imported only for a wavelet other than Haar whose bank is not registered:
a WG-UNet's config carries its bank, so a saved model runs without PyWavelets); the boundary is periodization, which makes the one-level
transform exactly invertible at even sizes for every orthogonal and biorthogonal wavelet and
matches ``pywt.dwt2(x, w, mode="periodization")`` band by band.

Layout: ``dwt2`` maps (B, C, H, W) to (B, 4, C, H/2, W/2) with bands in pywt's order
(cA, cH, cV, cD) = (LL, LH, HL, HH); ``idwt2`` inverts it.

Haar, the default inside WG-UNet, has a fast path: in eager mode two butterfly passes (rows, then
columns) written straight into the output, 3.4-5.5x the cost of ``x.clone()`` and ~9x faster than
a strided convolution; under torch.compile one expression per band that Inductor fuses into a single
loop, ~2x a clone (see ``bench/wavelets.py``). Every other wavelet goes through a grouped stride-2
convolution with circular indexing.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

__all__ = ["dwt2", "idwt2", "gated_dwt2", "gated_expand_idwt2", "check_wavelet", "filter_bank", "register_filter_bank",
           "supported_wavelets", "BANDS"]

BANDS = ("LL", "LH", "HL", "HH")
FilterBank = tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...], tuple[float, ...]]  # dec_lo, dec_hi, rec_lo, rec_hi
_REGISTERED: dict[str, FilterBank] = {}  # banks read from saved models' configs


def supported_wavelets() -> tuple[str, ...]:
    """PyWavelets' discrete wavelets that reconstruct perfectly (its discrete Meyer is an FIR approximation that
    pywt itself does not invert exactly)."""
    import pywt

    return tuple(name for name in pywt.wavelist(kind="discrete") if name != "dmey")


def check_wavelet(name: str) -> None:
    """One clear error for a wavelet the transforms cannot use (a plain test: torch.compile traces it)."""
    if _is_haar(name) or name in _REGISTERED:
        return
    if name not in supported_wavelets():
        raise ValueError(
            f"unknown or unsupported wavelet {name!r}: use a perfectly reconstructing discrete wavelet "
            f"that PyWavelets knows, e.g. 'haar', 'db2', 'sym4', 'coif1', 'bior2.2' (see wgunet.model.wavelets.supported_wavelets)"
        )


def filter_bank(name: str) -> FilterBank:
    """(dec_lo, dec_hi, rec_lo, rec_hi) of wavelet ``name``: a registered bank, else PyWavelets'."""
    if name not in _REGISTERED:
        import pywt

        check_wavelet(name)
        wavelet = pywt.Wavelet(name)
        _REGISTERED[name] = tuple(tuple(f) for f in (wavelet.dec_lo, wavelet.dec_hi, wavelet.rec_lo, wavelet.rec_hi))
    return _REGISTERED[name]


def register_filter_bank(name: str, bank: list[list[float]]) -> None:
    """Use ``bank`` (as ``filter_bank`` gives it) for wavelet ``name``: how a saved model brings its own filters."""
    _REGISTERED[name] = tuple(tuple(float(v) for v in f) for f in bank)


def _is_haar(name: str) -> bool:
    return name in ("haar", "db1")  # pywt's two names of one wavelet (a plain test: torch.compile traces it)


def _check_even(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"dwt2 expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"dwt2 needs even height and width, got {h}x{w}: pad or crop the input to an even size")


# ---------------------------------------------------------------------------------------------
# Haar fast path. With a = x[2i, 2j], b = x[2i, 2j+1], c = x[2i+1, 2j], d = x[2i+1, 2j+1]:
#   LL = (a+b+c+d)/2, LH = (a+b-c-d)/2, HL = (a-b+c-d)/2, HH = (a-b-c+d)/2   (pywt's signs).
# Haar is orthonormal, so the adjoint of each transform is the other one: that is the backward.
# ---------------------------------------------------------------------------------------------


def _haar_analysis(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    top, bottom = x.reshape(b, c, h // 2, 2, w).unbind(3)
    row_sum, row_diff = top + bottom, top - bottom
    out = x.new_empty(b, 4, c, h // 2, w // 2)
    s_left, s_right = row_sum.view(b, c, h // 2, w // 2, 2).unbind(-1)
    d_left, d_right = row_diff.view(b, c, h // 2, w // 2, 2).unbind(-1)
    # lerp(p, q, 0.5) = (p+q)/2 in one pass; (p+q)/2 - q = (p-q)/2 reuses it.
    torch.lerp(s_left, s_right, 0.5, out=out[:, 0])
    torch.sub(out[:, 0], s_right, out=out[:, 2])
    torch.lerp(d_left, d_right, 0.5, out=out[:, 1])
    torch.sub(out[:, 1], d_right, out=out[:, 3])
    return out


def _haar_synthesis(bands: torch.Tensor) -> torch.Tensor:
    b, _, c, h, w = bands.shape
    ll, lh, hl, hh = bands.unbind(1)
    top_sum, top_diff = ll + lh, hl + hh  # a+b and a-b, times 2 (a = (top_sum+top_diff)/2)
    bot_sum, bot_diff = ll - lh, hl - hh
    out = bands.new_empty(b, c, h, 2, w, 2)
    torch.lerp(top_sum, top_diff, 0.5, out=out[:, :, :, 0, :, 0])
    torch.sub(out[:, :, :, 0, :, 0], top_diff, out=out[:, :, :, 0, :, 1])
    torch.lerp(bot_sum, bot_diff, 0.5, out=out[:, :, :, 1, :, 0])
    torch.sub(out[:, :, :, 1, :, 0], bot_diff, out=out[:, :, :, 1, :, 1])
    return out.view(b, c, 2 * h, 2 * w)


# Under torch.compile the same sums are written as one expression per band: Inductor fuses each transform into a
# single loop over the input (2x a clone() where the eager butterflies take 3.4-5.5x, bench/wavelets.py), while in
# eager mode that expression would cost a pass per operator. Autograd differentiates it; no adjoint needed.


def _haar_cells(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The polyphase components a, b, c, d (views, (B, C, H/2, W/2)) of a (B, C, H, W) tensor."""
    b, c, h, w = x.shape
    cells = x.reshape(b, c, h // 2, 2, w // 2, 2)
    return cells[:, :, :, 0, :, 0], cells[:, :, :, 0, :, 1], cells[:, :, :, 1, :, 0], cells[:, :, :, 1, :, 1]


def _haar_analysis_fusable(x: torch.Tensor) -> torch.Tensor:
    a, b, c, d = _haar_cells(x)  # each band scaled before the stack: Inductor would not fuse a scale after it
    return torch.stack([(a + b + c + d) * 0.5, (a + b - c - d) * 0.5, (a - b + c - d) * 0.5, (a - b - c + d) * 0.5], 1)


def _haar_synthesis_fusable(bands: torch.Tensor) -> torch.Tensor:
    b, _, c, h, w = bands.shape
    ll, lh, hl, hh = bands.unbind(1)  # HADAMARD is symmetric: pixel p = sum_k HADAMARD[p, k] band_k
    cells = torch.stack([(ll + lh + hl + hh) * 0.5, (ll + lh - hl - hh) * 0.5, (ll - lh + hl - hh) * 0.5,
                         (ll - lh - hl + hh) * 0.5], -1)
    return cells.view(b, c, h, w, 2, 2).transpose(3, 4).reshape(b, c, 2 * h, 2 * w)


class _HaarDWT(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return _haar_analysis(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _HaarIDWT.apply(grad)


class _HaarIDWT(torch.autograd.Function):
    @staticmethod
    def forward(ctx, bands: torch.Tensor) -> torch.Tensor:
        return _haar_synthesis(bands)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _HaarDWT.apply(grad)


# ---------------------------------------------------------------------------------------------
# General path. pywt's periodization computes out[k] = sum_j h[j] x[(2k + L/2 - j) mod N], which
# is a stride-2 correlation with the reversed filter after a circular left shift of L/2 - 1;
# the inverse is a stride-2 transposed convolution with the reconstruction filters whose
# overhang is folded back circularly with the same shift.
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _filters(name: str, kind: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(4, L, L) separable 2-D filters in band order LL, LH, HL, HH (first factor along H)."""
    dec_lo, dec_hi, rec_lo, rec_hi = filter_bank(name)
    lo, hi = (dec_lo, dec_hi) if kind == "dec" else (rec_lo, rec_hi)
    lo, hi = torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)
    if kind == "dec":  # correlation with the reversed analysis filter = pywt's convolution
        lo, hi = lo.flip(0), hi.flip(0)
    bank = torch.stack([torch.outer(lo, lo), torch.outer(hi, lo), torch.outer(lo, hi), torch.outer(hi, hi)])
    return bank.to(dtype=dtype, device=device)


def _circular_index(n: int, length: int, shift: int, device: torch.device) -> torch.Tensor:
    return (torch.arange(length, device=device) - shift) % n


def _circular_pad(x: torch.Tensor, taps: int) -> torch.Tensor:
    """x extended circularly so that a stride-2 correlation with ``taps``-tap filters is pywt's periodization."""
    h, w = x.shape[-2:]
    shift = taps // 2 - 1
    x = x.index_select(2, _circular_index(h, h + taps - 2, shift, x.device))
    return x.index_select(3, _circular_index(w, w + taps - 2, shift, x.device))


def _generic_analysis(x: torch.Tensor, name: str) -> torch.Tensor:
    b, c, h, w = x.shape
    bank = _filters(name, "dec", x.dtype, x.device)
    x = _circular_pad(x, bank.shape[-1])
    weight = bank.unsqueeze(1).repeat(c, 1, 1, 1)  # (4C, 1, L, L), group c -> channels 4c..4c+3
    y = F.conv2d(x, weight, stride=2, groups=c)
    return y.view(b, c, 4, h // 2, w // 2).transpose(1, 2).contiguous()


def _generic_synthesis(bands: torch.Tensor, name: str) -> torch.Tensor:
    b, _, c, h, w = bands.shape
    bank = _filters(name, "rec", bands.dtype, bands.device)
    taps = bank.shape[-1]
    shift = taps // 2 - 1
    weight = bank.unsqueeze(1).repeat(c, 1, 1, 1)  # (4C, 1, L, L): four bands summed into each channel
    y = F.conv_transpose2d(bands.transpose(1, 2).reshape(b, 4 * c, h, w), weight, stride=2, groups=c)
    height, width = 2 * h, 2 * w
    y = y.new_zeros(b, c, height, y.shape[-1]).index_add(2, _circular_index(height, y.shape[-2], shift, y.device), y)
    return y.new_zeros(b, c, height, width).index_add(3, _circular_index(width, y.shape[-1], shift, y.device), y)


def dwt2(x: torch.Tensor, wavelet: str = "haar") -> torch.Tensor:
    """One-level 2-D DWT: (B, C, H, W) -> (B, 4, C, H/2, W/2), bands LL, LH, HL, HH."""
    check_wavelet(wavelet)
    _check_even(x)
    if _is_haar(wavelet):
        return _haar_analysis_fusable(x) if torch.compiler.is_compiling() else _HaarDWT.apply(x.contiguous())
    return _generic_analysis(x, wavelet)


def idwt2(bands: torch.Tensor, wavelet: str = "haar") -> torch.Tensor:
    """Inverse of :func:`dwt2`: (B, 4, C, h, w) -> (B, C, 2h, 2w)."""
    check_wavelet(wavelet)
    if bands.dim() != 5 or bands.shape[1] != 4:
        raise ValueError(f"idwt2 expects (B, 4, C, h, w) bands as dwt2 returns them, got shape {tuple(bands.shape)}")
    if _is_haar(wavelet):
        return _haar_synthesis_fusable(bands) if torch.compiler.is_compiling() else _HaarIDWT.apply(bands.contiguous())
    return _generic_synthesis(bands, wavelet)


# ---------------------------------------------------------------------------------------------
# Gated transforms with the gates folded into the filters (WG-Down, WG-Up). No four-band tensor is formed:
#   sum_i g_i * (h_i * x)|down2 = ((sum_i g_i h_i) * x)|down2,
# a per-sample, per-channel filter. For Haar its four taps on the polyphase components (a, b, c, d) are
# HADAMARD @ g: the +-1/2 combinations of the four gates.
# ---------------------------------------------------------------------------------------------

# rows: polyphase components a=(0,0), b=(0,1), c=(1,0), d=(1,1); columns: bands LL, LH, HL, HH (pywt's signs).
# Orthonormal and symmetric, so the same matrix maps bands to pixels in the inverse.
HADAMARD = torch.tensor([[1, 1, 1, 1], [1, 1, -1, -1], [1, -1, 1, -1], [1, -1, -1, 1]], dtype=torch.float64) / 2


def four_band_down(x: torch.Tensor, gates: torch.Tensor, wavelet: str = "haar") -> torch.Tensor:
    """WG-Down as the paper writes it, X' = sum_i g_i * X_i over the bands i of dwt2(x): (B, C, H, W) ->
    (B, C, H/2, W/2), gates (B, 4, C, 1, 1). The readable form of :func:`gated_dwt2`, which the blocks run."""
    return (gates * dwt2(x, wavelet)).sum(1)


def four_band_up(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, gates: torch.Tensor,
                 wavelet: str = "haar") -> torch.Tensor:
    """WG-Up as the paper writes it: a 1x1 convolution to 4 C_out channels, split into four chunks X_i, then
    X' = IDWT(g_LL X_LL, g_LH X_LH, g_HL X_HL, g_HH X_HH). The readable form of :func:`gated_expand_idwt2`."""
    b, _, h, w = x.shape
    return idwt2(gates * F.conv2d(x, weight, bias).view(b, 4, gates.shape[2], h, w), wavelet)


def gated_dwt2(x: torch.Tensor, gates: torch.Tensor, wavelet: str = "haar") -> torch.Tensor:
    """``(gates * dwt2(x)).sum(1)`` for gates (B, 4, C, 1, 1), computed as one depthwise stride-2 convolution
    with a per-sample, per-channel filter: (B, C, H, W) -> (B, C, H/2, W/2)."""
    _check_even(x)
    b, c, h, w = x.shape
    if _is_haar(wavelet):  # the filter is the 2x2 block HADAMARD @ g, applied to each 2x2 cell
        taps = torch.einsum("pk,bkc->bcp", HADAMARD.to(dtype=x.dtype, device=x.device), gates.flatten(2))
        if torch.compiler.is_compiling():  # one fused loop (1.5-1.7x a clone(); Inductor's grouped conv is 3.5-4.3x)
            taps = taps[..., None, None]
            return sum(cell * taps[:, :, p] for p, cell in enumerate(_haar_cells(x)))
        kernels = taps.reshape(b * c, 1, 2, 2)
    else:
        bank = _filters(wavelet, "dec", x.dtype, x.device)
        kernels = torch.einsum("kuv,bkc->bcuv", bank, gates.flatten(2)).reshape(b * c, 1, *bank.shape[-2:])
        x = _circular_pad(x, bank.shape[-1])
    return F.conv2d(x.reshape(1, b * c, *x.shape[-2:]), kernels, stride=2, groups=b * c).view(b, c, h // 2, w // 2)


def gated_expand_idwt2(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, gates: torch.Tensor,
                       wavelet: str = "haar") -> torch.Tensor:
    """``idwt2(gates * conv1x1(x, weight, bias).view(B, 4, C_out, H, W))`` with the gates folded into the 1x1
    weights per sample: (B, C_in, H, W) -> (B, C_out, 2H, 2W). ``weight`` (4 C_out, C_in, 1, 1), ``bias`` (4 C_out,)
    as an nn.Conv2d holds them, gates (B, 4, C_out, 1, 1).

    For Haar the synthesis is folded in as well: each output polyphase component is a per-sample 1x1 convolution
    (HADAMARD mixes the gated bands), and pixel_shuffle interleaves the four components."""
    b, c_in, h, w = x.shape
    c_out = gates.shape[2]
    g = gates.flatten(2)  # (B, 4, C_out)
    weight, bias = weight.view(4, c_out, c_in), bias.view(4, c_out)
    if _is_haar(wavelet):
        mix = HADAMARD.to(dtype=x.dtype, device=x.device)
        kernels = torch.einsum("mk,bkc,kci->bcmi", mix, g, weight).reshape(b, 4 * c_out, c_in)
        offsets = torch.einsum("mk,bkc,kc->bcm", mix, g, bias).reshape(b, 4 * c_out, 1)
        y = torch.baddbmm(offsets, kernels, x.reshape(b, c_in, h * w))
        return F.pixel_shuffle(y.view(b, 4 * c_out, h, w), 2)
    kernels = (g[..., None] * weight).reshape(b, 4 * c_out, c_in)
    y = torch.baddbmm((g * bias).reshape(b, 4 * c_out, 1), kernels, x.reshape(b, c_in, h * w))
    return _generic_synthesis(y.view(b, 4, c_out, h, w), wavelet)
