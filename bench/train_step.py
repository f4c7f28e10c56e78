"""Cost of distillation, side by side in one run: one distillation step (student forward + backward with
taps, aligners and FFT losses, teacher forward) against one DDPM-only student step plus one teacher forward,
in float32 and in bf16 mixed precision (the student under autocast as Accelerate runs it, the teacher as
training.loss_terms runs it: held in the run's precision, under autocast).

    .venv/bin/python bench/train_step.py [--batch-size 32] [--rounds 7] [--precision no,bf16]

Models come from configs/default.yaml (student) and configs/teacher.yaml (the shipped teacher's
architecture, random weights: speed does not depend on them). The overhead ratio is what the taps, the 1x1
aligners and the FFT losses add; the teacher's share is its forward's part of a distillation step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from diffusers import DDPMScheduler, UNet2DModel

from wgunet import WGUNet
from wgunet.training.config import load_config
from wgunet.training.loop import MIXED_PRECISION, Distiller, attach_teacher, loss_terms, teacher_dtype


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds of 3 steps each (median reported)")
    parser.add_argument("--precision", default="no,bf16", help="mixed_precision values to compare (default no,bf16)")
    args = parser.parse_args()
    print(f"batch {args.batch_size} at 32x32, {torch.get_num_threads()} threads, median of {args.rounds} rounds")
    rows = {precision: measure(precision, args.batch_size, args.rounds) for precision in args.precision.split(",")}
    print(f"{'mixed_precision':16s} {'distil step':>12s} {'student step':>13s} {'teacher fwd':>12s} {'teacher share':>14s} "
          f"{'overhead':>9s}")
    for precision, ms in rows.items():
        baseline = ms["DDPM-only student step"] + ms["teacher forward"]
        print(f"{precision:16s} {ms['distillation step']:9.1f} ms {ms['DDPM-only student step']:10.1f} ms "
              f"{ms['teacher forward']:9.1f} ms {ms['teacher forward'] / ms['distillation step']:13.0%} "
              f"{ms['distillation step'] / baseline:8.2f}x")
    four_band, folded = four_band_comparison(args.batch_size, args.rounds)
    print(f"DDPM-only student step, float32: WG blocks with gates folded {folded:.1f} ms, four-band formulation "
          f"(reference) {four_band:.1f} ms: {four_band / folded:.2f}x")
    if "no" in rows and "bf16" in rows:
        print(f"bf16 / fp32 time: distillation step {rows['bf16']['distillation step'] / rows['no']['distillation step']:.2f}x, "
              f"teacher forward {rows['bf16']['teacher forward'] / rows['no']['teacher forward']:.2f}x")


def four_band_comparison(batch_size: int, rounds: int) -> tuple[float, float]:
    """Median ms of a DDPM-only student step with the WG blocks' four-band formulation and with the folded one
    they run, alternating in one run."""
    from wgunet.model.blocks import WGDown, WGUp
    from wgunet.model.wavelets import four_band_down, four_band_up

    def down(self, x, temb=None):
        return four_band_down(x, self.gate(x, temb), self.wavelet)

    def up(self, x, temb=None):
        return four_band_up(x, self.expand.weight, self.expand.bias, self.gate(x, temb), self.wavelet)

    config = load_config("configs/default.yaml")
    model = Distiller(WGUNet(**config.student), {}, {})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x0, generator = torch.rand(batch_size, 3, 32, 32) * 2 - 1, torch.Generator().manual_seed(0)
    folded = (WGDown.forward, WGUp.forward)

    def step():
        loss_terms(model, DDPMScheduler(), None, None, x0, generator, config)["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times = {"four-band": [], "folded": []}
    for _ in range(rounds):
        for name, (down_forward, up_forward) in (("four-band", (down, up)), ("folded", folded)):
            WGDown.forward, WGUp.forward = down_forward, up_forward
            step()  # warm-up of this variant
            start = time.perf_counter()
            for _ in range(3):
                step()
            times[name].append((time.perf_counter() - start) / 3 * 1e3)
    WGDown.forward, WGUp.forward = folded
    return statistics.median(times["four-band"]), statistics.median(times["folded"])


def measure(precision: str, batch_size: int, rounds: int) -> dict[str, float]:
    """Median milliseconds of a distillation step, a DDPM-only student step and a teacher forward."""
    torch.manual_seed(0)
    config = load_config("configs/default.yaml", [f"mixed_precision={precision}"])
    mixed = MIXED_PRECISION[precision]
    teacher = UNet2DModel(**load_config("configs/teacher.yaml").unet).eval().requires_grad_(False)
    teacher.to(teacher_dtype(config))
    scheduler = DDPMScheduler()
    distiller, taps = attach_teacher(WGUNet(**config.student), teacher, config.loss.features)
    plain = Distiller(WGUNet(**config.student), {}, {})
    x0 = torch.rand(batch_size, 3, 32, 32) * 2 - 1
    generator = torch.Generator().manual_seed(0)
    autocast = lambda: torch.autocast("cpu", dtype=mixed or torch.float32, enabled=mixed is not None)  # noqa: E731

    def step(model, teacher_arg, taps_arg):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        def run():
            with autocast():  # Accelerate's autocast around the prepared model's forward
                terms = loss_terms(model, scheduler, teacher_arg, taps_arg, x0, generator, config)
            terms["loss"].backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return run

    def teacher_forward():
        with torch.no_grad(), autocast():
            teacher(x0.to(teacher.dtype), torch.randint(0, 1000, (batch_size,))).sample
        taps.pop()

    candidates = {"distillation step": step(distiller, teacher, taps), "DDPM-only student step": step(plain, None, None),
                  "teacher forward": teacher_forward}
    for run in candidates.values():
        run()  # warm-up
    seconds = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            start = time.perf_counter()
            for _ in range(3):
                run()
            seconds[name].append((time.perf_counter() - start) / 3)
    return {name: statistics.median(s) * 1e3 for name, s in seconds.items()}


if __name__ == "__main__":
    main()
