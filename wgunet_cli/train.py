"""Distil a WG-UNet student from a diffusers teacher (or train a teacher): python train.py [CONFIG] [key=value ...]"""

import argparse
import sys

DEFAULT_CONFIG = "configs/default.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog="Examples:\n  python train.py                                   # the embedded default, CPU, minutes\n"
        "  python train.py configs/default.yaml max_steps=200 loss.lambda_freq=0\n"
        "  accelerate launch --multi_gpu --num_processes 4 train.py configs/cifar10.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", default=None,
                        help=f"YAML config (default: {DEFAULT_CONFIG}, the embedded default; with --resume, the run's "
                        "own config.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, dotted for sections, e.g. loss.lambda_freq=0 data.source=my_images/")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in output_dir from its latest checkpoint, with its own config.yaml "
                        "(keys given here change it, and are printed; a finished run just re-exports); anywhere "
                        "among the arguments")
    return parser


def main() -> int:
    args = build_parser().parse_intermixed_args()
    if args.config is not None and "=" in args.config:  # only overrides were given: the config is the default
        args.overrides.insert(0, args.config)
        args.config = None
    from wgunet.common.cli import run_cli  # after parsing: --help never loads torch

    return run_cli(lambda: _train(args))


def _train(args: argparse.Namespace) -> None:
    from accelerate import PartialState

    from wgunet.training.config import load_run_config
    from wgunet.training.loop import train

    config = load_run_config(args.config, args.overrides, DEFAULT_CONFIG, args.resume)
    model = train(config, resume=args.resume)
    if PartialState().is_main_process:
        print(f"\nmodel: {model}\nsample from it:  python sample.py {model} --num-images 64 --out {model.parent / 'samples'}")


if __name__ == "__main__":
    sys.exit(main())
