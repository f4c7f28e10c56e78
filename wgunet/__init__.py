"""wgunet: Wavelet-Gated UNet students distilled from diffusion teachers, with spectral evaluation."""

from .blocks import WGDown, WGUp
from .model import WGUNet

__all__ = ["WGDown", "WGUp", "WGUNet"]
__version__ = "0.1.0"
