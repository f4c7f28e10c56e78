"""wgunet: Wavelet-Gated UNet students distilled from diffusion teachers, with spectral evaluation.

The package's wings: ``model`` (the WG-UNet), ``training``, ``sampling``, ``evaluation``, and ``common`` (errors,
files and locks, processes, devices, pixel ranges) that the others share.
"""

__version__ = "0.1.0"  # before the imports below: modules they load read it

from wgunet.model.blocks import WGDown, WGUp  # noqa: E402
from wgunet.model.unet import WGUNet  # noqa: E402

__all__ = ["WGDown", "WGUp", "WGUNet"]
