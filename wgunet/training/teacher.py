"""Teachers: diffusers ``UNet2DModel`` checkpoints, their known architectures, and feature taps."""

from __future__ import annotations

import json
from typing import Any

import torch
from diffusers import DDPMScheduler, UNet2DModel, VQModel

from wgunet.sampling.loading import Checkpoint, CheckpointError, load_model

# The published teachers' unet/config.json, so that their architecture can be built without a download.
_DDPM_COMMON: dict[str, Any] = dict(
    in_channels=3, out_channels=3, layers_per_block=2, act_fn="silu", attention_head_dim=None,
    center_input_sample=False, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1,
    mid_block_scale_factor=1, norm_eps=1e-6, norm_num_groups=32, time_embedding_type="positional",
)
TEACHER_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "google/ddpm-cifar10-32": dict(
        _DDPM_COMMON,
        sample_size=32,
        block_out_channels=(128, 256, 256, 256),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    ),
    "google/ddpm-ema-celebahq-256": dict(
        _DDPM_COMMON,
        sample_size=256,
        block_out_channels=(128, 128, 256, 256, 512, 512),
        down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4,
    ),
}


# Latent teachers: the UNet's and the autoencoder's configs, after the LDM's celebahq-ldm-vq-4.yaml (UNet on 64x64x3
# latents: model_channels 224, channel_mult 1-2-3-4, attention at 32, 16 and 8 px, 32 channels per head) and its
# first stage vq-f4 (ch 128, ch_mult 1-2-4, 3 latent channels, 8192 codes), as diffusers converted them.
TEACHER_ARCHITECTURES["CompVis/ldm-celebahq-256"] = dict(
    sample_size=64, in_channels=3, out_channels=3, layers_per_block=2, block_out_channels=(224, 448, 672, 896),
    down_block_types=("DownBlock2D",) + ("AttnDownBlock2D",) * 3, up_block_types=("AttnUpBlock2D",) * 3 + ("UpBlock2D",),
    attention_head_dim=32, downsample_padding=1, flip_sin_to_cos=True, freq_shift=0, norm_eps=1e-5, norm_num_groups=32,
)
AUTOENCODER_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "CompVis/ldm-celebahq-256": dict(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(128, 256, 512), layers_per_block=2,
        latent_channels=3, num_vq_embeddings=8192, vq_embed_dim=3, norm_num_groups=32, sample_size=256,
    ),
}


def autoencoder_architecture(name: str) -> VQModel:
    """A randomly initialised autoencoder with a published latent teacher's architecture (no download)."""
    if name not in AUTOENCODER_ARCHITECTURES:
        raise ValueError(f"no stored autoencoder for {name!r}; known: {sorted(AUTOENCODER_ARCHITECTURES)}")
    return VQModel(**AUTOENCODER_ARCHITECTURES[name])


def teacher_architecture(name: str, **overrides: Any) -> UNet2DModel:
    """A randomly initialised UNet2DModel with a published teacher's architecture (no download)."""
    if name not in TEACHER_ARCHITECTURES:
        raise ValueError(f"no stored architecture for {name!r}; known: {sorted(TEACHER_ARCHITECTURES)}")
    return UNet2DModel(**{**TEACHER_ARCHITECTURES[name], **overrides})


def load_teacher(name_or_path: str, dtype: torch.dtype = torch.float32) -> Checkpoint:
    """A frozen UNet2DModel in eval mode, the DDPM noise schedule it was trained with and, for a latent teacher,
    its autoencoder (see ``load_model``)."""
    teacher = load_model(name_or_path, dtype)
    if not isinstance(teacher.model, UNet2DModel):
        raise CheckpointError(f"the teacher must be a diffusers UNet2DModel; {name_or_path!r} holds a "
                              f"{type(teacher.model).__name__}")
    teacher.model.requires_grad_(False)
    return teacher


def trainable_teacher(arguments: dict[str, Any], scheduler: dict[str, Any], init_from: str | None) -> UNet2DModel:
    """The UNet2DModel a teacher run trains: built from ``arguments``, with random weights or, with ``init_from``,
    the weights of that UNet2DModel (fine-tuning), whose architecture and noise schedule must be the run's."""
    unet = UNet2DModel(**arguments)
    if init_from is None:
        return unet
    start = load_teacher(init_from)
    if start.autoencoder is not None:
        raise CheckpointError(f"init_from {init_from!r} is a latent model; a teacher run trains on pixels")
    differences = (_differences("unet", unet.config, start.model.config, "init_from")
                   + _differences("scheduler", DDPMScheduler(**scheduler).config, start.scheduler.config, "init_from"))
    if differences:
        raise CheckpointError(f"init_from {init_from!r} differs from the run's model: {'; '.join(differences)}; set "
                              "those keys of the config to the init_from model's values")
    unet.load_state_dict(start.model.state_dict())
    return unet


