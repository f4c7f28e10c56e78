"""A config's teacher and student side by side: parameters, MACs per image and their ratio (wgunet.model.macs
counts them; a latent teacher's autoencoder apart, with a whole sample's cost).

    python -m wgunet.training.sizes [--config configs/default.yaml]
"""

from __future__ import annotations

import argparse

from diffusers import UNet2DModel

from wgunet.model.autoencoder import Autoencoder
from wgunet.model.macs import describe, describe_autoencoder
from wgunet.training.config import load_config
from wgunet.training.loop import build_student
from wgunet.training.teacher import (
    AUTOENCODER_ARCHITECTURES,
    TEACHER_ARCHITECTURES,
    autoencoder_architecture,
    teacher_architecture,
)


def format_table(rows: list[dict]) -> str:
    base = rows[0]["GMACs"]
    lines = ["| model | params (M) | GMACs / image | first row's MACs / this |", "|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['params_M']:.2f} | {row['GMACs']:.3f} | {base / row['GMACs']:.1f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
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
