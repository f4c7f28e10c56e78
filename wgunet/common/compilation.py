"""torch.compile where it works, eager where it does not (one warning, never an error)."""

from __future__ import annotations

import functools
import warnings

import torch
from torch import nn


@functools.cache
def compile_problem() -> str | None:
    """Why torch.compile cannot run here (no C++ compiler for Inductor on CPU, no Triton on GPU, ...), or None.

    Found by compiling and running one tiny function: compilation fails at the first call, not at torch.compile.
    """
    device = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else torch.device("cpu")
    try:
        torch.compile(lambda x: torch.sin(x) * 2)(torch.ones(4, device=device))
    except Exception as error:  # Inductor's failures have no common type
        return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
    return None


def compile_mode(device: torch.device) -> str:
    """On CUDA, "reduce-overhead": the compiled calls are replayed as CUDA graphs, one launch for the whole
    forward (and backward), since a small model on a large GPU spends its time launching kernels, not in them."""
    return "reduce-overhead" if device.type == "cuda" else "default"


def compiled(module: nn.Module, device: torch.device | None = None) -> nn.Module:
    """``module`` compiled in place (``nn.Module.compile``: its parameters, state_dict keys and class stay as
    they are) for the device it will run on (``compile_mode``; default: where its parameters are), or left eager
    with one warning where compilation is not possible. Compilation happens at the first call, which is slow."""
    problem = compile_problem()
    if problem is not None:
        warnings.warn(f"torch.compile is not possible here ({problem}); running eager", stacklevel=2)
    else:
        module.compile(mode=compile_mode(device or next(module.parameters()).device))
    return module
