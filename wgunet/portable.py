"""Exports that load without this package: the WG-UNet's code travels with its weights as a diffusers custom
component, ``unet/wgunet_unet.py``, named in ``model_index.json`` and in ``unet/config.json``'s ``auto_map``.

    DiffusionPipeline.from_pretrained(folder_or_hub_id, trust_remote_code=True)
    AutoModel.from_pretrained(folder_or_hub_id, subfolder="unet", trust_remote_code=True)

The module is not a copy: it is written at export time from the package's own model files (``SOURCES``, in the
order they import each other, their relative imports dropped), so it is the code the package runs. It imports
torch and diffusers only; a wavelet other than Haar brings its filter bank in the config (``wavelet_filters``).
"""

from __future__ import annotations

import re
from pathlib import Path

from .files import read_json, write_json, write_text

MODULE = "wgunet_unet"
SOURCES = ("wavelets.py", "blocks.py", "model.py")
CLASS = "WGUNet"
FUTURE = "from __future__ import annotations"
RELATIVE_IMPORT = re.compile(r"^from \.\w* import .*$")


def module_source() -> str:
    """The self-contained module: the package's model files, concatenated."""
    from . import __version__

    parts = [f'"""The WG-UNet of wgunet {__version__} (Yang et al., "Diffusion Probabilistic Model Made Slim", CVPR '
             f'2023), written from the package\'s {", ".join(SOURCES)} for diffusers\' trust_remote_code."""', "", FUTURE]
    for name in SOURCES:
        lines = (Path(__file__).parent / name).read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() != FUTURE and not RELATIVE_IMPORT.match(line)]
        if any(line.lstrip().startswith("from .") for line in kept):
            raise RuntimeError(f"wgunet/{name} has a relative import the export cannot resolve")
        parts += ["", f"# ---- wgunet/{name} " + "-" * 90, *kept]
    return "\n".join(parts) + "\n"


def make_portable(folder: str | Path) -> None:
    """Give a pipeline folder whose ``unet/`` holds a WG-UNet its code: the module, the component entry of
    ``model_index.json`` and the ``auto_map`` of ``unet/config.json``. Other UNets need nothing."""
    folder = Path(folder)
    config = read_json(folder / "unet" / "config.json")
    if config.get("_class_name") != CLASS:
        return
    write_text(folder / "unet" / f"{MODULE}.py", module_source())
    write_json(folder / "unet" / "config.json", {**config, "auto_map": {"AutoModel": f"{MODULE}.{CLASS}"}})
    index = read_json(folder / "model_index.json")
    write_json(folder / "model_index.json", {**index, "unet": [MODULE, CLASS]})
