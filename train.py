"""Distil a WG-UNet student from a diffusers teacher (or train a teacher): python train.py [CONFIG] [key=value ...]

The command line is wgunet_cli/train.py (installed as wgunet-train).
"""

import sys

from wgunet_cli.train import main

if __name__ == "__main__":
    sys.exit(main())
