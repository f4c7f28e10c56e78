"""Parameter count and multiply-accumulates per image for any UNet, ours or diffusers'.

    python -m wgunet.stats [--config configs/default.yaml]

MACs are counted by ``torch.utils.flop_counter`` (convolutions, matmuls, attention), halved from FLOPs;
element-wise work (norms, activations, the Haar butterflies) is not counted, for either model. A latent teacher's
autoencoder is counted apart: it runs once per image (decode) or per training image (encode), not per step.
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
    from diffusers import UNet2DModel

    from .config import load_config
    from .latents import Autoencoder
    from .training import build_student
    from .teacher import AUTOENCODER_ARCHITECTURES, TEACHER_ARCHITECTURES, autoencoder_architecture, teacher_architecture

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/default.yaml", help="training config whose student is measured "
                        "against its teacher's architecture (the shipped teacher's when it has no stored one)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if config.teacher in TEACHER_ARCHITECTURES:
        teachers = {f"{config.teacher} architecture (UNet2DModel)": teacher_architecture(config.teacher)}
    else:
        teachers = {"google/ddpm-cifar10-32 architecture (UNet2DModel)": teacher_architecture("google/ddpm-cifar10-32"),
                    "shipped teacher (configs/teacher.yaml)": UNet2DModel(**load_config("configs/teacher.yaml").unet)}
    first = next(iter(teachers.values()))
    teacher, student = first.config, build_student(config.student_class, config.student, first)  # as training does
    name = "WG-UNet" if config.student_class == "WGUNet" else config.student_class
    models = {**teachers, f"{name} student ({args.config})": student}
    rows = [{"model": name, **describe(model)} for name, model in models.items()]
    print(format_table(rows))
    if config.teacher in AUTOENCODER_ARCHITECTURES:
        coder = autoencoder_architecture(config.teacher)
        latent_factor = config.data.sample_size // teacher["sample_size"]
        counted = describe_autoencoder(Autoencoder(coder, 1.0, config.teacher, "vqvae"))
        print(f"\nautoencoder ({type(coder).__name__}, shared by teacher and student; counted apart): "
              f"{counted['params_M']:.2f} M parameters; decode {counted['decode_GMACs']:.2f} GMACs per "
              f"{counted['image_size']}px image (once per sample), encode {counted['encode_GMACs']:.2f} (once per "
              f"training image); latents {teacher['sample_size']}px, x{latent_factor}")
        unets = [row["GMACs"] for row in rows]  # first row: the teacher, last: the student
        for steps in (10, 50):  # a sample's whole cost: every step, then one decode
            whole = [steps * macs + counted["decode_GMACs"] for macs in (unets[0], unets[-1])]
            print(f"a sample with {steps} steps: teacher {whole[0]:.0f} GMACs, student {whole[1]:.0f} GMACs "
                  f"({whole[0] / whole[1]:.1f}x fewer with the decoder, {unets[0] / unets[-1]:.1f}x without)")


if __name__ == "__main__":
    main()
