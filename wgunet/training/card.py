"""The model card every exported model folder carries: README.md, made with huggingface_hub's ModelCard."""

from __future__ import annotations

from pathlib import Path

import yaml
from huggingface_hub import ModelCard, ModelCardData

from wgunet.evaluation.definitions import SCORES
from wgunet.training.config import TrainConfig, to_dict
from wgunet.training.monitor import TrainingEvaluation


def hub_id(name: str | None) -> str | None:
    """``name`` when it is a Hub id (org/name) rather than a local folder."""
    return name if name is not None and name.count("/") == 1 and not Path(name).exists() and not name.startswith((".", "/", "~")) else None


# The code a model card shows: exactly what tests/test_portable.py runs in an interpreter without wgunet. Image i
# comes from its own generator seeded (seed * 1_000_003 + i), as in sample.py, so both make the same images: a pixel
# model with its full ancestral chain (sample.py --scheduler ddpm), a latent one with 50 DDIM steps (sample.py's
# default; diffusers' LDMPipeline draws a DDPM step's noise from torch's global generator, not the images' own).
LOAD_SNIPPET = """import torch
from diffusers import {imports}

pipeline = DiffusionPipeline.from_pretrained({source!r}, trust_remote_code={remote})
{scheduler}generators = [torch.Generator().manual_seed(0 * 1_000_003 + i) for i in range(4)]  # image i, seed 0: as sample.py
images = pipeline(batch_size=4, generator=generators, {steps}
                  output_type="np").images  # (4, H, W, 3) in [0, 1]
"""


def load_snippet(source: str, remote_code: bool, latent: bool = False) -> str:
    """The Python that loads an export from ``source`` (a folder or Hub id) and draws four images as sample.py
    does (see LOAD_SNIPPET)."""
    if latent:
        return LOAD_SNIPPET.format(
            imports="DDIMScheduler, DiffusionPipeline", source=source, remote=remote_code,
            scheduler="pipeline.scheduler = DDIMScheduler.from_config(pipeline.scheduler.config)  # sample.py's default\n",
            steps="num_inference_steps=50, eta=0.0, ")
    return LOAD_SNIPPET.format(imports="DiffusionPipeline", source=source, remote=remote_code, scheduler="",
                               steps="num_inference_steps=pipeline.scheduler.config.num_train_timesteps, ")


def remote_code_note(wavelet_gated: bool, autoencoder: str | None) -> str:
    """What a card says about the code that travels with the weights (wgunet.model.portable), if any does."""
    files = (["`unet/wgunet_unet.py` (the WG-UNet)"] if wavelet_gated else []) + (
        ["`wgunet_pipeline.py` (the latent pipeline: no diffusers pipeline for unconditional UNets takes an "
         "AutoencoderKL)"] if autoencoder == "vae" else [])
    if not files:
        return ""
    note = (f"The code diffusers does not have travels with the weights, {' and '.join(files)}, named in "
            "`model_index.json`: diffusers loads it with `trust_remote_code=True` and nothing else installed.")
    if wavelet_gated:
        note += (" `AutoModel.from_pretrained(\"THIS_FOLDER/unet\", trust_remote_code=True)` loads the UNet alone "
                 "(diffusers 0.42's AutoModel does not follow a custom component of model_index.json given "
                 "`subfolder=`; for a Hub id, pass the folder `huggingface_hub.snapshot_download` returns).")
    if wavelet_gated and autoencoder != "vae":
        note += (" diffusers then warns \"Expected types for unet: (UNet2DModel,), got WGUNet\": its pipeline's "
                 "signature names UNet2DModel, and any UNet with that call signature works in it.")
    return note


def model_card(config: TrainConfig, step: int, parameters: int, evaluation: TrainingEvaluation | None = None,
               autoencoder: str | None = None) -> str:
    """Front matter (library, tags, the teacher as base model, license) and what the model is, how it was trained
    (the whole config), its latest evaluation during training (``eval_every``) and how to load and sample it.
    ``autoencoder``: a latent student's autoencoder component ("vqvae" or "vae", wgunet.model.autoencoder)."""
    distilled = config.mode == "distill"
    wavelet_gated = distilled and config.student_class == "WGUNet"
    data = ModelCardData(library_name="diffusers", pipeline_tag="unconditional-image-generation", license="other",
                         base_model=hub_id(config.teacher if distilled else config.init_from),
                         tags=["wgunet", "diffusion", "ddpm"] + (["distillation"] if distilled else [])
                         + (["wavelet-gated-unet"] if wavelet_gated else []))
    kind = "A Wavelet-Gated UNet (WG-UNet) student" if wavelet_gated else f"A diffusers {config.student_class} student"
    what = (f"{kind}, {parameters / 1e6:.2f} M parameters, distilled from the teacher "
            f"`{config.teacher}` with L = {config.loss.lambda_ddpm} L_DDPM + {config.loss.lambda_spatial} L_spatial + "
            f"{config.loss.lambda_freq} L_freq" + (f", in the latent space of the teacher's autoencoder (`{autoencoder}/`)"
                                                   if autoencoder else "") if distilled else
            f"A diffusers UNet2DModel, {parameters / 1e6:.2f} M parameters, trained with the DDPM loss"
            + (f", starting from the weights of `{config.init_from}`" if config.init_from else ""))
    body = f"""# wgunet export: {Path(config.output_dir).name}, step {step}

{what} ({config.data.sample_size}x{config.data.sample_size} images from `{config.data.source}`), made with
wgunet. The weights are the EMA weights at step {step} of {config.max_steps}. License:
the weights derive from the training data{" and the teacher" if distilled else ""}, whose terms apply.

## Use

```python
{load_snippet("THIS_FOLDER_OR_HUB_ID", wavelet_gated or autoencoder == "vae", bool(autoencoder))}```
{remote_code_note(wavelet_gated, autoencoder)}

Faster, with the samplers set up as this model was trained (x0 clipping kept for DDIM and DPM-Solver++):
`python sample.py THIS_FOLDER --scheduler ddim --num-images 64 --out samples/`.

## Evaluation

{scores_section(evaluation)}`python eval.py report THIS_FOLDER --out report/` measures spectra,
FID/KID (features named in its output), the spectral-bias probe and FINC against the teacher.

## Training config

```yaml
{yaml.safe_dump(to_dict(config), sort_keys=False).strip()}
```
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def scores_section(evaluation: TrainingEvaluation | None) -> str:
    """The scores of the evaluation during training, as a table with their 95% intervals."""
    if evaluation is None:
        return "No evaluation during training up to this step (see eval_every).\n"
    rows = [(SCORES[name].title(), estimate) for name, estimate in evaluation.scores.items()]
    if evaluation.fid is not None:
        rows.append((f"FID ({evaluation.fid.features}; {evaluation.num_images} images, biased upward; lower is better)",
                     evaluation.fid.fid))
    table = "\n".join(f"| {name} | {e.value:.4g} | [{e.ci95[0]:.4g}, {e.ci95[1]:.4g}] |" for name, e in rows)
    return (f"Scored during training at step {evaluation.step}: {evaluation.num_images} images "
            f"({evaluation.sampler}, fixed seeds) against `{evaluation.reference}`.\n\n"
            f"| score | value | 95% interval |\n|---|---|---|\n{table}\n\n")
