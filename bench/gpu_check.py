"""The GPU check, in one go on one CUDA GPU: the whole test suite, then the timings, in one table.

    python bench/gpu_check.py [--budget 480] [--suite-timeout 240] [--out runs/gpu_check]

1. The test suite (slow tests too) on the GPU: `pytest -n WORKERS tests`; its summary line.
2. The GPU's bf16 matmul rate, measured here (8192^3 torch.mm), which every row's share is set against.
3. Training (configs/default.yaml, bf16 mixed precision, as train.py runs it) at batch 32, 256 and 1024, eager
   and with CUDA graphs (compile: true): steps/s and images/s in the steady state, from the wall times that
   metrics.jsonl logs, and the compilation apart (the first log row's time less its steady-state share).
4. Sampling, DDIM 10, at batch 256 and 2048, of the default student, the shipped teacher's architecture and the
   google/ddpm-cifar10-32 architecture (random weights: speed does not depend on them), float32 and bfloat16,
   eager and with CUDA graphs (sample.py --compile).
5. What the seed promises here: the largest pixel difference between images drawn at two batch sizes, and
   between a run and its resumed twin (sample.py --resume draws the same batches, so 0 where kernels are
   deterministic).
Rows run in that order of priority until --budget seconds have passed; a row not reached is listed as such.
It installs nothing and reaches no network. results.json and the table (table.md) go to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel

from wgunet import WGUNet
from wgunet.common.compilation import compiled
from wgunet.model.macs import macs_per_image
from wgunet.sampling.samplers import build_pipeline, run_sampling, sample_images
from wgunet.training.config import load_config
from wgunet.training.loop import train
from wgunet.training.teacher import teacher_architecture


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int) -> float:
    """The device's matmul rate in this dtype: 2 n^3 flops per torch.mm, median of 10."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    times = []
    for _ in range(10):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e12


