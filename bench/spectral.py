"""Reduced-spectrum throughput on this CPU (target >= 5,000 images of 32x32 per second, binning included).

    .venv/bin/python bench/spectral.py [--num-images 20000] [--batch-size 2048]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from wgunet.evaluation.spectral import reduced_spectrum


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-images", type=int, default=20000, help="images per set (default 20000)")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    images = torch.randint(0, 256, (args.num_images, 3, 32, 32), dtype=torch.uint8)
    reduced_spectrum(images[: args.batch_size].float() / 255)  # warm-up
    seconds = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for first in range(0, args.num_images, args.batch_size):
            reduced_spectrum(images[first : first + args.batch_size].float() / 255)
        seconds.append(time.perf_counter() - start)
    rate = args.num_images / statistics.median(seconds)
    print(f"{args.num_images} uint8 images 3x32x32, batches of {args.batch_size}, {torch.get_num_threads()} threads: "
          f"{rate:,.0f} images/s (median of {args.rounds}; target >= 5,000)")


if __name__ == "__main__":
    main()
