"""Sampling throughput, side by side in one run: the default student vs the shipped teacher vs a
google/ddpm-cifar10-32-sized teacher, same scheduler (DDIM), same step count, same batch.

    .venv/bin/python bench/sampling.py [--num 16] [--steps 10] [--rounds 3]

Speed does not depend on the weights, so the models are built from their configs (the shipped teacher
from configs/teacher.yaml, the student from configs/default.yaml) with random weights; nothing is
downloaded. Each round times every model once, in turn; the median over rounds is reported.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from diffusers import DDIMScheduler, DDPMPipeline, UNet2DModel

from wgunet import WGUNet
from wgunet.config import load_config
from wgunet.sampling import sample_images
from wgunet.stats import count_parameters, macs_per_image
from wgunet.teacher import teacher_architecture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=16, help="images per timed batch")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (median reported)")
    args = parser.parse_args()
    torch.manual_seed(0)
    models = {
        "student (configs/default.yaml)": WGUNet(**load_config("configs/default.yaml").student),
        "shipped teacher (configs/teacher.yaml)": UNet2DModel(**load_config("configs/teacher.yaml").unet),
        "google/ddpm-cifar10-32 architecture": teacher_architecture("google/ddpm-cifar10-32"),
    }
    pipelines = {}
    for name, model in models.items():
        pipelines[name] = DDPMPipeline(unet=model.eval(), scheduler=DDIMScheduler())
        pipelines[name].set_progress_bar_config(disable=True)
        sample_images(pipelines[name], [0], 0, 2)  # warm-up
    seconds = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, pipeline in pipelines.items():
            start = time.perf_counter()
            sample_images(pipeline, list(range(args.num)), 0, args.steps)
            seconds[name].append(time.perf_counter() - start)
    student = next(iter(models))
    speed = {name: args.num / statistics.median(s) for name, s in seconds.items()}
    print(f"DDIM, {args.steps} steps, batch {args.num}, {torch.get_num_threads()} threads, median of {args.rounds} rounds")
    print(f"{'model':40s} {'params':>8s} {'GMACs':>7s} {'img/s':>8s} {'student speed-up':>17s} {'MAC ratio':>10s}")
    for name, model in models.items():
        print(f"{name:40s} {count_parameters(model) / 1e6:7.2f}M {macs_per_image(model) / 1e9:7.3f} {speed[name]:8.2f} "
              f"{speed[student] / speed[name]:16.1f}x {macs_per_image(model) / macs_per_image(models[student]):9.1f}x")


if __name__ == "__main__":
    main()
