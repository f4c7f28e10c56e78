"""Parameter count and multiply-accumulates per image for any UNet, ours or diffusers'
(``python -m wgunet.training.sizes`` prints them for a config's teacher and student).

MACs are counted by ``torch.utils.flop_counter`` (convolutions, matmuls, attention), halved from FLOPs;
element-wise work (norms, activations, the Haar butterflies) is not counted, for either model. A latent teacher's
autoencoder is counted apart: it runs once per image (decode) or per training image (encode), not per step.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def macs_per_image(model: nn.Module, sample_size: int | None = None, in_channels: int | None = None) -> int:
    """MACs of one forward pass on one image at ``sample_size`` (default: the model's config)."""
    config = model.config
    size = sample_size or config.sample_size
    image = torch.zeros(1, in_channels or config.in_channels, size, size, device=model.device, dtype=model.dtype)
    with FlopCounterMode(display=False) as counter:
        model(image, torch.tensor([10], device=model.device))
    return counter.get_total_flops() // 2


def describe(model: nn.Module) -> dict:
    """Parameters (millions) and GMACs per image (one forward pass)."""
    return {"params_M": count_parameters(model) / 1e6, "GMACs": macs_per_image(model) / 1e9}


@torch.no_grad()
def describe_autoencoder(autoencoder) -> dict:
    """A latent model's autoencoder (wgunet.model.autoencoder.Autoencoder), counted apart from the UNet: its parameters, and
    the GMACs of decoding one image (once per sample, not per denoising step) and of encoding one (once per
    training image)."""
    model = autoencoder.model
    size = model.config.sample_size
    image = torch.zeros(1, model.config.in_channels, size, size, device=model.device, dtype=model.dtype)
    latents = torch.zeros(1, autoencoder.channels, size // autoencoder.factor, size // autoencoder.factor,
                          device=model.device, dtype=model.dtype)
    macs = {}
    for name, work in (("decode", lambda: model.decode(latents)), ("encode", lambda: model.encode(image))):
        with FlopCounterMode(display=False) as counter:
            work()
        macs[name] = counter.get_total_flops() / 2e9
    return {"params_M": count_parameters(model) / 1e6, "decode_GMACs": macs["decode"], "encode_GMACs": macs["encode"],
            "image_size": size}
