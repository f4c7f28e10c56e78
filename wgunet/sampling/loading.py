"""Loading diffusion models: WG-UNet students and diffusers UNet2DModels, from folders or the Hub.

Accepted: a pipeline folder (``model_index.json``, ``unet/``, ``scheduler/``, and for a latent model its
autoencoder, see wgunet.model.autoencoder) such as training exports,
a bare model folder (``config.json`` + weights), a training run or checkpoint folder (its ``model/``),
or a Hub id, which is downloaded and then read through the same ``from_pretrained`` calls.
Each command loads a checkpoint once and hands the model on (sampling, probe, teacher features).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, NamedTuple

import torch
from diffusers import DDPMScheduler, UNet2DModel

from wgunet.common.errors import UserError
from wgunet.common.files import read_json
from wgunet.model.autoencoder import Autoencoder, load_autoencoder
from wgunet.model.prediction import prediction_type
from wgunet.model.unet import WGUNet

MODEL_CLASSES = {"UNet2DModel": UNet2DModel, "WGUNet": WGUNet}


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded; the message names it and the fix."""


def load_scheduler_config(path: str | Path) -> dict[str, Any] | None:
    """The noise-schedule config stored with a model: ``scheduler/`` or a root ``scheduler_config.json``."""
    path = Path(path)
    for candidate in (path / "scheduler" / "scheduler_config.json", path / "scheduler_config.json"):
        if candidate.is_file():
            return dict(DDPMScheduler.load_config(candidate.parent))
    return None


def model_folder(path: Path) -> Path:
    """The folder that holds the model config: ``unet/`` of a pipeline, the folder itself, or a run's ``model/``."""
    for candidate in (path / "unet", path, path / "model" / "unet", path / "model"):
        if (candidate / "config.json").is_file():
            return candidate
    raise CheckpointError(
        f"{str(path)!r} is neither a diffusers model folder (config.json + weights), a pipeline folder "
        "(unet/ + scheduler/) nor a training run (model/): pass one of those"
    )


class Checkpoint(NamedTuple):
    """A loaded diffusion model: the denoiser, the DDPM schedule it was trained with, and for a latent model the
    autoencoder between its latents and RGB."""

    model: torch.nn.Module
    scheduler: DDPMScheduler
    autoencoder: Autoencoder | None = None

    @property
    def image_size(self) -> int:
        """The side of the RGB images it makes (its latents' side times the autoencoder's factor)."""
        size = self.model.config.sample_size
        return size * self.autoencoder.factor if self.autoencoder else size


def load_model(name_or_path: str | Path, dtype: torch.dtype = torch.float32) -> Checkpoint:
    """The model in eval mode, its DDPM schedule and its autoencoder (latent models) from a folder or a Hub id."""
    path = Path(name_or_path)
    if not path.exists():
        if str(name_or_path).startswith((".", "/", "~")) or str(name_or_path).count("/") != 1:
            raise CheckpointError(f"checkpoint {str(name_or_path)!r} does not exist (nor is it a Hub id like org/name)")
        path = _download(str(name_or_path))
    elif not path.is_dir():
        raise CheckpointError(f"{str(path)!r} is a file; pass the model or pipeline folder that holds it")
    folder = model_folder(path)
    class_name = read_json(folder / "config.json").get("_class_name")
    if class_name is None:
        raise CheckpointError(f"{str(folder / 'config.json')!r} names no model class (_class_name): it is no diffusers "
                              "model config; pass the folder that save_pretrained wrote")
    if class_name not in MODEL_CLASSES:
        raise CheckpointError(f"{str(folder)!r} holds a {class_name!r}; supported: {', '.join(MODEL_CLASSES)}")
    try:
        # safetensors first; a legacy .bin is read with torch.load(weights_only=True), so no code runs.
        model = MODEL_CLASSES[class_name].from_pretrained(folder, torch_dtype=dtype)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        raise CheckpointError(f"could not load the {class_name} in {str(folder)!r}: {error}") from None
    schedule = load_scheduler_config(folder.parent) if folder.name == "unet" else load_scheduler_config(folder)
    # A bare model carries no schedule: DDPM's published one (linear 1e-4..0.02, 1000 steps) is assumed.
    try:
        if schedule and schedule.get("num_train_timesteps", 1) < 1:
            raise ValueError(f"num_train_timesteps is {schedule['num_train_timesteps']}")
        scheduler = DDPMScheduler.from_config(schedule) if schedule else DDPMScheduler()
    except (ValueError, TypeError, NotImplementedError) as error:
        raise CheckpointError(f"the noise schedule stored with {str(folder)!r} describes no DDPM schedule ({error}): "
                              "restore its scheduler_config.json") from None
    prediction_type(scheduler)  # an unknown prediction_type is named here, before any use
    autoencoder = load_autoencoder(folder.parent if folder.name == "unet" else folder, dtype)
    if autoencoder is None and model.config.in_channels != 3:
        raise CheckpointError(f"the UNet in {str(folder)!r} takes {model.config.in_channels}-channel input, not RGB, "
                              "and its folder has no autoencoder (vqvae/ or vae/) to make those latents: pass the "
                              "whole latent pipeline folder")
    if autoencoder is not None and model.config.in_channels != autoencoder.channels:
        raise CheckpointError(f"the UNet in {str(folder)!r} takes {model.config.in_channels} channels and its "
                              f"autoencoder makes {autoencoder.channels}-channel latents: they are not one model")
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise CheckpointError(f"the weights in {str(folder)!r} hold NaN or Inf values: it would draw blank images; use "
                              "an earlier checkpoint (training keeps the last good one)")
    files = [folder] + ([Path(autoencoder.source) / autoencoder.component] if autoencoder else [])
    model.weights_fingerprint = fingerprint(files)  # travels with the model: which weights drew a sample folder
    return Checkpoint(model.eval(), scheduler, autoencoder)


def weights_of(model: torch.nn.Module) -> str:
    """The fingerprint of the files ``load_model`` read ``model`` from; "" for a model built in memory."""
    return getattr(model, "weights_fingerprint", "")


def fingerprint(folders: list[Path]) -> str:
    """SHA-256 (first 16 hex digits) of the weight files in ``folders``: which weights drew a sample folder."""
    digest = hashlib.sha256()
    for path in sorted(p for folder in folders for p in folder.glob("*") if p.suffix in (".safetensors", ".bin")):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "unet/*", "scheduler/*",
                                                          "vqvae/*", "vae/*"]))
    except Exception as error:  # offline, unknown or gated repo: huggingface_hub has many error types
        raise CheckpointError(
            f"{repo_id!r} is neither a folder under {str(Path.cwd())!r} nor a Hub repository that could be fetched "
            f"({type(error).__name__}): pass the folder's path (relative paths start where you run the command; "
            "assets/teacher is in the wgunet repository), or, if it is a Hub id, fetch it where there is internet"
        ) from None
