"""Cost of distillation, side by side in one run: one distillation step (student forward + backward with
taps, aligners and FFT losses, teacher forward) against one DDPM-only student step plus one teacher forward.

    .venv/bin/python bench/train_step.py [--batch-size 32] [--rounds 7]

Models come from configs/default.yaml (student) and configs/teacher.yaml (the shipped teacher's
architecture, random weights: speed does not depend on them). The ratio is the overhead that the
taps, the 1x1 aligners and the FFT losses add; the target is at most 1.3x.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from diffusers import DDPMScheduler, UNet2DModel

from wgunet import WGUNet
from wgunet.config import load_config
from wgunet.training import Distiller, attach_teacher, loss_terms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds of 3 steps each (median reported)")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = load_config("configs/default.yaml")
    teacher = UNet2DModel(**load_config("configs/teacher.yaml").unet).eval().requires_grad_(False)
    scheduler = DDPMScheduler()
    distiller, taps = attach_teacher(WGUNet(**config.student), teacher, config.loss.features)
    plain = Distiller(WGUNet(**config.student), {}, {})
    x0 = torch.rand(args.batch_size, 3, 32, 32) * 2 - 1
    generator = torch.Generator().manual_seed(0)

    def step(model, teacher_arg, taps_arg):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        def run():
            terms = loss_terms(model, scheduler, teacher_arg, taps_arg, x0, generator, config)
            terms["loss"].backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return run

    def teacher_forward():
        with torch.no_grad():
            teacher(x0, torch.randint(0, 1000, (args.batch_size,))).sample
        taps.pop()

    candidates = {"distillation step": step(distiller, teacher, taps), "DDPM-only student step": step(plain, None, None),
                  "teacher forward": teacher_forward}
    for run in candidates.values():
        run()  # warm-up
    seconds = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, run in candidates.items():
            start = time.perf_counter()
            for _ in range(3):
                run()
            seconds[name].append((time.perf_counter() - start) / 3)
    ms = {name: statistics.median(s) * 1e3 for name, s in seconds.items()}
    baseline = ms["DDPM-only student step"] + ms["teacher forward"]
    print(f"batch {args.batch_size} at 32x32, {torch.get_num_threads()} threads, median of {args.rounds} rounds")
    for name, value in ms.items():
        print(f"{name:28s} {value:8.1f} ms")
    print(f"{'student step + teacher fwd':28s} {baseline:8.1f} ms")
    print(f"overhead of taps + aligners + FFT losses: {ms['distillation step'] / baseline:.2f}x (target <= 1.3x)")


if __name__ == "__main__":
    main()
