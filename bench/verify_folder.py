"""Cost of checking a training folder: peak memory and wall time of ImageFolder's verification of N PNGs (256 px
by default), the first time (every image decoded, in parallel, none held) and again (only new or changed files).

    python bench/verify_folder.py [--num-images 20000] [--pixels 256] [--work runs/verify-folder]

Each check runs in its own process, so each peak RSS is that check's alone; the folder is written once and reused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CHECK = """import resource, sys, time
from wgunet.training.data import ImageFolder
start = time.perf_counter()
data = ImageFolder(sys.argv[1], int(sys.argv[2]))
print(len(data), time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
"""


def write_folder(folder: Path, num: int, pixels: int) -> None:
    """``num`` PNGs of colour ramps (small files; each decodes to pixels x pixels x 3 bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 1, pixels, dtype=np.float32)[None, :, None]
    for i in range(num):
        path = folder / f"{i:06d}.png"
        if not path.is_file():
            low, high = np.random.default_rng(i).integers(0, 256, (2, 3)).astype(np.float32)
            image = np.broadcast_to(low + (high - low) * ramp, (pixels, pixels, 3))
            Image.fromarray(image.astype(np.uint8)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-images", type=int, default=20000, help="images in the folder (default 20000)")
    parser.add_argument("--pixels", type=int, default=256, help="image side (default 256)")
    parser.add_argument("--work", default="runs/verify-folder", help="folder for the images and the check record")
    args = parser.parse_args()
    work = Path(args.work)
    write_folder(work / "images", args.num_images, args.pixels)
    env = {**os.environ, "WGUNET_CACHE": str(work / "cache")}  # a check record of this folder's own
    shutil.rmtree(work / "cache", ignore_errors=True)
    print(f"| check | images | decoded size (GiB) | peak RSS (GiB) | wall time (s) |\n|---|---:|---:|---:|---:|")
    for check in ("first (all decoded)", "again (none changed)"):
        out = subprocess.run([sys.executable, "-c", CHECK, str(work / "images"), str(args.pixels)], env=env,
                             capture_output=True, text=True, check=True).stdout.split()
        num, seconds, peak = int(out[0]), float(out[1]), float(out[2])
        print(f"| {check} | {num:,} | {num * args.pixels**2 * 3 / 2**30:.2f} | {peak:.2f} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