def _differences(section: str, ours: dict[str, Any], theirs: dict[str, Any], their_name: str) -> list[str]:
    """One line, ``section.key ours (their_name: theirs)``, for each public key of config ``ours`` whose value
    ``theirs`` does not hold (lists and tuples alike)."""
    return [f"{section}.{key} {value} ({their_name}: {theirs.get(key)})" for key, value in ours.items()
            if not key.startswith("_") and json.dumps(value) != json.dumps(theirs.get(key))]


class FeatureTaps:
    """Forward hooks on a UNet2DModel's down, mid and up blocks, keyed "down.i", "mid", "up.i".

    A down block returns (hidden_states, skip_states); its hidden states are the feature.
    """

    def __init__(self, unet: UNet2DModel):
        self.features: dict[str, torch.Tensor] = {}
        named = [(f"down.{i}", b) for i, b in enumerate(unet.down_blocks)]
        named += [("mid", unet.mid_block)] if unet.mid_block is not None else []
        named += [(f"up.{i}", b) for i, b in enumerate(unet.up_blocks)]
        self.handles = [block.register_forward_hook(self._hook(name)) for name, block in named]

    def _hook(self, name: str):
        def store(module, inputs, output):
            self.features[name] = output[0] if isinstance(output, tuple) else output

        return store

    def pop(self) -> dict[str, torch.Tensor]:
        features, self.features = self.features, {}
        return features

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def pair_by_resolution(
    student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], stages: tuple[str, ...] = ("down", "mid", "up")
) -> list[tuple[str, str]]:
    """Pairs (student key, teacher key) of the same stage and spatial size.

    OPEN (which pairs): per stage and resolution, the deepest feature of each model at that resolution
    (the last one in forward order) is matched; resolutions only one model has are left out.
    """

    def last_by_key(features: dict[str, torch.Tensor]) -> dict[tuple[str, tuple[int, int]], str]:
        keyed = {}
        for name, tensor in features.items():
            stage = name.split(".")[0]
            if stage in stages:
                keyed[stage, tuple(tensor.shape[-2:])] = name
        return keyed

    s, t = last_by_key(student), last_by_key(teacher)
    return [(s[key], t[key]) for key in s if key in t]


def export_teacher(sources: list[str], destination: str, dtype: torch.dtype = torch.float16) -> None:
    """Store a trained pipeline folder compactly (half-precision safetensors) as a shippable teacher; given several,
    store the mean of their weights, which must share one architecture and noise schedule (weight averaging:
    Izmailov et al., "Averaging Weights Leads to Wider Optima and Better Generalization", UAI 2018).

    ``load_teacher`` upcasts to the dtype a run asks for; half precision halves the file (6.3 M parameters,
    12.7 MB) and keeps the weights to 3 significant digits.
    """
    from diffusers import DDPMPipeline

    unet, scheduler, _ = load_model(sources[0])
    states = [unet.state_dict()]
    for source in sources[1:]:
        other = load_model(source)
        differences = (_differences("unet", unet.config, other.model.config, source)
                       + _differences("scheduler", scheduler.config, other.scheduler.config, source))
        if differences:
            raise CheckpointError(f"{source!r} cannot be averaged with {sources[0]!r}: {'; '.join(differences)}")
        states.append(other.model.state_dict())
    if len(states) > 1:
        unet.load_state_dict({key: torch.stack([state[key] for state in states]).mean(0) for key in states[0]})
    DDPMPipeline(unet=unet.to(dtype), scheduler=scheduler).save_pretrained(destination, safe_serialization=True)


if __name__ == "__main__":
    import argparse
    import sys

    from wgunet.common.cli import run_cli

    parser = argparse.ArgumentParser(description="Export a trained teacher run as a half-precision pipeline folder "
                                                 "(several runs: the mean of their weights).")
    parser.add_argument("command", choices=["export"])
    parser.add_argument("sources", nargs="+", help="trained model(s): runs/teacher/model [runs/other/model ...]")
    parser.add_argument("destination", help="where to write it: assets/teacher")
    args = parser.parse_args()
    sys.exit(run_cli(lambda: export_teacher(args.sources, args.destination)))
