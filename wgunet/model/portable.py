"""Exports that load without this package: the code diffusers does not have travels with the weights as custom
components it loads with ``trust_remote_code=True``:

- a WG-UNet: ``unet/wgunet_unet.py``, named in ``model_index.json`` and in ``unet/config.json``'s ``auto_map``;
- a latent model with an AutoencoderKL (no diffusers pipeline for unconditional UNets takes one): the pipeline,
  ``wgunet_pipeline.py`` beside ``model_index.json``, named as its ``_class_name``.

    DiffusionPipeline.from_pretrained(folder_or_hub_id, trust_remote_code=True)
    AutoModel.from_pretrained("folder/unet", trust_remote_code=True)

A module is not a copy: it is written at export time from the package's own files (in the order they import each
other, their imports of one another dropped), so it is the code the package runs. It imports torch and diffusers only; a
wavelet other than Haar brings its filter bank in the config (``wavelet_filters``).
"""

from __future__ import annotations

import re
from pathlib import Path

from wgunet.common.files import read_json, write_json, write_text

UNET_MODULE, UNET_CLASS, UNET_SOURCES = "wgunet_unet", "WGUNet", ("model/wavelets.py", "model/blocks.py", "model/unet.py")
PIPELINE_MODULE, PIPELINE_CLASS, PIPELINE_SOURCES = "wgunet_pipeline", "WGUNetLatentPipeline", ("sampling/latent_pipeline.py",)
FUTURE = "from __future__ import annotations"
PACKAGE_IMPORT = re.compile(r"^from wgunet(\.\w+)* import .*$")  # the concatenation defines those names
PACKAGE = Path(__file__).parents[1]


def module_source(sources: tuple[str, ...] = UNET_SOURCES) -> str:
    """One self-contained module: the package's files ``sources``, concatenated."""
    from wgunet import __version__

    parts = [f'"""Code of wgunet {__version__} (the Wavelet-Gated UNet of Yang et al., "Diffusion Probabilistic Model '
             f'Made Slim", CVPR 2023), written from the package\'s {", ".join(sources)} for diffusers\' '
             'trust_remote_code."""', "", FUTURE]
    for name in sources:
        lines = (PACKAGE / name).read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if line.strip() != FUTURE and not PACKAGE_IMPORT.match(line)]
        if any(re.match(r"\s*(from|import) (\.|wgunet)", line) for line in kept):
            raise RuntimeError(f"wgunet/{name} has an import of the package the export cannot resolve")
        parts += ["", f"# ---- wgunet/{name} " + "-" * 90, *kept]
    return "\n".join(parts) + "\n"


def make_portable(folder: str | Path) -> None:
    """Give a pipeline folder the code of the components diffusers lacks (see the module's docstring); a plain
    UNet2DModel in a pixel or VQ pipeline needs nothing."""
    folder = Path(folder)
    index = read_json(folder / "model_index.json")
    config = read_json(folder / "unet" / "config.json")
    if config.get("_class_name") == UNET_CLASS:
        write_text(folder / "unet" / f"{UNET_MODULE}.py", module_source(UNET_SOURCES))
        write_json(folder / "unet" / "config.json", {**config, "auto_map": {"AutoModel": f"{UNET_MODULE}.{UNET_CLASS}"}})
        index["unet"] = [UNET_MODULE, UNET_CLASS]
    if index.get("vae", [None, None])[1] == "AutoencoderKL":
        write_text(folder / f"{PIPELINE_MODULE}.py", module_source(PIPELINE_SOURCES))
        index["_class_name"] = [PIPELINE_MODULE, PIPELINE_CLASS]
    write_json(folder / "model_index.json", index)
