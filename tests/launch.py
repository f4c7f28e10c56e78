"""Run an entry point under torchrun on CPU processes (gloo), as a multi-GPU user launches it."""

import os
import socket
import subprocess
import sys


def free_port() -> int:
    """A port no other process listens on: tests run in parallel (pytest -n 2) and each launch needs its own."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(script: str, processes: int, *args: str) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node PROCESSES SCRIPT ARGS``, the arguments as a user types them."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
               str(free_port()), script, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
