"""STIG on one set of generated samples over several refiner seeds: each score's mean and spread.

    .venv/bin/python bench/stig_seeds.py [--samples runs/default/report/samples/student] [--seeds 0 1 2 3 4]

Adversarial training does not repeat bit for bit across machines (thread counts and CPU kernels change the order
of floating-point sums, and the game amplifies the difference), so the README gives STIG's effect on the default
student as mean and range over seeds. Each seed trains the default StigConfig (1000 steps, ~2 min on 2 cores)
on the samples against the held-out real patches and scores the refined samples against those patches.
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from wgunet.evaluation.features import feature_extractor, teacher_features
from wgunet.evaluation.fid import FidKid
from wgunet.evaluation.image_sets import load_image_set
from wgunet.evaluation.spectral import image_statistics, spectral_scores
from wgunet.evaluation.stig import StigConfig, load_refiner, refine, train_refiner

SCORES = ("high_frequency_ratio", "log_spectral_distance_db", "lfd_stig", "lfd_mean_magnitude", "band_error_low",
          "band_error_mid", "band_error_high")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", default="runs/default/report/samples/student", help="generated set to refine")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="refiner training seeds")
    args = parser.parse_args()
    samples = load_image_set(args.samples)
    real = load_image_set("patches:heldout", samples.size[0]).images
    statistics = image_statistics(real)
    scorer = FidKid(real, feature_extractor("teacher", teacher_features("assets/teacher")))
    rows = {"before": score(samples.images, statistics, scorer)}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as folder:
            refiner = train_refiner(samples.images, real, folder, StigConfig(seed=seed, checkpoint_every=10_000))
            rows[f"seed {seed}"] = score(refine(load_refiner(refiner), samples.images), statistics, scorer)
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[f"seed {seed}"].items()), flush=True)
    print(f"\n| {args.samples} vs held-out real | before | after STIG: mean [min, max] over seeds {args.seeds} |")
    print("|---|---:|---:|")
    for key in rows["before"]:
        after = torch.tensor([row[key] for name, row in rows.items() if name != "before"])
        print(f"| {key} | {rows['before'][key]:.3f} | {after.mean():.3f} [{after.min():.3f}, {after.max():.3f}] |")


def score(images: torch.Tensor, real: dict, scorer: FidKid) -> dict[str, float]:
    scores = spectral_scores(image_statistics(images), real, bootstrap=0)
    fid = scorer(images)
    return {**{k: getattr(scores, k).value for k in SCORES}, "fid_teacher_features": fid.fid.value,
            "kid_teacher_features": fid.kid_mean}


if __name__ == "__main__":
    main()
