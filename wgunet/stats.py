"""Parameter count and multiply-accumulates per image for any UNet, ours or diffusers'.

    python -m wgunet.stats [--config configs/default.yaml]

MACs are counted by ``torch.utils.flop_counter`` (convolutions, matmuls, attention), halved from FLOPs;
element-wise work (norms, activations, the Haar butterflies) is not counted, for either model.
"""

from __future__ import annotations

import argparse

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
    """A latent model's autoencoder (wgunet.latents.Autoencoder), counted apart from the UNet: its parameters, and
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


def format_table(rows: list[dict]) -> str:
    base = rows[0]["GMACs"]
    lines = ["| model | params (M) | GMACs / image | first row's MACs / this |", "|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['params_M']:.2f} | {row['GMACs']:.3f} | {base / row['GMACs']:.1f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from .config import load_config
    from .model import WGUNet
    from .teacher import teacher_architecture

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/default.yaml", help="training config whose student is measured")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    from diffusers import UNet2DModel

    models = {"google/ddpm-cifar10-32 architecture (UNet2DModel)": teacher_architecture("google/ddpm-cifar10-32"),
              "shipped teacher (configs/teacher.yaml)": UNet2DModel(**load_config("configs/teacher.yaml").unet),
              f"WG-UNet student ({args.config})": WGUNet(**config.student)}
    rows = [{"model": name, **describe(model)} for name, model in models.items()]
    print(format_table(rows))


if __name__ == "__main__":
    main()
