"""Sampling throughput, side by side in one run: the default student vs the shipped teacher vs a
google/ddpm-cifar10-32-sized teacher, same scheduler (DDIM), same step count, same batch.

    .venv/bin/python bench/sampling.py [--batch-sizes 16,128] [--steps 10] [--rounds 3]

Speed does not depend on the weights, so the models are built from their configs (the shipped teacher
from configs/teacher.yaml, the student from configs/default.yaml) with random weights; nothing is
downloaded. Each round times every model once, in turn; the median over rounds is reported. Each model's
achieved arithmetic rate (GMACs per image x steps x images/s) is set against the machine's matmul rate measured
in the same run (a 2048 x 2048 torch.mm), the fraction of peak each model reaches. With --compile every model
runs through torch.compile as `sample.py --compile` runs it, compiled afresh for each batch size (as one sample.py
run compiles for its batch); the compilation (the first call) is timed and printed apart from the steady state.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from diffusers import DDPMScheduler, UNet2DModel

from wgunet import WGUNet
from wgunet.common.compilation import compile_problem, compiled
from wgunet.model.macs import count_parameters, macs_per_image
from wgunet.sampling.samplers import build_pipeline, sample_images
from wgunet.training.config import load_config
from wgunet.training.teacher import teacher_architecture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="16,128", help="images per timed batch, comma-separated (default 16,128: "
                        "batch 16 and sample.py's default batch at 32x32)")
    parser.add_argument("--steps", type=int, default=10, help="DDIM steps")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (median reported)")
    parser.add_argument("--compile", action="store_true", help="torch.compile every model, as sample.py --compile does")
    args = parser.parse_args()
    if args.compile and compile_problem():  # compiled() would fall back to eager under a "torch.compile" label
        sys.exit(f"error: torch.compile is not possible here ({compile_problem()}); run without --compile")
    torch.manual_seed(0)
    models = {
        "student (configs/default.yaml)": WGUNet(**load_config("configs/default.yaml").student),
        "shipped teacher (configs/teacher.yaml)": UNet2DModel(**load_config("configs/teacher.yaml").unet),
        "google/ddpm-cifar10-32 architecture": teacher_architecture("google/ddpm-cifar10-32"),
    }
    pipelines = {}
    for name, model in models.items():
        pipelines[name] = build_pipeline(model.eval(), DDPMScheduler())  # DDIM, as sample.py builds it
        sample_images(pipelines[name], [0], 0, 2)  # warm-up
    student = next(iter(models))
    device = pipelines[student].device
    peak = matmul_gmacs_per_second(device)
    print(f"DDIM, {args.steps} steps, {torch.get_num_threads()} threads, median of {args.rounds} rounds, "
          f"{'torch.compile' if args.compile else 'eager'}; torch.mm 2048^2 reaches {peak:.0f} GMAC/s here "
          f"(float32, on {device}, where the models run)")
    for num in (int(n) for n in args.batch_sizes.split(",")):
        if args.compile:
            torch._dynamo.reset()  # a fresh compilation at this batch size, as one sample.py run makes
            compile_seconds = {}
            for name, pipeline in pipelines.items():
                compiled(pipeline.unet)
                start = time.perf_counter()
                sample_images(pipeline, list(range(num)), 0, 1)
                compile_seconds[name] = time.perf_counter() - start
            print(f"\nbatch {num}: compilation (first call, not in the speeds): "
                  + ", ".join(f"{name} {s:.0f} s" for name, s in compile_seconds.items()))
        seconds = {name: [] for name in models}
        for _ in range(args.rounds):
            for name, pipeline in pipelines.items():
                start = time.perf_counter()
                sample_images(pipeline, list(range(num)), 0, args.steps)  # returns numpy: the device has finished
                seconds[name].append(time.perf_counter() - start)
        speed = {name: num / statistics.median(s) for name, s in seconds.items()}
        print(f"\nbatch {num}")
        print(f"{'model':40s} {'params':>8s} {'GMACs':>7s} {'img/s':>8s} {'student speed-up':>17s} {'MAC ratio':>10s} "
              f"{'GMAC/s':>8s} {'of peak':>8s}")
        for name, model in models.items():
            rate = macs_per_image(model) / 1e9 * args.steps * speed[name]
            print(f"{name:40s} {count_parameters(model) / 1e6:7.2f}M {macs_per_image(model) / 1e9:7.3f} "
                  f"{speed[name]:8.2f} {speed[student] / speed[name]:16.1f}x "
                  f"{macs_per_image(model) / macs_per_image(models[student]):9.1f}x {rate:8.1f} {rate / peak:8.1%}")


def matmul_gmacs_per_second(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """The float32 matmul rate of the device the models run on: n^3 multiply-adds per torch.mm, median of the
    repeats (waiting for the device each time)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        times.append(time.perf_counter() - start)
    return n**3 / statistics.median(times) / 1e9


def sync(device: torch.device) -> None:
    if device.type != "cpu":
        torch.accelerator.synchronize(device)


if __name__ == "__main__":
    main()
