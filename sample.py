"""Sample images from a checkpoint: python sample.py CHECKPOINT --num N --out DIR

The command line is wgunet_cli/sample.py (installed as wgunet-sample).
"""

import sys

from wgunet_cli.sample import main

if __name__ == "__main__":
    sys.exit(main())
