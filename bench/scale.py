"""Cost of evaluation as the sets grow: peak memory and wall time of `eval.py spectrum` on two random sets of N
images each at 256 px (uint8 .npz archives, as ADM's suite and sample.py write them), N = 1k, 2k, 4k, 8k by
default, each run in its own process, side by side in one table.

    python bench/scale.py [--sizes 1000,2000,4000,8000] [--pixels 256] [--bootstrap 200] [--features none]
                          [--work runs/scale]

The spectra stream (images read in batches, the bootstrap's weighted sums accumulated), and so do the FID/KID
features (``--features teacher``: only the (N, F) features are kept), so peak memory should stay flat in N and
time grow linearly. The archives are written once to --work (about 3 GB at 8k) and reused.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np


def write_npz(path: Path, num: int, pixels: int, seed: int) -> None:
    """A stored (uncompressed) npz of random uint8 images, written in chunks: never whole in memory."""
    if path.exists():
        return
    scratch = path.with_suffix(".npy.tmp")
    array = np.lib.format.open_memmap(scratch, mode="w+", dtype=np.uint8, shape=(num, pixels, pixels, 3))
    rng = np.random.default_rng(seed)
    for start in range(0, num, 256):
        stop = min(num, start + 256)
        array[start:stop] = rng.integers(0, 256, (stop - start, pixels, pixels, 3), dtype=np.uint8)
    array.flush()
    del array
    with zipfile.ZipFile(path.with_suffix(".tmp"), "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.write(scratch, "images.npy")
    scratch.unlink()
    path.with_suffix(".tmp").rename(path)


def measure(generated: Path, reference: Path, bootstrap: int, features: str, out: Path) -> tuple[float, float]:
    """(peak RSS in GiB, wall seconds) of one eval.py spectrum run, in a process of its own that reports its peak."""
    argv = ["eval.py", "spectrum", "--generated", f"g={generated}", "--reference", str(reference), "--features", features,
            "--bootstrap", str(bootstrap), "--out", str(out)]
    child = (f"import resource, runpy, sys\nsys.argv = {argv!r}\ntry:\n    runpy.run_path('eval.py', run_name='__main__')\n"
             "except SystemExit as done:\n    assert not done.code, done.code\n"
             "print('peak_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"eval.py failed: {result.stderr[-2000:]}")
    return int(result.stdout.split("peak_kib")[-1]) / 2**20, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,2000,4000,8000", help="images per set, comma-separated, ascending")
    parser.add_argument("--pixels", type=int, default=256, help="image side (default 256)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default 200, eval.py's)")
    parser.add_argument("--features", default="none", help="eval.py spectrum's --features (default none: spectra "
                        "only; teacher: FID/KID in the shipped teacher's features too)")
    parser.add_argument("--work", default="runs/scale", help="folder for the archives and outputs")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for num in (int(n) for n in args.sizes.split(",")):
        generated, reference = work / f"g{num}_{args.pixels}.npz", work / f"r{num}_{args.pixels}.npz"
        write_npz(generated, num, args.pixels, 1)
        write_npz(reference, num, args.pixels, 2)
        peak, seconds = measure(generated, reference, args.bootstrap, args.features, work / f"out{num}")
        rows.append((num, 2 * num * args.pixels**2 * 3 / 2**30, peak, seconds))
        print(f"{num} images: peak {peak:.2f} GiB, {seconds:.1f} s", flush=True)
    first = rows[0]
    print(f"\n--features {args.features}, bootstrap {args.bootstrap}\n")
    print(f"| images per set ({args.pixels} px) | uint8 data of both sets (GiB) | peak RSS (GiB) | vs first | "
          f"wall time (s) | s per 1k images |")
    print("|---:|---:|---:|---:|---:|---:|")
    for num, data, peak, seconds in rows:
        print(f"| {num:,} | {data:.2f} | {peak:.2f} | {peak / first[2]:.2f}x | {seconds:.1f} | {seconds / num * 1000:.1f} |")


if __name__ == "__main__":
    main()
