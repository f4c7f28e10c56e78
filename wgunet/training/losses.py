"""Distillation losses (Yang et al., "Diffusion Probabilistic Model Made Slim", CVPR 2023):
L = L_DDPM + lambda_s * L_spatial + lambda_f * L_freq, with L_freq's per-frequency weight one of FREQ_WEIGHTS."""

from __future__ import annotations

import torch
import torch.nn.functional as F

FeaturePairs = list[tuple[torch.Tensor, torch.Tensor]]  # (aligned student feature, teacher feature), same shape
# how L_freq weights each frequency (config loss.freq_weight):
# - inverse_magnitude: w = (|DFT(x0 resized)| + eps)^alpha, alpha = -1 (Yang et al., CVPR 2023), frequency_weight;
# - focal: w = |F_T - F_S|^alpha / its maximum, detached (Jiang et al., "Focal Frequency Loss for Image
#   Reconstruction and Synthesis", ICCV 2021), focal_weight;
# - uniform: w = 1, which makes each pair's term its MSE (Parseval).
FREQ_WEIGHTS = ("inverse_magnitude", "focal", "uniform")


def spatial_loss(pairs: FeaturePairs) -> torch.Tensor:
    """Mean over the pairs of each pair's MSE.

    OPEN (how pairs are combined): a plain mean, so that the term's scale does not grow with the
    number of matched resolutions; the output pair is one of the pairs.
    """
    return torch.stack([F.mse_loss(s.float(), t.float()) for s, t in pairs]).mean()


@torch.no_grad()
def frequency_weight(x0: torch.Tensor, size: tuple[int, int], alpha: float = -1.0, eps: float = 1e-2) -> torch.Tensor:
    """Inverse-magnitude weight w = (|FFT2(x0 resized to ``size``)| + eps)^alpha, shape (B, 1, h, w), mean 1 per image.

    OPEN (x0's 3 channels vs a feature's C channels): the magnitude is averaged over x0's RGB
    channels and the one weight map is shared by every feature channel.
    OPEN (normalisation): each image's weight map is divided by its mean, so that lambda_f keeps the
    same meaning at every resolution and alpha changes where the loss looks, not how large it is.
    ``eps`` (in units of the orthonormal DFT of an image in [-1, 1]) keeps alpha < 0 finite where x0
    has no power.
    """
    x = x0.float() if x0.dtype != torch.float64 else x0
    if tuple(x.shape[-2:]) != tuple(size):
        # Area averaging is the anti-aliased resize for the integer downsampling factors the UNets use.
        x = F.interpolate(x, size=size, mode="area") if x.shape[-1] >= size[-1] else F.interpolate(
            x, size=size, mode="bilinear", align_corners=False)
    magnitude = torch.fft.fft2(x, norm="ortho").abs().mean(dim=1, keepdim=True)
    weight = (magnitude + eps).pow(alpha)
    return weight / weight.mean(dim=(-2, -1), keepdim=True)


@torch.no_grad()
def focal_weight(difference: torch.Tensor, alpha: float = 1.0, log: bool = False, batch: bool = False) -> torch.Tensor:
    """Focal weight of a spectrum difference F_T - F_S (complex, (B, C, h, w) or its rfft half): w = |F_T - F_S|^alpha,
    with ``log`` w = log(1 + w), divided by its maximum over each image's channel (``batch``: over the batch), 0 where
    that maximum is 0; in [0, 1] and detached (Jiang et al., ICCV 2021; the focal-frequency-loss package's alpha,
    log_matrix and batch_matrix). On an rfft half the maximum is the full grid's: the other columns are conjugates."""
    weight = difference.abs().pow(alpha)
    if log:
        weight = torch.log1p(weight)
    top = weight.amax() if batch else weight.amax(dim=(-2, -1), keepdim=True)
    return torch.nan_to_num(weight / top, nan=0.0).clamp(0, 1)


def frequency_loss(pairs: FeaturePairs, x0: torch.Tensor, alpha: float = -1.0, eps: float = 1e-2,
                   weight: str = "inverse_magnitude", focal_alpha: float = 1.0, focal_log: bool = False,
                   focal_batch: bool = False) -> torch.Tensor:
    """L_freq = sum_i mean(w_i * |FFT2(T_i) - FFT2(S_i)|^2) over the feature pairs (Yang et al., CVPR 2023), w_i as
    ``weight`` names (FREQ_WEIGHTS): ``alpha`` and ``eps`` are inverse_magnitude's, ``focal_*`` focal's.

    The orthonormal DFT keeps each term on the scale of the spatial MSE (Parseval): with w = 1,
    mean|FFT2(T) - FFT2(S)|^2 == MSE(T, S).

    Computed as one real FFT of each pair's difference (the DFT is linear): rfft2 keeps the columns 0..w/2 of the
    spectrum, and every other column is the complex conjugate of one of them (a real signal's spectrum is Hermitian,
    and so is every weight, a function of a magnitude), so the columns that stand for two are counted twice.
    """
    if weight not in FREQ_WEIGHTS:
        raise ValueError(f"unknown frequency weight {weight!r}; choose one of {', '.join(FREQ_WEIGHTS)}")
    precision = torch.float64 if x0.dtype == torch.float64 else torch.float32
    total = x0.new_zeros((), dtype=precision)
    for student, teacher in pairs:
        height, width = teacher.shape[-2:]
        columns = torch.ones(width // 2 + 1, device=x0.device, dtype=precision)
        columns[1 : (width + 1) // 2] = 2  # all but the DC column and, at an even width, the Nyquist column
        difference = torch.fft.rfft2(teacher.to(precision) - student.to(precision), norm="ortho")
        if weight == "inverse_magnitude":
            w = frequency_weight(x0, (height, width), alpha, eps)[..., : width // 2 + 1]  # (B, 1, h, w/2+1)
        elif weight == "focal":
            w = focal_weight(difference, focal_alpha, focal_log, focal_batch)  # (B, C, h, w/2+1)
        else:
            w = torch.ones((), device=x0.device, dtype=precision)
        squares = torch.view_as_real(difference).square()  # re^2, im^2: |.|^2 without abs()'s undefined gradient at 0
        total = total + (squares * (w * columns)[..., None]).sum() / (teacher.shape[0] * teacher.shape[1] * height * width)
    return total
