"""Evaluation during training (``eval_every``): what the model makes as it learns, scored the same way each time.

At every ``eval_every`` steps and at the end, the EMA model draws ``eval.num_images`` images from the same
per-image noise (sampling.image_generator), so the grids of successive steps compare frame by frame, and they are
scored against a held-out real set: the spectral scores of ``wgunet.evaluation.spectral`` and, when reference statistics are
given, FID. Each evaluation is written to ``evals/step-N/`` (grid.png, scores.json), to ``metrics.jsonl`` under
``eval/...`` keys and to the trackers (the grid as an image). On several processes each draws every k-th image.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from diffusers import DDPMScheduler
from torch import nn

from wgunet.common.errors import UserError
from wgunet.common.files import atomic_folder, write_json
from wgunet.common.processes import my_share, on_main, processes
from wgunet.common.results import Result
from wgunet.evaluation.features import feature_extractor
from wgunet.evaluation.fid import FidKid, FidKidScore, read_fid_reference
from wgunet.evaluation.image_sets import make_grid, open_image_set, png_bytes
from wgunet.evaluation.outputs import write_png_bytes
from wgunet.evaluation.spectral import (
    SpectralScores,
    accumulate,
    image_statistics,
    in_memory,
    resample_weights,
    scores_of,
    streaming_batch,
)
from wgunet.model.autoencoder import Autoencoder
from wgunet.sampling.samplers import build_pipeline, sample_images
from wgunet.training.config import ConfigError, EvalConfig

# the scores a run logs under eval/...: the headline ones; every score goes to scores.json
LOGGED = ("high_frequency_ratio", "log_spectral_distance_db", "lfd_stig", "lfd_mean_magnitude")


@dataclass
class TrainingEvaluation(Result):
    step: int
    num_images: int
    sampler: str  # "ddim x10"
    reference: str
    scores: SpectralScores  # against the reference, with 95% bootstrap intervals
    fid: FidKidScore | None  # against eval.fid_ref; FID of num_images images is biased upward: compare across steps
    seconds: float  # wall time of this evaluation (sampling, scoring, writing), what it added to the run

    def scalars(self) -> dict[str, float]:
        """The ``eval/...`` values logged to metrics.jsonl and the trackers."""
        values = {f"eval/{name}": getattr(self.scores, name).value for name in LOGGED}
        return values | ({"eval/fid": self.fid.fid.value} if self.fid else {})


class TrainingMonitor:
    """Loads the reference (and the FID statistics) once, when the run starts, so that bad input fails at once.
    Only the main process scores, so only it loads them; an error there stops every process."""

    def __init__(self, config: EvalConfig, sample_size: int, run_folder: Path, teacher: Callable[[], nn.Module],
                 autoencoder: Autoencoder | None = None):
        self.config, self.folder, self.autoencoder = config, run_folder / "evals", autoencoder  # latent: decodes
        self.source, self.real, self.fid = None, None, None
        on_main(processes(), lambda: self._load(sample_size, teacher))

    def _load(self, sample_size: int, teacher: Callable[[], nn.Module]) -> None:
        reference = open_image_set(self.config.reference, sample_size)
        if reference.size != (sample_size, sample_size):
            raise ConfigError(f"eval.reference {self.config.reference!r} holds {reference.size[0]}x{reference.size[1]} "
                              f"images and the model makes {sample_size}x{sample_size}: give real images of the "
                              "training size")
        # the resamples of spectral_scores (seed 0, the generated set's first), drawn once: the reference is read
        # batch by batch into its statistics under its weights, and each evaluation's images use the first ones
        generator, bootstrap = torch.Generator().manual_seed(0), self.config.bootstrap
        self.weights, real_weights = (resample_weights(n, bootstrap, generator) if bootstrap else None
                                      for n in (self.config.num_images, len(reference)))
        self.source = reference.source
        self.real = accumulate(reference.batches(streaming_batch(reference.size)), len(reference), real_weights)
        if self.config.fid_ref:
            self.fid = FidKid(read_fid_reference(self.config.fid_ref), feature_extractor(self.config.features, teacher))

    @torch.no_grad()
    def __call__(self, accelerator: Accelerator, model: nn.Module, schedule: DDPMScheduler,
                 step: int) -> TrainingEvaluation | None:
        """Evaluate ``model`` (its current weights); the result on the main process, None on the others."""
        config, started = self.config, time.perf_counter()
        indices = my_share(processes(), list(range(config.num_images)))
        pipeline = build_pipeline(model, schedule, self.autoencoder, config.scheduler, str(accelerator.device))
        was_training = model.training
        model.eval()
        drawn = sample_images(pipeline, indices, config.seed, config.steps) if indices else []
        model.train(was_training)
        gathered = gather_object(list(zip(indices, drawn)))
        if not accelerator.is_main_process:
            return None
        images = np.stack([image for _, image in sorted(gathered, key=lambda pair: pair[0])])
        tensor = torch.from_numpy(images).permute(0, 3, 1, 2)
        result = TrainingEvaluation(step, len(images), f"{config.scheduler} x{config.steps}", self.source,
                                    scores_of(in_memory(image_statistics(tensor), self.weights), self.real),
                                    self.fid(tensor) if self.fid else None, 0.0)
        grid = make_grid(images)
        log_grid(accelerator, grid, step)
        result.seconds = round(time.perf_counter() - started, 3)
        with atomic_folder(self.folder / f"step-{step}") as folder:
            write_png_bytes(folder / "grid.png", png_bytes(grid))
            write_json(folder / "scores.json", result.to_dict())
        return result


def log_grid(accelerator: Accelerator, grid: np.ndarray, step: int) -> None:
    """The grid to every tracker that stores images (each wants it in its own form)."""
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.log_images({"eval/grid": grid[None]}, step, dataformats="NHWC")
        elif tracker.name == "aim":
            tracker.log_images({"eval/grid": grid}, step)
        elif hasattr(tracker, "log_images"):
            tracker.log_images({"eval/grid": [grid]}, step)


def read_evaluations(run_folder: str | Path) -> list[dict]:
    """The scores.json of every ``evals/step-N/`` in a run folder, by step (empty when it has none)."""
    evaluations = []
    for path in Path(run_folder, "evals").glob("step-*/scores.json"):
        try:
            evaluations.append(json.loads(path.read_text()))
        except (OSError, ValueError) as error:
            raise UserError(f"{str(path)!r} is unreadable ({error}): delete its folder; the run's other evaluations "
                            "are kept") from None
    return sorted(evaluations, key=lambda e: e["step"])
