"""Sample images from a checkpoint: python sample.py CHECKPOINT --num-images N --out DIR

CHECKPOINT is a WG-UNet student exported by train.py (runs/default/model, or a run or checkpoint folder),
a diffusers model or pipeline folder, or a Hub id such as google/ddpm-cifar10-32.
Writes numbered PNGs, grid.png and samples.npz (uint8, N x H x W x C) into DIR.
"""

import argparse
import sys

from wgunet_cli.arguments import path, positive, renamed, seed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="model folder, pipeline folder, training run folder, or Hub id")
    parser.add_argument("--num-images", dest="num", type=positive, default=64, help="number of images (default 64)")
    parser.add_argument("--num", dest="num", type=positive, action=renamed("--num-images"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=path, required=True, help="output folder for the PNGs, grid.png and samples.npz")
    parser.add_argument("--scheduler", default="ddim", choices=["ddpm", "ddim", "dpm++"],
                        help="sampler (default ddim): ddpm = ancestral DDPM, ddim = deterministic DDIM (eta 0), "
                        "dpm++ = DPM-Solver++ multistep")
    parser.add_argument("--steps", type=positive, default=None,
                        help="denoising steps (default: ddpm the full training chain, ddim 50, dpm++ 20)")
    parser.add_argument("--batch-size", type=positive, default=None,
                        help="images per forward pass (default: about 400k pixels, 128 at 32x32)")
    parser.add_argument("--seed", type=seed, default=0,
                        help="image i is drawn from its own generator seeded by (seed, i): the same images at any batch size")
    parser.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu, cuda, cuda:1, mps ...")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                        help="the model's compute precision (default auto: bfloat16 on a GPU that has it, else "
                        "float32); half precisions run the model under autocast, the sampler in float32")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model: faster after a slow first batch (compilation); eager with a "
                        "warning where it is not possible")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out (same settings)")
    parser.add_argument("--overwrite", action="store_true", help="delete the images already in --out and start again")
    return parser


def main() -> int:
    parser = build_parser()
    args = parser.parse_args()
    from wgunet.common.cli import run_cli  # after parsing: --help never loads torch

    return run_cli(lambda: _sample(args))


def _sample(args: argparse.Namespace) -> None:
    from wgunet.sampling.samplers import run_sampling

    record = run_sampling(args.checkpoint, args.num, args.out, scheduler=args.scheduler, steps=args.steps,
                          batch_size=args.batch_size, seed=args.seed, device=args.device, dtype=args.dtype,
                          resume=args.resume, overwrite=args.overwrite, compile=args.compile)
    from accelerate import PartialState

    if not PartialState().is_main_process:  # under several processes the main one reports
        return
    if record["sampled_now"]:
        print(f"{record['sampled_now']} new images in {record['seconds']:.1f} s "
              f"({record['images_per_second']:.2f} images/s); {record['num']} in {args.out}")
    else:
        print(f"all {record['num']} images were already in {args.out}")
    print(f"grid: {args.out}/grid.png\narray: {args.out}/samples.npz")


if __name__ == "__main__":
    sys.exit(main())
