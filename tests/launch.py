"""Run an entry point under torchrun on CPU processes (gloo), as a multi-GPU user launches it."""

import json
import os
import subprocess
import sys
from pathlib import Path

LAUNCHED = """
import json, runpy, sys
sys.argv = [sys.argv[1]] + json.loads(sys.argv[2])  # one argument: torchrun would read --num as its --numa-binding
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def launch(script: str, processes: int, folder: Path, *args: str) -> subprocess.CompletedProcess:
    """``python SCRIPT ARGS`` in ``processes`` processes; ``folder`` holds the launcher."""
    launcher = folder / "launch.py"
    launcher.write_text(LAUNCHED)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
               str(29600 + processes), str(launcher), script, json.dumps(list(args))]
    return subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
