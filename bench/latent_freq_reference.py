"""The two clean references of L_freq's weight for latent teachers (loss.freq_reference), side by side.

    python bench/latent_freq_reference.py [--out runs/latent_freq_reference] [--steps 300]

On the tiny random VQModel and AutoencoderKL LDMs of tests/test_latents.py (16px images, 8px latents; the
teacher UNet pretrained for 150 DDPM steps): each distilled with loss.freq_reference latent and image from the
same seed, then 256 samples (DDIM 20) scored against the held-out patches. Runs and samples are reused.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_latents import latent_run, losses, make_ldm  # noqa: E402  (the tests' tiny LDMs)

from wgunet.evaluation.image_sets import load_image_set  # noqa: E402
from wgunet.evaluation.spectral import image_statistics, spectral_scores  # noqa: E402
from wgunet.sampling.samplers import run_sampling  # noqa: E402
from wgunet.training.config import load_config  # noqa: E402
from wgunet.training.loop import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/latent_freq_reference", help="where the teachers, runs and samples go")
    parser.add_argument("--steps", type=int, default=300, help="distillation steps per run")
    args = parser.parse_args()
    root = Path(args.out)
    real = image_statistics(load_image_set("patches:heldout", 16).images)
    print("| autoencoder | freq_reference | ddpm (first 50 -> last 50 steps) | spatial | freq | HF ratio | LSD (dB) |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("vq", "kl"):
        teacher = root / f"teacher-{kind}"
        if not teacher.exists():
            make_ldm(teacher, kind)
        for reference in ("latent", "image"):
            run = root / f"{kind}-{reference}"
            if not (run / "model").exists():
                train(load_config(None, latent_run(teacher, run, f"max_steps={args.steps}",
                                                   f"checkpoint_every={args.steps}", "lr=2e-3",
                                                   f"loss.freq_reference={reference}")))
            rows = losses(run)
            curve = [f"{np.mean([r[t] for r in rows[:50]]):.4f} -> {np.mean([r[t] for r in rows[-50:]]):.4f}"
                     for t in ("ddpm", "spatial", "freq")]
            samples = run / "samples"
            run_sampling(str(run / "model"), 256, samples, steps=20, resume=samples.exists())
            scores = spectral_scores(image_statistics(load_image_set(str(samples)).images), real, 200)
            print(f"| {kind} | {reference} | " + " | ".join(curve)
                  + f" | {scores.high_frequency_ratio} | {scores.log_spectral_distance_db} |")


if __name__ == "__main__":
    main()
