"""STIG's settings: the CPU-sized default and the paper's (Lee, Jung, Seo, AAAI 2024)."""

from __future__ import annotations

from dataclasses import dataclass

from wgunet.common.errors import UserError


class StigError(UserError):
    """A STIG run or model that cannot be used; the message names the problem and the fix."""


@dataclass
class StigConfig:
    # "compact": the CPU default below. "paper": STIG's UNet++ translator (~24.8 M parameters) and its sigmoid
    # PatchGAN (~1.56 M); build it with paper_config(), which also sets the paper's weights and schedule.
    architecture: str = "compact"
    channels: int = 16  # translator width (CUT: 64)
    blocks: int = 2  # ResNet blocks (CUT: 9)
    discriminator_channels: int = 16  # PatchGAN width (CUT: 64)
    nce_layers: tuple[int, ...] = (0, 1, 3)  # translator encoder layers whose patches PatchNCE compares
    nce_patches: int = 64  # sampled patch locations per layer (CUT: 256)
    nce_temperature: float = 0.07
    # OPEN (weights): CUT's lambda_GAN = 1 left the restoration of blurred patches seed-dependent at 1000 steps;
    # 5 restores them over every seed tried (docs/results.md, STIG refinement)
    lambda_gan: float = 5.0
    lambda_nce: float = 1.0
    lambda_identity: float = 1.0
    lambda_low: float = 10.0
    # STIG's own terms (paper weights 3, 3 and 1): a discriminator on the spectral profile, the azimuthal mean of
    # the spectrum ("spectral filter profile"), and SSIM identities of the rebuilt images; 0 switches one off
    lambda_profile: float = 3.0
    lambda_ssim_real: float = 3.0
    lambda_ssim_generated: float = 1.0
    nce_detach_keys: bool = True  # CUT and STIG detach PatchNCE's keys; False keeps their gradient
    low_radius: float = 0.15  # normalised radius (1 = corner) below which the spectrum is kept
    lr: float = 1e-3  # CUT: 2e-4; 5x for runs of a few hundred steps, decayed to zero after lr_constant_fraction
    lr_constant_fraction: float = 0.5  # CUT: the first half at full lr; STIG: the first 20%
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = 16
    steps: int = 1000
    checkpoint_every: int = 200
    seed: int = 0


def paper_config(**overrides) -> StigConfig:
    """STIG as published (arXiv 2403.05093 and its code): UNet++ translator, sigmoid PatchGAN + profile
    discriminator, GAN / profile / SSIM-real / low-frequency weights 3, SSIM-generated 1, PatchNCE weight 10 (the
    official code applies its lambda twice; the paper's one is meant), batch 1, lr 8e-5 constant for 20% of the
    steps then linearly to 0. OPEN: PatchNCE compares all five encoder levels (the official loss sees only the
    first); CUT's L1 identity on real spectra is kept at weight 1."""
    values = dict(architecture="paper", nce_layers=(0, 1, 2, 3, 4), nce_patches=256, lambda_gan=3.0, lambda_nce=10.0,
                  lambda_low=3.0, lambda_profile=3.0, lambda_ssim_real=3.0, lambda_ssim_generated=1.0, lr=8e-5,
                  lr_constant_fraction=0.2, batch_size=1)
    return StigConfig(**(values | overrides))


