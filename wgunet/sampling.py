"""Sampling: images from any checkpoint with DDPM, DDIM or DPM-Solver++, batched, seeded, resumable.

Image ``i`` of a run is drawn from its own generator, seeded from (seed, i), for its initial noise and
for every stochastic step; so the images do not depend on the batch size or on where a run resumed.
Finished images are numbered PNGs written atomically; they are the run's state for ``resume``.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline, DDPMScheduler, DPMSolverMultistepScheduler
from PIL import Image
from tqdm.auto import tqdm

from .checkpoints import DTYPES, load_model
from .cli import UserError
from .files import folder_lock, write_file, write_json

SCHEDULERS = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler, "dpm++": DPMSolverMultistepScheduler}
DEFAULT_STEPS = {"ddpm": None, "ddim": 50, "dpm++": 20}  # None: the full training chain
GRID_IMAGES = 64


class SamplingError(UserError):
    """A sampling run that cannot start; the message names the problem and the fix."""


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    return torch.accelerator.current_accelerator() if torch.accelerator.is_available() else torch.device("cpu")


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


def load_pipeline(checkpoint: str, scheduler: str = "ddim", device: str = "auto",
                  dtype: str = "float32") -> DDPMPipeline | DDIMPipeline:
    """A pipeline of the checkpoint's model and the chosen sampler, built from the model's own noise schedule."""
    if scheduler not in SCHEDULERS:
        raise SamplingError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
    model, training_schedule = load_model(checkpoint, DTYPES[dtype])
    sampler = SCHEDULERS[scheduler].from_config(sampler_config(scheduler, training_schedule.config))
    # DDIMPipeline, because only it passes use_clipped_model_output to the scheduler (see sample_images).
    pipeline_class = DDIMPipeline if scheduler == "ddim" else DDPMPipeline
    pipeline = pipeline_class(unet=model, scheduler=sampler).to(pick_device(device))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def image_generator(seed: int, index: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + index)  # one stream per (seed, image)


@torch.no_grad()
def sample_images(pipeline: DDPMPipeline | DDIMPipeline, indices: list[int], seed: int, steps: int) -> np.ndarray:
    """uint8 images (B, H, W, C) for the given image indices."""
    generators = [image_generator(seed, i) for i in indices]
    # DDIM: when x0 is clipped, the noise estimate is re-derived from the clipped x0 (use_clipped_model_output), so
    # that the DDIM update stays on one trajectory. diffusers' default mixes the clipped x0 with the unclipped
    # noise; on the shipped teacher that collapsed the samples to low-contrast grey (pixel std 0.21, real 0.59).
    options = {"eta": 0.0, "use_clipped_model_output": True} if isinstance(pipeline, DDIMPipeline) else {}
    images = pipeline(batch_size=len(indices), generator=generators, num_inference_steps=steps, output_type="np",
                      **options).images
    return (images * 255).round().astype(np.uint8)


def default_batch_size(sample_size: int) -> int:
    return max(1, 128 * 32 * 32 // sample_size**2)  # about 400k pixels a batch: 128 at 32x32, 2 at 256x256


def run_sampling(checkpoint: str, num: int, out: str | Path, *, scheduler: str = "ddim", steps: int | None = None,
                 batch_size: int | None = None, seed: int = 0, device: str = "auto", dtype: str = "float32",
                 resume: bool = False, overwrite: bool = False) -> dict:
    """Write ``num`` images as ``out/NNNNNN.png``, ``out/grid.png`` and ``out/samples.npz``; returns the run record.

    One sampling run per folder at a time (a lock in the folder, free as soon as its holder dies).
    """
    if resume and overwrite:
        raise SamplingError("--resume keeps the images in the folder and --overwrite deletes them: pass one")
    out = Path(out)
    pipeline = load_pipeline(checkpoint, scheduler, device, dtype)
    steps = steps or DEFAULT_STEPS[scheduler] or pipeline.scheduler.config.num_train_timesteps
    record = {"checkpoint": str(checkpoint), "scheduler": scheduler, "steps": steps, "seed": seed, "dtype": dtype,
              "sample_size": pipeline.unet.config.sample_size}
    with folder_lock(out, "sampling"):
        todo = prepare_image_folder(out, num, record, resume, overwrite)
        batch_size = batch_size or default_batch_size(pipeline.unet.config.sample_size)
        bar = tqdm(total=num, initial=num - len(todo), unit="img", desc=f"{scheduler} x{steps}")
        started = time.perf_counter()
        for first in range(0, len(todo), batch_size):
            indices = todo[first : first + batch_size]
            for index, image in zip(indices, sample_images(pipeline, indices, seed, steps)):
                write_png(image, out / image_name(index))
            bar.update(len(indices))
        bar.close()
        seconds = time.perf_counter() - started
        # a finished folder is left untouched (so caches keyed on its files stay valid); derived files a kill
        # left missing or unreadable are rebuilt from the PNGs
        if todo or not _derived_files_match(out, num):
            finish_image_folder(out, num)
    images_per_second = len(todo) / seconds if todo else float("nan")
    record.update(num=num, sampled_now=len(todo), seconds=round(seconds, 3), images_per_second=images_per_second)
    return record


def image_name(index: int) -> str:
    return f"{index:06d}.png"


IMAGE_NAME = re.compile(r"^\d{6}\.png$")


def prepare_image_folder(out: Path, num: int, record: dict, resume: bool, overwrite: bool,
                         resumable: bool = True) -> list[int]:
    """The indices still to draw; refuses to mix runs, to overwrite images silently, or to touch a user's files.

    ``sampling.json`` records the settings and how many images this tool has planned in the folder
    (``images_written``: names 000000.png up to it). It is written before any image, so every PNG of ours is on
    record even if a kill comes between, and --overwrite deletes only those names and the derived files.
    """
    settings = out / "sampling.json"
    existing = sorted(p.name for p in out.iterdir() if IMAGE_NAME.match(p.name)) if out.is_dir() else []
    before = _read_record(settings)
    if existing and not (resume or overwrite):
        choices = "--resume to continue that run, --overwrite to replace it" if resumable else "--overwrite to replace them"
        raise SamplingError(f"{str(out)!r} already holds {len(existing)} images: pass {choices}, or another --out")
    ours = {image_name(i) for i in range(before.get("images_written", 0))}
    if before and "images_written" not in before:  # a record from before the manifest: its images are ours
        ours = set(existing)
    if overwrite:
        for name in sorted(ours) + ["grid.png", "samples.npz", "sampling.json"]:
            (out / name).unlink(missing_ok=True)
        existing, before, ours = [n for n in existing if n not in ours], {}, set()
    foreign = [n for n in existing if n not in ours]
    if foreign:
        raise SamplingError(f"{str(out)!r} holds images that sample.py did not write there ({', '.join(foreign[:3])}"
                            f"{' ...' if len(foreign) > 3 else ''}): move them, or use another --out")
    if existing:
        changed = [k for k in record if before.get(k) != record[k]]
        if changed:
            raise SamplingError(f"{str(out)!r} was sampled with other settings ({', '.join(changed)}): "
                                "resume with the same ones, or use --overwrite or another --out")
    stored = {**record, "images_written": max([num, before.get("images_written", 0)]
                                              + [int(n[:6]) + 1 for n in existing])}
    if before != stored:
        write_json(settings, stored)
    done = set(existing)
    return [i for i in range(num) if image_name(i) not in done]


def _read_record(path: Path) -> dict:
    """The folder's ``sampling.json``; an unreadable one (a kill mid-write, before writes were atomic) is empty."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}


