"""Sampling: images from any checkpoint with DDPM, DDIM or DPM-Solver++, batched, seeded, resumable.

Image ``i`` of a run is drawn from its own generator, seeded from (seed, i), for its initial noise and
for every stochastic step; so on a CPU the images do not depend on the batch size or on where a run resumed. On
a GPU, kernels may round differently for other batch shapes: a resumed run draws its missing images in the
batches of the uninterrupted run (``run_batches``), so that its images are the same as that run's.
Finished images are numbered PNGs written atomically; they are the run's state for ``resume`` (the folder format
is ``wgunet.evaluation.image_sets``'s).
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler, DPMSolverMultistepScheduler
from tqdm.auto import tqdm

from wgunet.common.compilation import compiled
from wgunet.common.devices import DTYPES, emulated_bfloat16_warning, pick_device, pick_dtype
from wgunet.common.errors import UserError
from wgunet.common.files import folder_lock
from wgunet.common.processes import my_share, on_main, processes
from wgunet.evaluation.image_sets import (
    derived_files_match,
    finish_image_folder,
    image_name,
    prepare_image_folder,
    write_png,
)
from wgunet.model.autoencoder import Autoencoder
from wgunet.sampling import SAMPLERS
from wgunet.sampling.latent_pipeline import WGUNetLatentPipeline
from wgunet.sampling.loading import Checkpoint, load_model, weights_of

SCHEDULERS = dict(zip(SAMPLERS, (DDPMScheduler, DDIMScheduler, DPMSolverMultistepScheduler)))
DEFAULT_STEPS = {"ddpm": None, "ddim": 50, "dpm++": 20}  # None: the full training chain


class SamplingError(UserError):
    """A sampling run that cannot start; the message names the problem and the fix."""


def sampler_config(name: str, training_schedule: dict) -> dict:
    """The training schedule's config, translated so that sampler ``name`` treats the model as it was trained.

    Noise schedule, ``prediction_type``, ``timestep_spacing`` and ``steps_offset`` carry over as they are. x0
    clipping (``clip_sample``, which DDPM-trained teachers such as google/ddpm-* and assets/teacher rely on at
    large t) is a DDPM/DDIM option that DPM-Solver++ does not have; it has dynamic thresholding, which clips x0
    to [-s, s] and divides by s with s = clamp(quantile(|x0|), 1, sample_max_value). With sample_max_value = 1,
    s = 1 and that is exactly x0.clamp(-1, 1). Without it, DPM-Solver++ on the shipped teacher gave flat
    saturated tiles (most pixels at 0 or 255).
    """
    # diffusers swaps values listed in _use_default_values for the new class's defaults (DPM-Solver++'s "linspace"
    # spacing for the DDPM schedule's "leading", say); every value of the training schedule is kept instead.
    config = {k: v for k, v in training_schedule.items() if k != "_use_default_values"}
    if name == "dpm++" and config.get("clip_sample") and not config.get("thresholding"):
        if config.get("clip_sample_range", 1.0) != 1.0:
            raise SamplingError(f"this model clips x0 to +-{config['clip_sample_range']}, which DPM-Solver++'s "
                                "thresholding cannot reproduce (only +-1): use --scheduler ddim or ddpm")
        config.update(thresholding=True, sample_max_value=1.0)
    return config


def load_pipeline(checkpoint: str, scheduler: str = "ddim", device: str = "auto") -> Pipeline:
    """A pipeline of the checkpoint's model and the chosen sampler (see ``build_pipeline``)."""
    return build_pipeline(*load_model(checkpoint), scheduler, device)


Pipeline = DDPMPipeline | DDIMPipeline | WGUNetLatentPipeline


def build_pipeline(model: torch.nn.Module, training_schedule: DDPMScheduler, autoencoder: Autoencoder | None = None,
                   scheduler: str = "ddim", device: str = "auto") -> Pipeline:
    """A pipeline of a loaded model (wgunet.sampling.loading.Checkpoint) and the chosen sampler, built from the model's own
    noise schedule; a latent model's pipeline decodes with its autoencoder."""
    if scheduler not in SCHEDULERS:
        raise SamplingError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    sampler = SCHEDULERS[scheduler].from_config(sampler_config(scheduler, training_schedule.config))
    if autoencoder is not None:
        pipeline = WGUNetLatentPipeline(unet=model, vae=autoencoder.model, scheduler=sampler)
    else:  # DDIMPipeline, because only it passes use_clipped_model_output to the scheduler (see sample_images)
        pipeline = (DDIMPipeline if scheduler == "ddim" else DDPMPipeline)(unet=model, scheduler=sampler)
    pipeline = pipeline.to(pick_device(device))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def image_generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + index)  # one stream per (seed, image)


