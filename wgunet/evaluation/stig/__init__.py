"""STIG: Lee, Jung, Seo, "Spectrum Translation for Refinement of Image Generation (STIG) Based on Contrastive
Learning and Spectral Filter Profile", AAAI 2024.

A generated image's magnitude spectrum is translated toward the domain of real spectra, then the image is
rebuilt from the refined magnitude and its own phase:

    x -> F = DFT(x) per channel, centred -> log(|F| + floor) -> translator -> exp(.) - floor = |F'|
      -> x' = IDFT(|F'| e^{i angle F}), clipped to [0, 1]

Losses (CUT, Park et al. 2020, as STIG uses them, plus STIG's own terms; scaled down for 32x32 CPU runs):
    L = l_gan * LSGAN(PatchGAN on spectra) + l_profile * LSGAN(profile discriminator)   [STIG's spectral profile]
        + l_nce * PatchNCE(input, output) + l_nce * PatchNCE(real, translator(real))    [CUT's identity NCE]
        + l_idt * L1(translator(real), real)           [identity on real spectra]
        + l_ssim_real * (1 - SSIM(x'_real, x_real)) + l_ssim_gen * (1 - SSIM(x'_gen, x_gen))   [STIG, image domain]
        + l_low * L1 over the low frequencies          [keep what the generator got right]
    and the DC term (each channel's mean) passes through unchanged.

What differs from the paper: the translator is a small CUT ResNet, not its UNet++ (24.8 M parameters); it works
on log(|F| + floor), not on log(1 + |F|) min-max scaled per batch; the discriminators are LSGAN without STIG's
sigmoid; PatchNCE compares three encoder levels with detached keys as the paper and CUT describe (the official
code's loss sees only level 0, and applies lambda_NCE twice); the schedule is CUT's, for 1000 steps, not the
paper's batch 1 over 10 epochs. Each of STIG's additions has a weight (0 switches it off) for ablation.
"""

from wgunet.evaluation.stig.config import StigConfig, StigError, paper_config
from wgunet.evaluation.stig.refiner import load_refiner, refine, save_refiner
from wgunet.evaluation.stig.training import train_refiner

__all__ = ["StigConfig", "StigError", "load_refiner", "paper_config", "refine", "save_refiner", "train_refiner"]
