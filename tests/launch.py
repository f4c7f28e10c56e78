"""Run an entry point under torchrun on CPU processes (gloo), as a multi-GPU user launches it."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

LAUNCHED = """
import json, runpy, sys
sys.argv = [sys.argv[1]] + json.loads(sys.argv[2])  # one argument: torchrun would read --num as its --numa-binding
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def free_port() -> int:
    """A port no other process listens on: tests run in parallel (pytest -n 2) and each launch needs its own."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(script: str, processes: int, folder: Path, *args: str) -> subprocess.CompletedProcess:
    """``python SCRIPT ARGS`` in ``processes`` processes; ``folder`` holds the launcher."""
    launcher = folder / "launch.py"
    launcher.write_text(LAUNCHED)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
               str(free_port()), str(launcher), script, json.dumps(list(args))]
    return subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
