"""What the command-line entry points share: bad input ends in one clear line, never a traceback."""

from __future__ import annotations

import sys
from typing import Callable


class UserError(Exception):
    """Input that cannot be used (config, data, checkpoint, run state); the message names the problem and the fix."""


def run_cli(command: Callable[[], object]) -> int:
    """Run ``command``; a UserError or Ctrl-C becomes a one-line message and exit status 2 or 130."""
    try:
        command()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished checkpoints are kept; continue with --resume", file=sys.stderr)
        return 130
    return 0