def peak_memory(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def training_row(batch: int, graphs: bool, steps: int, out: Path, device: torch.device) -> dict:
    """Distil ``steps`` steps as train.py does; the steady state from the logged wall times of its second half."""
    folder = out / f"train_b{batch}_{'graphs' if graphs else 'eager'}"
    shutil.rmtree(folder, ignore_errors=True)
    log_every = max(1, steps // 10)
    config = load_config("configs/default.yaml", [
        f"max_steps={steps}", f"checkpoint_every={steps}", f"log_every={log_every}", "eval_every=0",
        "log_with=none", "mixed_precision=bf16", f"batch_size={batch}", f"compile={str(graphs).lower()}",
        "warmup_steps=0", f"output_dir={folder}"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train(config)
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    first, middle, last = rows[0], rows[len(rows) // 2], rows[-2]  # the last row also holds the checkpoint
    per_step = (last["seconds"] - middle["seconds"]) / (last["step"] - middle["step"])
    macs = 3 * (macs_per_image(WGUNet(**config.student)) + macs_per_image(teacher_module()) / 3)  # fwd+bwd, teacher fwd
    return {"job": f"train batch {batch}, bf16, {'CUDA graphs' if graphs else 'eager'}",
            "rate": f"{1 / per_step:.1f} steps/s, {batch / per_step:.0f} img/s",
            "tflops": 2 * macs * batch / per_step / 1e12,
            "compile_s": max(0.0, first["seconds"] - first["step"] * per_step) if graphs else 0.0,
            "peak_GiB": peak_memory(device)}


def teacher_module() -> UNet2DModel:
    return UNet2DModel(**load_config("configs/teacher.yaml").unet)


def sampling_row(name: str, model: torch.nn.Module, batch: int, dtype: str, graphs: bool, steps: int,
                 device: torch.device) -> dict:
    """DDIM ``steps`` at one batch: images/s over 3 timed batches after the first (which compiles)."""
    torch.manual_seed(0)
    pipeline = build_pipeline(model.eval(), DDPMScheduler(), scheduler="ddim", device=str(device))
    if graphs:
        compiled(pipeline.unet)
    precision = getattr(torch, dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    sample_images(pipeline, list(range(batch)), 0, steps, precision)
    sync(device)
    first = time.perf_counter() - start
    times = []
    for _ in range(3):
        start = time.perf_counter()
        sample_images(pipeline, list(range(batch)), 0, steps, precision)
        sync(device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"job": f"sample {name}, batch {batch}, DDIM {steps}, {dtype}, {'CUDA graphs' if graphs else 'eager'}",
            "rate": f"{batch / seconds:.0f} img/s", "tflops": 2 * macs_per_image(model) * steps * batch / seconds / 1e12,
            "compile_s": max(0.0, first - seconds) if graphs else 0.0, "peak_GiB": peak_memory(device)}


def seed_rows(out: Path, num: int, batches: tuple[int, int]) -> list[dict]:
    """Largest |difference| in pixel values (0-255) between two batch sizes, and after a resume."""
    folders = {b: out / f"seed_b{b}" for b in batches}
    for b, folder in folders.items():
        run_sampling("assets/teacher", num, folder, steps=10, batch_size=b, overwrite=True)
    images = {b: np.load(folder / "samples.npz")["images"].astype(int) for b, folder in folders.items()}
    resumed = out / "seed_resumed"
    shutil.rmtree(resumed, ignore_errors=True)
    shutil.copytree(folders[batches[0]], resumed)
    for index in range(1, num, 3):  # every third image missing, as a kill leaves a folder at worst
        (resumed / f"{index:06d}.png").unlink()
    (resumed / "samples.npz").unlink()
    run_sampling("assets/teacher", num, resumed, steps=10, batch_size=batches[0], resume=True)
    again = np.load(resumed / "samples.npz")["images"].astype(int)
    nan = float("nan")
    return [{"job": f"teacher DDIM 10, batch {batches[0]} vs {batches[1]}: max |pixel difference|",
             "rate": str(np.abs(images[batches[0]] - images[batches[1]]).max()), "tflops": nan, "compile_s": nan,
             "peak_GiB": nan},
            {"job": f"teacher DDIM 10, resumed vs uninterrupted (batch {batches[0]}): max |pixel difference|",
             "rate": str(np.abs(again - images[batches[0]]).max()), "tflops": nan, "compile_s": nan, "peak_GiB": nan}]


def run_suite(workers: int, timeout: int) -> str:
    """The whole test suite on this machine's GPU; its last summary line."""
    try:
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", str(workers), "-p", "no:cacheprovider",
                                 "tests"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as stopped:
        tail = (stopped.stdout or b"").decode(errors="replace") if isinstance(stopped.stdout, bytes) else (stopped.stdout or "")
        return f"not finished in {timeout} s ({tail.count('.')} dots printed)"
    print(result.stdout[-6000:])
    lines = [line for line in result.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    return lines[-1].strip("= ") if lines else f"exit {result.returncode}: {result.stderr[-300:]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=480, help="seconds for everything (default 480)")
    parser.add_argument("--suite-timeout", type=int, default=240, help="seconds for the test suite (default 240)")
    parser.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1), help="pytest workers")
    parser.add_argument("--skip-suite", action="store_true", help="timings only")
    parser.add_argument("--smoke", action="store_true",
                        help="toy sizes on whatever device is here: checks that the script runs, measures nothing")
    parser.add_argument("--out", default="runs/gpu_check", help="output folder (default runs/gpu_check)")
    args = parser.parse_args()
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if device.type != "cuda" and not args.smoke:
        print("error: no CUDA GPU here; this check measures a GPU (on a CPU: bench/train_step.py, bench/sampling.py, "
              "or --smoke to try the script)", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + args.budget
    suite = "skipped" if args.skip_suite or args.smoke else run_suite(args.workers, args.suite_timeout)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke run)"
    peak = matmul_tflops(device, torch.bfloat16, 256 if args.smoke else 8192)
    # smoke: a few images and steps, since a CPU without AVX-512 BF16 or AMX emulates bf16 (about 18x slower)
    train_batches, sample_batches, steps, ddim = (((2, 4), (2, 4), 6, 2) if args.smoke else
                                                  ((32, 256, 1024), (256, 2048), 200, 10))
    models = {"student": lambda: WGUNet(**load_config("configs/default.yaml").student), "shipped teacher": teacher_module,
              "cifar10 arch": lambda: teacher_architecture("google/ddpm-cifar10-32")}
    if args.smoke:  # the largest model and the compiled rows take minutes on a CPU
        models.pop("cifar10 arch")
    graphs = (False,) if args.smoke else (False, True)
    sample = lambda n, b, dtype, g: lambda: sampling_row(n, models[n](), b, dtype, g, ddim, device)  # noqa: E731
    jobs = [sample(n, b, "bfloat16", False) for b in sample_batches for n in models]
    jobs += [lambda b=b: training_row(b, False, steps, out, device) for b in train_batches]
    jobs += [lambda: seed_rows(out, 8 if args.smoke else 512, (4, 2) if args.smoke else (256, 64))]
    if not args.smoke:  # the goals' rows first: student and teacher with graphs, training at batch 256 with graphs
        jobs += [sample(n, b, "bfloat16", True) for b in sample_batches[::-1] for n in ("student", "shipped teacher")]
        jobs += [lambda b=b: training_row(b, True, steps, out, device) for b in (256, 32, 1024)]
        jobs += [sample("cifar10 arch", b, "bfloat16", True) for b in sample_batches]
    jobs += [sample(n, b, "float32", g) for g in graphs for b in sample_batches for n in models]
    rows, skipped = [], 0
    for job in jobs:
        if time.perf_counter() > deadline:
            skipped += 1
            continue
        result = job()
        rows += result if isinstance(result, list) else [result]
        print(rows[-1], flush=True)
    table = [f"{name}, torch {torch.__version__}; bf16 matmul {peak:.0f} TFLOP/s measured here; suite: {suite}", "",
             "| job | rate | share of bf16 matmul | compilation (s) | peak memory (GiB) |", "|---|---:|---:|---:|---:|"]
    shown = lambda value, spec: "-" if value != value else format(value, spec)  # noqa: E731  (nan: not measured)
    table += [f"| {r['job']} | {r['rate']} | {shown(r['tflops'] / peak, '.2%')} | {shown(r['compile_s'], '.1f')} | "
              f"{shown(r['peak_GiB'], '.2f')} |" for r in rows]
    if skipped:
        table.append(f"\n{skipped} rows not reached within --budget {args.budget:.0f} s")
    print("\n".join(table))
    (out / "table.md").write_text("\n".join(table) + "\n")
    (out / "results.json").write_text(json.dumps({"device": name, "torch": torch.__version__, "bf16_tflops": peak,
                                                   "suite": suite, "rows": rows, "not_reached": skipped}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
