"""STIG's restoration task over several seeds: the numbers behind the README's STIG table.

    .venv/bin/python bench/stig_restoration.py [--seeds 0 1 2 3 4] [--lambda-gan 5] [--variant stig|cut|first|paper] [--steps 1000]

The task of tests/test_stig.py (which pins seed 0): 512 held-out real patches, Gaussian-blurred (sigma 1 px),
a refiner trained for the default 1000 steps on them against the other held-out patches, scored against the
originals. Per seed: high-frequency gap cut, LFD cut, PSNR before and after (~85 s a seed on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from wgunet.evaluation.fid import psnr
from wgunet.evaluation.image_sets import load_image_set
from wgunet.evaluation.ladder import circular_blur
from wgunet.evaluation.spectral import image_statistics, spectral_scores
from wgunet.evaluation.stig import StigConfig, load_refiner, paper_config, refine, train_refiner

CUT_ONLY = {"lambda_profile": 0.0, "lambda_ssim_real": 0.0, "lambda_ssim_generated": 0.0}
VARIANTS = {"stig": {}, "cut": CUT_ONLY, "first": CUT_ONLY | {"nce_detach_keys": False}, "paper": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="refiner training seeds")
    parser.add_argument("--lambda-gan", type=float, default=StigConfig.lambda_gan, help="adversarial weight")
    parser.add_argument("--variant", default="stig", choices=list(VARIANTS),
                        help="stig: the default config, with STIG's profile discriminator and SSIM terms; cut: without "
                        "them (CUT's losses only); first: cut with PatchNCE keys not detached (the project's first "
                        "version); paper: stig.paper_config (UNet++ translator, batch 1, lr 8e-5)")
    parser.add_argument("--steps", type=int, default=1000, help="refiner training steps")
    args = parser.parse_args()
    images = load_image_set("patches:heldout", 32).images
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    originals, real = images[order[:512]], images[order[512:]]
    blurred = circular_blur(originals)
    target = image_statistics(originals)
    before = spectral_scores(image_statistics(blurred), target, bootstrap=10)
    gap_before = abs(1 - before.high_frequency_ratio.value)
    print(f"blurred: HF ratio {before.high_frequency_ratio.value:.4f}, PSNR {psnr(blurred, originals):.2f} dB")
    print("| seed | HF gap cut | HF ratio after | LFD (mean magnitude) cut | LFD (STIG) before -> after | PSNR after (dB) | seconds |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for seed in args.seeds:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            if args.variant == "paper":
                config = paper_config(seed=seed, checkpoint_every=10_000, steps=args.steps)
            else:
                config = StigConfig(seed=seed, lambda_gan=args.lambda_gan, checkpoint_every=10_000, steps=args.steps,
                                    **VARIANTS[args.variant])
            refined = refine(load_refiner(train_refiner(blurred, real, folder, config)), blurred)
        after = spectral_scores(image_statistics(refined), target, bootstrap=10)
        ratio = after.high_frequency_ratio.value
        print(f"| {seed} | {1 - abs(1 - ratio) / gap_before:.0%} | {ratio:.2f} | "
              f"{1 - after.lfd_mean_magnitude.value / before.lfd_mean_magnitude.value:.0%} | "
              f"{before.lfd_stig.value:.2f} -> {after.lfd_stig.value:.2f} | {psnr(refined, originals):.2f} | "
              f"{time.perf_counter() - started:.0f} |", flush=True)


if __name__ == "__main__":
    main()
