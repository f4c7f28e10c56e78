"""Several processes (``accelerate launch`` / ``torchrun``) for sampling and evaluation: who does what.

The work is split by index (image i on process i mod n); whatever touches a shared file (a folder's lock and
record, derived files, reports) is done by the main process, and its result, or its error, reaches every process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, TypeVar

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from wgunet.common.errors import ReplicatedError, UserError

T = TypeVar("T")


class LaunchError(UserError):
    """A launcher that started fewer processes than it was asked for."""


def check_launch() -> None:
    """Refuse an Accelerate configuration for FSDP or DeepSpeed (sharded states this project does not save), and a
    run that ``accelerate launch --num_processes N`` started as one process: without GPUs and without
    a multi-CPU configuration its simple launcher runs the script once, which would train or sample alone while
    the user counts on N. (Seen from the launcher's command line, where the system shows it: Linux's /proc.)"""
    for engine, variable in (("fsdp", "ACCELERATE_USE_FSDP"), ("deepspeed", "ACCELERATE_USE_DEEPSPEED")):
        if os.environ.get(variable, "false").lower() in ("1", "true", "yes"):
            raise LaunchError(f"accelerate is configured for {engine} ({variable}): this project's checkpoints hold whole "
                              "models and optimizer states, which sharding engines split; train with plain DDP, "
                              "`accelerate launch --multi_gpu --num_processes N train.py ...` or `torchrun "
                              "--nproc_per_node N train.py ...` (several machines: --num_machines, see docs)")
    if "ACCELERATE_USE_CPU" not in os.environ or "WORLD_SIZE" in os.environ:
        return  # not accelerate's one-process launcher
    try:
        launcher = Path(f"/proc/{os.getppid()}/cmdline").read_text().split("\0")
    except OSError:
        return
    for flag in ("--num_processes", "--num-processes"):
        if flag in launcher[:-1] and launcher[launcher.index(flag) + 1].isdigit():
            asked = int(launcher[launcher.index(flag) + 1])
            if asked > 1:
                script = next((a for a in launcher if a.endswith(".py")), "SCRIPT.py")
                raise LaunchError(f"accelerate launch started 1 process of the {asked} asked for (without GPUs it needs "
                                  f"a multi-CPU configuration): run `torchrun --nproc_per_node {asked} {script} ...` "
                                  "instead, or drop --num_processes")


def processes() -> PartialState:
    """This process's place among those launched (one process when nothing launched several); on CPU, gloo."""
    check_launch()
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
