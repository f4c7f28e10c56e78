"""Resumable state as safetensors (the tensors) plus JSON (the structure and every other value).

Optimizer, learning-rate schedule, EMA and random-generator states are nested dicts, lists and tuples of tensors
and numbers. ``save_tree`` writes one as ``NAME.safetensors`` + ``NAME.json``; ``load_tree`` reads it back with
the same types. Nothing is ever unpickled, so a run folder from anyone can be resumed without running its code.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from wgunet.common.errors import UserError
from wgunet.common.files import atomic_path, write_json


class StateError(UserError):
    """A state file that is missing, truncated or not of this format."""


def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value.detach().cpu().contiguous().clone()  # safetensors refuses shared storage
        return {"__tensor__": key}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {"__dict__": {k: _encode(v, tensors) for k, v in value.items()}}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        encoded = [_encode(v, tensors) for v in value]
        return {"__tuple__": encoded} if isinstance(value, tuple) else encoded
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} as state")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__dict__" in value:
        return {k: _decode(v, tensors) for k, v in value["__dict__"].items()}
    if "__items__" in value:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__items__"]}
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    if "__ndarray__" in value:
        return np.array(value["__ndarray__"], dtype=value["dtype"])
    raise StateError(f"unknown entry {sorted(value)} in a state file")


def save_tree(folder: str | Path, name: str, tree: Any) -> None:
    """Write ``tree`` as ``folder/NAME.safetensors`` and ``folder/NAME.json`` (atomically, each)."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(tree, tensors)
    with atomic_path(Path(folder) / f"{name}.safetensors") as temporary:
        save_file(tensors, str(temporary))
    write_json(Path(folder) / f"{name}.json", structure)


def load_tree(folder: str | Path, name: str) -> Any:
    """The tree ``save_tree`` wrote; a missing, truncated or foreign file raises StateError naming it."""
    tensor_path, json_path = Path(folder) / f"{name}.safetensors", Path(folder) / f"{name}.json"
    try:
        tensors = load_file(tensor_path)
        return _decode(json.loads(json_path.read_text()), tensors)
    except (OSError, SafetensorError, json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
        raise StateError(f"{str(json_path.parent)!r}: {name} state is unreadable ({type(error).__name__}: {error})") from None


def random_states() -> dict[str, Any]:
    """This process's global generators: torch (and its accelerator's), numpy, python's random."""
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(tuple(states["numpy"]))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
