"""Teachers: diffusers ``UNet2DModel`` checkpoints, their known architectures, and feature taps."""

from __future__ import annotations

from typing import Any

from diffusers import UNet2DModel

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


def teacher_architecture(name: str, **overrides: Any) -> UNet2DModel:
    """A randomly initialised UNet2DModel with a published teacher's architecture (no download)."""
    if name not in TEACHER_ARCHITECTURES:
        raise ValueError(f"no stored architecture for {name!r}; known: {sorted(TEACHER_ARCHITECTURES)}")
    return UNet2DModel(**{**TEACHER_ARCHITECTURES[name], **overrides})