def _derived_files_match(out: Path, num: int) -> bool:
    """``samples.npz`` holds ``num`` images and ``grid.png`` decodes."""
    try:
        with np.load(out / "samples.npz") as archive:
            if len(archive["images"]) != num:
                return False
        with Image.open(out / "grid.png") as grid:
            grid.verify()
        return True
    except (OSError, EOFError, KeyError, ValueError, SyntaxError):
        return False


def write_png(image: np.ndarray, path: Path) -> None:
    """An image as PNG, atomically: an interrupted write never leaves a truncated image behind."""
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    write_file(path, lambda handle: picture.save(handle, format="PNG"))


def finish_image_folder(out: Path, num: int) -> None:
    """``grid.png`` of the first images and ``samples.npz`` (uint8, N x H x W x C), streamed through a memmap."""
    paths = [out / image_name(i) for i in range(num)]

    def read(path: Path) -> np.ndarray:
        with Image.open(path) as image:
            return np.atleast_3d(np.asarray(image))

    first = read(paths[0])
    scratch = out / f".samples.{os.getpid()}.npy"
    images = np.lib.format.open_memmap(scratch, mode="w+", dtype=np.uint8, shape=(num, *first.shape))
    try:
        for i, path in enumerate(paths):
            images[i] = read(path)
        write_file(out / "samples.npz", lambda handle: np.savez(handle, images=images))
        grid = Image.fromarray(make_grid(np.asarray(images[:GRID_IMAGES])))
        write_file(out / "grid.png", lambda handle: grid.save(handle, format="PNG"))
    finally:
        del images
        scratch.unlink(missing_ok=True)


def make_grid(images: np.ndarray, pad: int = 2) -> np.ndarray:
    """A square-ish grid of (N, H, W, C) uint8 images on a white background."""
    n, h, w = images.shape[:3]
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, *images.shape[3:]), 255, np.uint8)
    for i, image in enumerate(images):
        y, x = divmod(i, columns)
        grid[pad + y * (h + pad) : (y + 1) * (h + pad), pad + x * (w + pad) : (x + 1) * (w + pad)] = image
    return grid
