"""FID and KID along degradation ladders of held-out real patches, next to RGB noise and model samples.

    .venv/bin/python bench/fid_ladder.py [--features teacher] [--teacher assets/teacher] [--samples DIR ...]

The held-out patches are split in two (seeded): 512 are the reference, 256 others are degraded step by step
(wgunet/evaluation/ladder.py: noise, blur, colour shift). A feature space that measures something gives growing distances
along every ladder and scores RGB noise far worse than any model's samples. Each --samples folder (e.g. a
report's samples/teacher) is scored as one more row.
"""

from __future__ import annotations

import argparse

import torch

from wgunet.evaluation.features import feature_extractor, teacher_features
from wgunet.evaluation.fid import FidKid
from wgunet.evaluation.image_sets import load_image_set
from wgunet.evaluation.ladder import degradation_ladders, rgb_noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", default="teacher", help="FID/KID features (teacher, inception, dinov2)")
    parser.add_argument("--teacher", default="assets/teacher", help="UNet2DModel for --features teacher")
    parser.add_argument("--samples", nargs="*", default=[], help="sample folders scored as extra rows")
    args = parser.parse_args()
    real = load_image_set("patches:heldout", 32).images
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(0))
    reference, clean = real[order[:512]], real[order[512:768]]
    scorer = FidKid(reference, feature_extractor(args.features, teacher_features(args.teacher)), bootstrap=0)
    print(f"features: {scorer.label}\nreference: 512 held-out patches; each row 256 images\n")
    print("| set | level | FID | KID |\n|---|---:|---:|---:|")
    for name, ladder in degradation_ladders(clean).items():
        for level, images in ladder:
            scores = scorer(images)
            print(f"| {name} | {level} | {scores.fid.value:.3f} | {scores.kid_mean:.4f} |", flush=True)
    scores = scorer(rgb_noise(clean.shape))
    print(f"| uniform RGB noise | - | {scores.fid.value:.3f} | {scores.kid_mean:.4f} |")
    for folder in args.samples:
        images = load_image_set(folder).first(256).images
        scores = scorer(images)
        print(f"| {folder} ({len(images)} images) | - | {scores.fid.value:.3f} | {scores.kid_mean:.4f} |")


if __name__ == "__main__":
    main()
