"""Distillation losses (seed 000): L = L_DDPM + lambda_s * L_spatial + lambda_f * L_freq."""

from __future__ import annotations

import torch
import torch.nn.functional as F

FeaturePairs = list[tuple[torch.Tensor, torch.Tensor]]  # (aligned student feature, teacher feature), same shape


def spatial_loss(pairs: FeaturePairs) -> torch.Tensor:
    """Mean over the pairs of each pair's MSE.

    OPEN (how pairs are combined): a plain mean, so that the term's scale does not grow with the
    number of matched resolutions; the output pair is one of the pairs.
    """
    return torch.stack([F.mse_loss(s.float(), t.float()) for s, t in pairs]).mean()


@torch.no_grad()
def frequency_weight(x0: torch.Tensor, size: tuple[int, int], alpha: float = -1.0, eps: float = 1e-2) -> torch.Tensor:
    """w = (|FFT2(x0 resized to ``size``)| + eps)^alpha, shape (B, 1, h, w), mean 1 per image.

    OPEN (x0's 3 channels vs a feature's C channels): the magnitude is averaged over x0's RGB
    channels and the one weight map is shared by every feature channel.
    OPEN (normalisation): each image's weight map is divided by its mean, so that lambda_f keeps the
    same meaning at every resolution and alpha changes where the loss looks, not how large it is.
    ``eps`` (in units of the orthonormal DFT of an image in [-1, 1]) keeps alpha < 0 finite where x0
    has no power.
    """
    x = x0.float()
    if tuple(x.shape[-2:]) != tuple(size):
        # Area averaging is the anti-aliased resize for the integer downsampling factors the UNets use.
        x = F.interpolate(x, size=size, mode="area") if x.shape[-1] >= size[-1] else F.interpolate(
            x, size=size, mode="bilinear", align_corners=False)
    magnitude = torch.fft.fft2(x, norm="ortho").abs().mean(dim=1, keepdim=True)
    weight = (magnitude + eps).pow(alpha)
    return weight / weight.mean(dim=(-2, -1), keepdim=True)


def frequency_loss(pairs: FeaturePairs, x0: torch.Tensor, alpha: float = -1.0, eps: float = 1e-2) -> torch.Tensor:
    """L_freq = sum_i mean(w_i * |FFT2(T_i) - FFT2(S_i)|^2) over the feature pairs (seed 000).

    The orthonormal DFT keeps each term on the scale of the spatial MSE (Parseval): with w = 1,
    mean|FFT2(T) - FFT2(S)|^2 == MSE(T, S).

    Computed as one real FFT of each pair's difference (the DFT is linear): rfft2 keeps the columns 0..w/2 of the
    spectrum, and every other column is the complex conjugate of one of them (a real signal's spectrum is Hermitian,
    and so is the weight, a function of |FFT2(x0)|), so the columns that stand for two are counted twice.
    """
    total = x0.new_zeros((), dtype=torch.float32)
    for student, teacher in pairs:
        height, width = teacher.shape[-2:]
        columns = torch.ones(width // 2 + 1, device=x0.device)
        columns[1 : (width + 1) // 2] = 2  # all but the DC column and, at an even width, the Nyquist column
        weight = frequency_weight(x0, (height, width), alpha, eps)[..., : width // 2 + 1] * columns  # (B, 1, h, w/2+1)
        difference = torch.fft.rfft2(teacher.float() - student.float(), norm="ortho")
        squares = torch.view_as_real(difference).square()  # re^2, im^2: |.|^2 without abs()'s undefined gradient at 0
        total = total + (squares * weight[..., None]).sum() / (teacher.shape[0] * teacher.shape[1] * height * width)
    return total
