"""What the command-line entry points share: bad input ends in one clear line, never a traceback."""

from __future__ import annotations

import sys
from typing import Callable

from safetensors import SafetensorError

from wgunet.common.errors import ReplicatedError, UserError
from wgunet.common.files import published_path

AFTER_IO_ERROR = "Files already finished are kept: fix this, then run the same command again (with --resume where it has one)"


def run_cli(command: Callable[[], object]) -> int:
    """Run ``command``; a UserError, an OS error or Ctrl-C becomes a one-line message and exit status 2 or 130."""
    try:
        command()
    except UserError as error:
        if not isinstance(error, ReplicatedError):  # the main process of several has printed it already
            print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # disk full, no permission, a file where a folder should be: one line, with the path
        where = f": {published_path(error.filename)}" if error.filename else ""
        print(f"error: {error.strerror or error}{where}. {AFTER_IO_ERROR}", file=sys.stderr)
        return 2
    except SafetensorError as error:  # safetensors' own I/O error, as a full disk ends a weights file
        print(f"error: a weights file could not be written or read ({error}). {AFTER_IO_ERROR}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:  # a command that knows what it kept says so in the interrupt's message
        print(f"interrupted: {interrupt}" if str(interrupt) else "interrupted", file=sys.stderr)
        return 130
    finally:
        leave_process_group()
    return 0


def leave_process_group() -> None:
    """Under ``accelerate launch`` / ``torchrun``: tear the process group down before exit; a process that exits
    with it alive can abort in its threads' destructors ("terminate called without an active exception")."""
    distributed = sys.modules.get("torch.distributed")  # never imports torch: --help and bad arguments stay light
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()
