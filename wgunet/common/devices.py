"""The device and precision a job runs in: the GPU when there is one, bf16 where the GPU has it, TF32 on CUDA."""

from __future__ import annotations

import torch

from wgunet.common.errors import UserError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DTYPE_CHOICES = ("auto", *DTYPES)


class DeviceError(UserError):
    """A device or precision this machine does not have; the message names what it has."""


def allow_tf32() -> None:
    """Let CUDA's float32 matmuls and convolutions use TF32 tensor cores (Ampere and newer; a 10-bit mantissa in
    the products, float32 accumulation), as training code on GPUs usually does. Nothing changes on other devices."""
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # torch >= 2.9
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        torch.backends.cudnn.conv.fp32_precision = "tf32"
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def pick_device(name: str = "auto") -> torch.device:
    """``name`` ("auto": the accelerator when there is one, else the CPU), checked to exist on this machine."""
    if name == "auto":
        device = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else torch.device("cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise DeviceError(f"--device {name!r} is not a device name: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type != "cpu":
        available = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
        count = torch.accelerator.device_count() if available is not None else 0
        if available is None or available.type != device.type or (device.index or 0) >= count:
            has = f"{count} {available.type} device(s)" if available is not None else "no accelerator"
            raise DeviceError(f"--device {name}: this machine has {has}; use --device auto or cpu")
    if device.type == "cuda":
        allow_tf32()
    return device


def emulated_bfloat16_warning(device: torch.device) -> str | None:
    """A warning when bfloat16 on ``device`` is emulated: a CPU without AVX-512 BF16 or AMX converts every bf16
    operand in software (the teacher's training step was 14x slower in bf16 than in float32 on a 2-core AVX2 CPU,
    docs/teacher.md). None on GPUs, on CPUs with those instructions, and where torch cannot tell."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if device.type != "cpu" or None in checks or any(check() for check in checks):
        return None
    return ("warning: this CPU has no AVX-512 BF16 or AMX, so bfloat16 is emulated and many times slower than "
            "float32 here; use float32 (mixed_precision=no, --dtype float32)")


def pick_dtype(name: str, device: torch.device) -> str:
    """``name``, or for "auto" bfloat16 on a GPU that computes in it and float32 elsewhere (CPUs emulate half
    precisions slowly unless they have AMX or AVX512-BF16, and the project's numbers are float32's)."""
    if name != "auto":
        return name
    return "bfloat16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
