"""Evaluate generated images and checkpoints: python eval.py {spectrum,probe,finc,stig,report,fid-ref} ...

The command line is wgunet_cli/eval.py (installed as wgunet-eval).
"""

import sys

from wgunet_cli.eval import main

if __name__ == "__main__":
    sys.exit(main())