@torch.inference_mode()  # no autograd bookkeeping at all: the images leave as numpy
def sample_images(pipeline: Pipeline, indices: list[int], seed: int, steps: int,
                  dtype: torch.dtype = torch.float32) -> np.ndarray:
    """uint8 images (B, H, W, C) for the given image indices.

    ``dtype`` bfloat16 or float16: the model computes in it under autocast (float32 weights, the model's matmuls
    and convolutions in the half type), while the sampler's updates stay in float32: a half-precision x_t
    would lose the small steps of the ODE.
    """
    generators = [image_generator(seed, i) for i in indices]
    # DDIM: when x0 is clipped, the noise estimate is re-derived from the clipped x0 (use_clipped_model_output), so
    # that the DDIM update stays on one trajectory. diffusers' default mixes the clipped x0 with the unclipped
    # noise; on the shipped teacher that collapsed the samples to low-contrast grey (pixel std 0.21, real 0.59).
    # Without clipping the option changes nothing but rounding, and is left out: the steps are then exactly those
    # of diffusers' own pipelines (an export's model card samples with them).
    options = {}
    if isinstance(pipeline.scheduler, DDIMScheduler):
        clips = pipeline.scheduler.config.clip_sample or pipeline.scheduler.config.thresholding
        options = {"eta": 0.0, **({"use_clipped_model_output": True} if clips else {})}
    with torch.autocast(pipeline.device.type, dtype=dtype, enabled=dtype != torch.float32):
        images = pipeline(batch_size=len(indices), generator=generators, num_inference_steps=steps, output_type="np",
                          **options).images
    if not np.isfinite(images).all():
        raise SamplingError("the model made NaN or Inf pixel values: its weights or --dtype overflow (try --dtype "
                            "float32, or an earlier checkpoint)")
    return (images * 255).round().astype(np.uint8)


def run_batches(todo: list[int], num: int, batch_size: int) -> list[tuple[list[int], set[int]]]:
    """The batches that draw the images ``todo``, each with those of its images still to write.

    A run's batches are fixed: batch k holds images k * batch_size ... (k + 1) * batch_size - 1 of the ``num``.
    The noise of every image is its own (``image_generator``), so on a CPU an image does not depend on its batch
    at all; a GPU's kernels can depend on the batch's shape and content, and drawing a resumed run's missing
    images in the batches of the uninterrupted run keeps its images identical there too.
    """
    missing: dict[int, set[int]] = {}
    for index in todo:
        missing.setdefault(index // batch_size, set()).add(index)
    return [(list(range(k * batch_size, min(num, (k + 1) * batch_size))), missing[k]) for k in sorted(missing)]


def default_batch_size(sample_size: int) -> int:
    return max(1, 128 * 32 * 32 // sample_size**2)  # about 400k pixels a batch: 128 at 32x32, 2 at 256x256


def run_sampling(checkpoint: str, num: int, out: str | Path, *, scheduler: str = "ddim", steps: int | None = None,
                 batch_size: int | None = None, seed: int = 0, device: str = "auto", dtype: str = "float32",
                 resume: bool = False, overwrite: bool = False, compile: bool = False,
                 model: Checkpoint | None = None) -> dict:
    """Write ``num`` images as ``out/NNNNNN.png``, ``out/grid.png`` and ``out/samples.npz``; returns the run record.

    ``model``: the checkpoint's (model, training schedule) when the caller has loaded it already.
    ``compile``: torch.compile the model (eager, with a warning, where that is not possible); the record's
    ``seconds`` then include the compilation, which the first batch pays.
    One sampling run per folder at a time (a lock in the folder, free as soon as its holder dies).
    Under ``accelerate launch`` / ``torchrun`` each process draws every n-th missing image on its own device and
    the main process keeps the lock, the record and the derived files: the images are those of one process.
    """
    if resume and overwrite:
        raise SamplingError("--resume keeps the images in the folder and --overwrite deletes them: pass one")
    out, state = Path(out), processes()
    device = pick_device(str(state.device) if state.num_processes > 1 and device == "auto" else device)
    dtype = pick_dtype(dtype, device)
    if dtype == "bfloat16" and state.is_main_process and (warning := emulated_bfloat16_warning(device)):
        print(warning, file=sys.stderr)
    loaded = model or load_model(checkpoint)
    pipeline = build_pipeline(*loaded, scheduler, str(device))
    if compile:
        compiled(pipeline.unet)
    trained = pipeline.scheduler.config.num_train_timesteps
    steps = steps or DEFAULT_STEPS[scheduler] or trained
    if steps > trained:
        raise SamplingError(f"--steps {steps} is more than the {trained} steps the model was trained with: use at most "
                            f"{trained}")
    record = {"checkpoint": str(checkpoint), "scheduler": scheduler, "steps": steps, "seed": seed, "dtype": dtype,
              "sample_size": loaded.image_size, "weights": weights_of(loaded.model)}  # what the images depend on (not compile)
    with folder_lock(out, "sampling") if state.is_main_process else contextlib.nullcontext():
        todo = on_main(state, lambda: prepare_image_folder(out, num, record, resume, overwrite))
        batch_size = batch_size or default_batch_size(loaded.image_size)
        bar = tqdm(total=num, initial=num - len(todo), unit="img", desc=f"{scheduler} x{steps}",
                   disable=not state.is_main_process)
        started = time.perf_counter()
        for batch, missing in my_share(state, run_batches(todo, num, batch_size)):
            for index, image in zip(batch, sample_images(pipeline, batch, seed, steps, DTYPES[dtype])):
                if index in missing:
                    write_png(image, out / image_name(index))
            bar.update(len(missing) * state.num_processes)
        bar.close()
        state.wait_for_everyone()
        seconds = time.perf_counter() - started
        # a finished folder is left untouched (so caches keyed on its files stay valid); derived files a kill
        # left missing or unreadable are rebuilt from the PNGs
        if state.is_main_process and (todo or not derived_files_match(out, num)):
            finish_image_folder(out, num)
        state.wait_for_everyone()
    images_per_second = len(todo) / seconds if todo else float("nan")
    record.update(num=num, sampled_now=len(todo), seconds=round(seconds, 3), images_per_second=images_per_second)
    return record
