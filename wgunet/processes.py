"""Several processes (``accelerate launch`` / ``torchrun``) for sampling and evaluation: who does what.

The work is split by index (image i on process i mod n); whatever touches a shared file (a folder's lock and
record, derived files, reports) is done by the main process, and its result, or its error, reaches every process.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from .cli import ReplicatedError, UserError

T = TypeVar("T")


def processes() -> PartialState:
    """This process's place among those launched (one process when nothing launched several); on CPU, gloo."""
    return PartialState(cpu=not torch.accelerator.is_available())


def on_main(state: PartialState, work: Callable[[], T]) -> T:
    """``work()`` on the main process; its result, or its UserError, on every process. (The result travels
    pickled between this job's own processes, as torch.distributed sends objects; nothing read from a file.)"""
    if state.num_processes == 1:
        return work()
    payload: list = [None]
    if state.is_main_process:
        try:
            payload = [("result", work())]
        except UserError as error:
            broadcast_object_list([("error", str(error))], from_process=0)
            raise
    broadcast_object_list(payload, from_process=0)
    kind, value = payload[0]
    if kind == "error":
        raise ReplicatedError(value)
    return value


def my_share(state: PartialState, items: list[T]) -> list[T]:
    """Every n-th item, starting at this process's index."""
    return items[state.process_index :: state.num_processes]
