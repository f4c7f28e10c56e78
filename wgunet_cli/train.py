"""Distil a WG-UNet student from a diffusers teacher (or train a teacher): python train.py [CONFIG] [key=value ...]"""

import argparse
import sys



def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog="Examples:\n  python train.py                                   # the embedded default, CPU, minutes\n"
        "  python train.py configs/default.yaml max_steps=200 loss.lambda_freq=0\n"
        "  accelerate launch --multi_gpu --num_processes 4 train.py configs/cifar10.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", default="configs/default.yaml",
                        help="YAML config (default: configs/default.yaml, the embedded default)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, dotted for sections, e.g. loss.lambda_freq=0 data.source=my_images/")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the latest checkpoint in output_dir (a finished run just re-exports)")
    args = parser.parse_args()
    if "=" in args.config:  # only overrides were given: the config is the default
        args.overrides.insert(0, args.config)
        args.config = "configs/default.yaml"
    from wgunet.cli import run_cli  # after parsing: --help never loads torch

    return run_cli(lambda: _train(args))


def _train(args: argparse.Namespace) -> None:
    from accelerate import PartialState

    from wgunet.config import load_config
    from wgunet.training import train

    config = load_config(args.config, args.overrides)
    model = train(config, resume=args.resume)
    if PartialState().is_main_process:
        print(f"\nmodel: {model}\nsample from it:  python sample.py {model} --num 64 --out {model.parent / 'samples'}")


if __name__ == "__main__":
    sys.exit(main())
