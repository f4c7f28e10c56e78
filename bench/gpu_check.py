"""The GPU check: one script that measures the project's main jobs on one CUDA GPU, for the README.

    python bench/gpu_check.py [--steps 300] [--images 2000] [--out runs/gpu_check]

1. distils configs/default.yaml for --steps steps in bf16 mixed precision, eager and with compile: true;
2. samples --images images (DDIM 50, default batch) from the compiled-run student and from the shipped teacher;
3. runs eval.py report on them (the samples are reused);
and prints steps/s, images/s, wall time and peak GPU memory of each, plus the card's name; results.json in --out.
Training rates include the first steps and, with compile, the compilation: compare the two training rows for
what compile gives over a run of this length. A rerun with the same --out reuses what is there (resume).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from wgunet.config import load_config
from wgunet.report import build_report
from wgunet.sampling import run_sampling
from wgunet.training import train


def measured(work) -> tuple[object, float, float]:
    """(result, seconds, peak GPU memory in GiB) of ``work()``."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = work()
    torch.cuda.synchronize()
    return result, time.perf_counter() - started, torch.cuda.max_memory_allocated() / 2**30


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="distillation steps per training run (default 300)")
    parser.add_argument("--images", type=int, default=2000, help="images sampled per model (default 2000)")
    parser.add_argument("--out", default="runs/gpu_check", help="output folder (default runs/gpu_check)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA GPU here; this check measures GPU speed (on CPU, see bench/train_step.py)", file=sys.stderr)
        return 2
    out = Path(args.out)
    rows, student = [], None
    for compile in (False, True):
        name = "compiled" if compile else "eager"
        config = load_config("configs/default.yaml", [
            f"max_steps={args.steps}", f"checkpoint_every={args.steps}", "eval_every=0", "log_with=none",
            "mixed_precision=bf16", f"compile={str(compile).lower()}", f"output_dir={out / ('train_' + name)}"])
        student, seconds, memory = measured(lambda: train(config, resume=True))
        rows.append({"job": f"distil {args.steps} steps, bf16, {name}", "seconds": seconds,
                     "rate": f"{args.steps / seconds:.2f} steps/s", "peak_GiB": memory})
    sampled = {}
    for name, checkpoint in (("student", str(student)), ("teacher", "assets/teacher")):
        folder = out / "samples" / name
        record, seconds, memory = measured(lambda: run_sampling(checkpoint, args.images, folder, resume=True))
        sampled[name] = record
        rows.append({"job": f"sample {args.images} {name} images, DDIM 50", "seconds": seconds,
                     "rate": f"{record['images_per_second']:.1f} images/s", "peak_GiB": memory})
    _, seconds, memory = measured(lambda: build_report(str(student), "assets/teacher", "patches:heldout",
                                                       args.images, out / "report"))
    rows.append({"job": f"eval.py report, {args.images} samples each", "seconds": seconds, "rate": "-",
                 "peak_GiB": memory})
    card = torch.cuda.get_device_name()
    print(f"GPU: {card}, torch {torch.__version__}")
    print(f"{'job':48s} {'wall':>9s} {'rate':>18s} {'peak memory':>12s}")
    for row in rows:
        print(f"{row['job']:48s} {row['seconds']:8.1f}s {row['rate']:>18s} {row['peak_GiB']:9.2f} GiB")
    (out / "results.json").write_text(json.dumps({"gpu": card, "torch": torch.__version__, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
