"""A latent model's frozen autoencoder: the one of a latent-diffusion pipeline (the pipeline that samples in its latent
space and decodes to RGB is wgunet.sampling.latent_pipeline's).

A latent teacher is a pipeline folder (or Hub id) with ``unet/``, ``scheduler/`` and an autoencoder:
``vqvae/`` (``VQModel``, diffusers' ``LDMPipeline`` layout, e.g. CompVis/ldm-celebahq-256) or ``vae/``
(``AutoencoderKL``). A student distilled from one is exported with a copy of the same autoencoder; the run's
checkpoints only name it (``autoencoder.json``), so it is copied once, into the final export.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from diffusers import AutoencoderKL, VQModel
from torch import nn

from wgunet.common.errors import UserError
from wgunet.common.files import read_json
from wgunet.model.portable import make_portable

AUTOENCODERS = {"VQModel": VQModel, "AutoencoderKL": AutoencoderKL}
COMPONENTS = ("vqvae", "vae")  # LDMPipeline's name for its VQModel; the name latent pipelines give an AutoencoderKL
REFERENCE = "autoencoder.json"  # a checkpoint's pointer to the autoencoder it decodes with


class AutoencoderError(UserError, ValueError):
    """A latent pipeline whose autoencoder cannot be used; the message names it and the fix."""


class Autoencoder(nn.Module):
    """A frozen VQModel or AutoencoderKL with the latent scaling its pipeline uses.

    ``encode`` maps RGB in [-1, 1] to the latents the UNet denoises, ``decode`` maps them back.
    """

    def __init__(self, model: VQModel | AutoencoderKL, scale: float, source: str, component: str):
        super().__init__()
        # the config states the scale used, so that a pipeline decoding with this model (wgunet.sampling.latent_pipeline,
        # diffusers' LDMPipeline) divides by the same number
        model.register_to_config(scaling_factor=scale)
        self.model, self.scale, self.source, self.component = model.requires_grad_(False).eval(), scale, source, component

    @property
    def device(self) -> torch.device:  # as a diffusers model has it (DiffusionPipeline.to reads them)
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def factor(self) -> int:
        """Pixels per latent along each side (each encoder block but the last halves the size)."""
        return 2 ** (len(self.model.config.block_out_channels) - 1)

    @property
    def channels(self) -> int:
        return self.model.config.latent_channels

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, self.dtype)
        if isinstance(self.model, VQModel):
            latents = self.model.encode(x).latents  # before quantisation: decode() quantises, as LDMPipeline decodes
        else:
            # OPEN (posterior sample or mean): the mean, so that a batch's latents, and a resumed run, are exact;
            # the KL posterior's spread is small against the scaled latents' unit variance.
            latents = self.model.encode(x).latent_dist.mode()
        return latents.float() * self.scale

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.model.decode(latents.to(self.device, self.dtype) / self.scale).sample.float()

    def copy_to(self, folder: Path) -> None:
        """The autoencoder's folder, copied as it is (weights never re-saved), into pipeline folder ``folder``."""
        source = Path(self.source) / self.component
        shutil.copytree(source, folder / self.component, dirs_exist_ok=True)
        config = read_json(source / "config.json")
        if "scaling_factor" not in config:  # explicit, so diffusers' LDMPipeline decodes as this project does
            (folder / self.component / "config.json").write_text(json.dumps({**config, "scaling_factor": self.scale},
                                                                            indent=2))


def autoencoder_component(folder: Path) -> tuple[Path, str, str] | None:
    """(folder holding it, component, class name) of a pipeline folder's autoencoder, or None for a pixel model.

    Read from ``model_index.json`` when the folder has one, else from ``vqvae/`` or ``vae/``, else from a
    checkpoint's ``autoencoder.json``.
    """
    index = folder / "model_index.json"
    if index.is_file():
        components = read_json(index)
        listed = [(name, components[name][1]) for name in COMPONENTS if isinstance(components.get(name), list)]
        if listed:
            return folder, *listed[0]
    for name in COMPONENTS:
        if (folder / name / "config.json").is_file():
            return folder, name, read_json(folder / name / "config.json").get("_class_name")
    if (folder / REFERENCE).is_file():
        reference = read_json(folder / REFERENCE)
        return autoencoder_component(Path(reference["source"]))
    return None


def load_autoencoder(folder: Path, dtype: torch.dtype = torch.float32) -> Autoencoder | None:
    """The autoencoder of pipeline folder ``folder`` (see ``autoencoder_component``), or None for a pixel model."""
    found = autoencoder_component(folder)
    if found is None:
        return None
    source, component, class_name = found
    if class_name not in AUTOENCODERS:
        raise AutoencoderError(f"{str(source)!r} has a UNet and a {component}/ holding a {class_name!r}; supported "
                               f"autoencoders: {', '.join(AUTOENCODERS)} (as vqvae/ or vae/)")
    try:
        model = AUTOENCODERS[class_name].from_pretrained(source / component, torch_dtype=dtype)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        raise AutoencoderError(f"could not load the {class_name} in {str(source / component)!r}: {error}") from None
    written = read_json(source / component / "config.json")
    # VQ: CompVis's VQ latent models use the latents unscaled, and their configs say nothing; diffusers' VQModel then
    # reports 0.18215 (its AutoencoderKL's default), which breaks LDMPipeline on CompVis/ldm-celebahq-256
    # (huggingface/diffusers#6725). An AutoencoderKL's scaling_factor is the one pipelines use.
    scale = written.get("scaling_factor", 1.0) if class_name == "VQModel" else model.config.scaling_factor
    return Autoencoder(model, float(scale), str(source), component)


def write_reference(autoencoder: Autoencoder, folder: Path) -> None:
    """A checkpoint's pointer to its autoencoder (the teacher's folder), instead of a copy per checkpoint."""
    (folder / REFERENCE).write_text(json.dumps({"source": str(Path(autoencoder.source).resolve()),
                                                "component": autoencoder.component}, indent=2))


def complete_export(folder: Path, autoencoder: Autoencoder) -> None:
    """Make a checkpoint's model folder a whole latent pipeline: the autoencoder copied in; ``model_index.json`` in
    diffusers' LDMPipeline layout for a VQModel (diffusers' own LDMPipeline loads it), and for an AutoencoderKL,
    which no diffusers pipeline for unconditional UNets takes, the latent pipeline's code (wgunet.model.portable)."""
    autoencoder.copy_to(folder)
    (folder / REFERENCE).unlink(missing_ok=True)
    index = read_json(folder / "model_index.json")
    index[autoencoder.component] = ["diffusers", type(autoencoder.model).__name__]
    if autoencoder.component == "vqvae":
        index["_class_name"] = "LDMPipeline"
    (folder / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True))
    make_portable(folder)
