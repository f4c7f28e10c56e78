"""Does every sampler give a model the images it was trained for? Statistics of one checkpoint's samples under
each sampler, next to the full ancestral chain (DDPM, every training step: the sampler the DDPM loss trains
for) and the real held-out patches, all on the same seeds.

    .venv/bin/python bench/samplers.py [--checkpoint assets/teacher] [--num-images 32] [--no-full-chain]

Rows marked "diffusers default" build the sampler the way diffusers does out of the box (DPM-Solver++ from the
DDPM config without thresholding; DDIM with use_clipped_model_output=False), against wgunet's sampler_config.
Columns: pixel std in [-1, 1], spread (std) of the per-image mean colour, share of saturated
pixels (|x| > 0.99), and the mean |dB| difference of the mean reduced spectrum from the full chain's and from
the real set's.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from wgunet.common.pixels import to_signed
from wgunet.evaluation.image_sets import load_image_set
from wgunet.evaluation.spectral import reduced_spectrum
from wgunet.sampling.samplers import SCHEDULERS, image_generator, load_pipeline, sample_images


def statistics(images: torch.Tensor) -> dict:
    x = to_signed(images)
    return {"std": x.std().item(), "spread": x.mean((2, 3)).std().item(),
            "saturated": (x.abs() > 0.99).float().mean().item(), "spectrum": reduced_spectrum(x)[1].mean(0)}


def db_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return (10 * torch.log10(a / b)).abs().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="assets/teacher", help="model to sample (default the shipped teacher)")
    parser.add_argument("--num-images", type=int, default=32, help="images per sampler, seeds 0..N-1")
    parser.add_argument("--no-full-chain", action="store_true", help="skip DDPM over every training step (slow)")
    args = parser.parse_args()

    real_images = load_image_set("patches:heldout", 32).images
    real = statistics(real_images)
    runs = [("ddpm", None, "full chain"), ("ddim", 50, ""), ("ddim", 50, "diffusers default"), ("ddim", 10, ""),
            ("dpm++", 20, ""), ("dpm++", 20, "diffusers default"), ("dpm++", 10, ""), ("ddpm", 100, "")]
    if args.no_full_chain:
        runs = runs[1:]
    rows = {}
    for scheduler, steps, note in runs:
        pipeline = load_pipeline(args.checkpoint, scheduler)
        steps = steps or pipeline.scheduler.config.num_train_timesteps
        indices = list(range(args.num_images))
        if note == "diffusers default" and scheduler == "dpm++":  # the DDPM config as it is: no thresholding
            pipeline.scheduler = SCHEDULERS["dpm++"].from_config({**pipeline.scheduler.config, "thresholding": False})
        if note == "diffusers default" and scheduler == "ddim":  # DDIMPipeline's default use_clipped_model_output
            images = pipeline(batch_size=args.num_images, generator=[image_generator(0, i) for i in indices],
                              num_inference_steps=steps, output_type="np", use_clipped_model_output=False).images
            images = (images * 255).round().astype(np.uint8)
        else:
            images = sample_images(pipeline, indices, 0, steps)
        name = f"{scheduler} {steps}" + (f" ({note})" if note else "")
        rows[name] = statistics(torch.from_numpy(images).permute(0, 3, 1, 2))
        print(f"  done: {name}", flush=True)

    full = next((v for k, v in rows.items() if "full chain" in k), None)
    print(f"\n{args.checkpoint}, {args.num_images} images per sampler (seeds 0..{args.num_images - 1}); real: "
          f"{len(real_images)} held-out patches\n")
    print("| sampler | pixel std | mean-colour spread | saturated | spectrum vs full chain (dB) | spectrum vs real (dB) |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| real patches | {real['std']:.3f} | {real['spread']:.3f} | {real['saturated']:.3f} | "
          f"{db_distance(real['spectrum'], full['spectrum']) if full else float('nan'):.2f} | 0 |")
    for name, s in rows.items():
        versus_full = db_distance(s["spectrum"], full["spectrum"]) if full else float("nan")
        print(f"| {name} | {s['std']:.3f} | {s['spread']:.3f} | {s['saturated']:.3f} | {versus_full:.2f} | "
              f"{db_distance(s['spectrum'], real['spectrum']):.2f} |")


if __name__ == "__main__":
    main()
