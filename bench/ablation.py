"""What distillation buys, on the embedded default: the same step budget and seeds for every variant.

    .venv/bin/python bench/ablation.py [--out runs/ablation] [--num-images 256]

Variants: the shipped teacher; the WG-UNet student distilled with DDPM + spatial + frequency losses,
with DDPM + spatial, with DDPM alone; and a plain diffusers UNet2DModel of the student's MACs trained with
DDPM alone. Each student trains as configs/default.yaml says (1000 steps, batch 32, seed 0), samples
--num-images images (DDIM 50, seed 0) and is scored against the held-out real patches (FID on the shipped teacher's
features: comparable within this table only); FINC's top eigenvalue is taken against the teacher's samples
(teacher features). Finished runs and samples are reused, so an
interrupted ablation resumes. Prints a markdown table and writes OUT/ablation.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wgunet.common.files import write_json
from wgunet.common.results import plain
from wgunet.evaluation.features import cached_features, feature_extractor, teacher_features
from wgunet.evaluation.fid import FidKid
from wgunet.evaluation.finc import finc
from wgunet.evaluation.image_sets import load_image_set
from wgunet.evaluation.spectral import image_statistics, spectral_scores
from wgunet.model.macs import count_parameters, macs_per_image
from wgunet.sampling.loading import load_model
from wgunet.sampling.samplers import run_sampling
from wgunet.training.config import load_config
from wgunet.training.loop import train

PLAIN_UNET = ["mode=teacher", "unet.block_out_channels=[24,40,40]", "unet.layers_per_block=1",
              "unet.down_block_types=[DownBlock2D,AttnDownBlock2D,DownBlock2D]",
              "unet.up_block_types=[UpBlock2D,AttnUpBlock2D,UpBlock2D]", "unet.norm_num_groups=8",
              "unet.attention_head_dim=8"]  # 0.116 GMACs, the student's 0.113
VARIANTS = {
    "WG-UNet, DDPM + spatial + freq": [],
    "WG-UNet, DDPM + spatial": ["loss.lambda_freq=0"],
    "WG-UNet, DDPM only": ["loss.lambda_spatial=0", "loss.lambda_freq=0"],
    "UNet2DModel (same MACs), DDPM only": PLAIN_UNET,
}
TEACHER = "assets/teacher"
BUDGET = ["max_steps=1000", "batch_size=32", "lr=1e-3", "warmup_steps=100", "ema_decay=0.995",
          "checkpoint_every=250", "seed=0"]


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.replace("+", "plus")).strip("_")


def checkpoint_for(name: str, overrides: list[str], out: Path) -> str:
    """Train the variant unless its exported model is already there."""
    folder = out / slug(name)
    if not (folder / "model").is_dir():
        base = "configs/teacher.yaml" if "mode=teacher" in overrides else "configs/default.yaml"
        train(load_config(base, overrides + BUDGET + [f"output_dir={folder}"]), resume=True)
    return str(folder / "model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("--num-images", type=int, default=256, help="images sampled per model")
    args = parser.parse_args()
    out = Path(args.out)
    checkpoints = {"shipped teacher": TEACHER}
    checkpoints.update({name: checkpoint_for(name, overrides, out) for name, overrides in VARIANTS.items()})
    real_images = load_image_set("patches:heldout", 32).images
    extractor = feature_extractor("teacher", teacher_features(TEACHER))
    real, fid_scorer = image_statistics(real_images), FidKid(real_images, extractor)
    rows, reference_features = {}, None
    for name, checkpoint in checkpoints.items():
        samples = out / "samples" / slug(name)
        record = run_sampling(checkpoint, args.num_images, samples, scheduler="ddim", steps=50, seed=0,
                              resume=samples.is_dir())
        image_set = load_image_set(samples)
        scores = spectral_scores(image_statistics(image_set.images), real)
        features = cached_features(image_set, extractor, out / "feature_cache")
        if reference_features is None:
            reference_features, top = features, float("nan")  # the teacher is the reference
        else:
            modes = finc(features, reference_features, r=2000).test_modes.eigenvalues
            top = float(modes[0]) if len(modes) else 0.0
        model = load_model(checkpoint).model
        rows[name] = {"GMACs": macs_per_image(model) / 1e9, "params_M": count_parameters(model) / 1e6,
                      "images_per_second": record["images_per_second"],
                      **{k: plain(getattr(scores, k)) for k in ("log_spectral_distance_db", "lfd_mean_magnitude", "high_frequency_ratio")},
                      "fid_teacher": plain(fid_scorer(image_set.images).fid), "finc_top_vs_teacher": top}
    write_json(out / "ablation.json", rows)
    print("| model | GMACs | params (M) | img/s (DDIM 50) | LSD dB | LFD (mean magnitude) | HF ratio | FID (teacher features) | FINC top vs teacher |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        speed = f"{r['images_per_second']:.1f}" if r["images_per_second"] == r["images_per_second"] else "reused"
        top = "-" if name == "shipped teacher" else f"{r['finc_top_vs_teacher']:.3f}"
        cells = [with_interval(r[k]) for k in ("log_spectral_distance_db", "lfd_mean_magnitude", "high_frequency_ratio", "fid_teacher")]
        print(f"| {name} | {r['GMACs']:.3f} | {r['params_M']:.2f} | {speed} | " + " | ".join(cells) + f" | {top} |")


def with_interval(score: dict) -> str:
    return f"{score['value']:.3g} [{score['ci95'][0]:.3g}, {score['ci95'][1]:.3g}]"


if __name__ == "__main__":
    main()
