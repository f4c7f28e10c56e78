"""A trained refiner: saved, loaded (safetensors and JSON) and applied to images."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from wgunet.common.files import atomic_folder, read_json, write_json
from wgunet.common.pixels import to_unit, unit_to_uint8
from wgunet.evaluation.stig.config import StigConfig, StigError
from wgunet.evaluation.stig.networks import build_translator
from wgunet.evaluation.stig.spectrum import SPECTRUM, from_spectrum, to_spectrum


def save_refiner(translator: nn.Module, config: StigConfig, folder: Path, in_channels: int) -> Path:
    with atomic_folder(folder) as temporary:
        save_file(translator.state_dict(), temporary / "translator.safetensors")
        write_json(temporary / "config.json",
                   asdict(config) | {"in_channels": in_channels, "spectrum": SPECTRUM})
    return folder


def load_refiner(folder: str | Path) -> nn.Module:
    folder = Path(folder)
    if (folder / "refiner").is_dir():
        folder = folder / "refiner"  # a training output folder
    if not (folder / "config.json").is_file() or not (folder / "translator.safetensors").is_file():
        raise StigError(f"{str(folder)!r} is not a STIG refiner (config.json + translator.safetensors): "
                        "train one with `eval.py stig train`")
    try:
        values = read_json(folder / "config.json")
        if values.pop("spectrum", None) != SPECTRUM:
            raise StigError(f"{str(folder)!r} was trained on another spectrum representation than this version's "
                            f"({SPECTRUM}): train it again with `eval.py stig train`")
        in_channels = values.pop("in_channels")
        config = StigConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
        translator = build_translator(config, in_channels)
        translator.load_state_dict(load_file(folder / "translator.safetensors"))
    except (json.JSONDecodeError, TypeError, KeyError, RuntimeError, OSError) as error:
        raise StigError(f"could not load the STIG refiner in {str(folder)!r}: {error}") from None
    return translator.eval()


@torch.no_grad()
def refine(translator: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Refined uint8 images (N, C, H, W): translated magnitude, original phase."""
    refined = []
    for start in tqdm(range(0, len(images), batch_size), desc="refine", leave=False, disable=len(images) <= batch_size):
        log_magnitude, phase = to_spectrum(to_unit(images[start : start + batch_size]))
        refined.append(unit_to_uint8(from_spectrum(translator(log_magnitude), phase)))
    return torch.cat(refined)
