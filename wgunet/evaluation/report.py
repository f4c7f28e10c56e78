"""eval.py report: the whole evaluation of a student against its teacher, as metrics.json and one report.html.

Layout of ``out``: ``samples/{student,teacher,student_stig}`` (sample.py folders, reused on a re-run),
``spectrum/`` (scores, FID/KID, spectra.png), ``probe/``, ``finc/``, ``stig/`` (a refiner trained here),
``metrics.json`` (every number) and ``report.html`` (self-contained: images embedded as data URIs, no script).
"""

from __future__ import annotations

import contextlib
import functools
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from wgunet.common.errors import UserError
from wgunet.common.files import folder_lock, write_json, write_text
from wgunet.common.processes import on_main, processes
from wgunet.evaluation.commands import refine_set
from wgunet.evaluation.features import TeacherFeatures, cached_features, feature_extractor, label
from wgunet.evaluation.fid import FidKid, read_fid_reference
from wgunet.evaluation.image_sets import GRID_IMAGES, make_grid, open_image_set, png_bytes
from wgunet.evaluation.outputs import write_modes, write_png_bytes, write_probe, write_spectrum
from wgunet.evaluation.plots import plot_training
from wgunet.evaluation.probe import DEFAULT_TIMESTEPS, spectral_probe
from wgunet.evaluation.report_page import STIG_SET, Report, render_html
from wgunet.evaluation.scores import compare_modes, score_sets
from wgunet.evaluation.stig import StigConfig, load_refiner, train_refiner
from wgunet.model.macs import count_parameters, describe, describe_autoencoder
from wgunet.sampling.loading import load_model
from wgunet.sampling.samplers import run_sampling
from wgunet.training.monitor import read_evaluations


class _Stages:
    """The report's progress bar, one tick per stage, and each stage's wall time: where a report's time goes."""

    def __init__(self, names: list[str], enabled: bool):
        self.bar = tqdm(names, desc="report", unit="stage", disable=not enabled)
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        self.bar.set_postfix_str(name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 1)
        self.bar.update()

    def close(self) -> None:
        self.bar.close()


class ReportError(UserError):
    """A report that cannot be made as asked; the message says what to change."""


def build_report(student: str, teacher: str, reference: str, num_samples: int, out: Path, *, scheduler: str = "ddim",
                 steps: int | None = None, seed: int = 0, batch_size: int | None = None, device: str = "auto",
                 features: str = "auto", finc_features: str = "teacher", stig_refiner: str | None = None,
                 stig_steps: int | None = None, probe_timesteps: tuple[int, ...] = DEFAULT_TIMESTEPS,
                 probe_images: int = 256, bootstrap: int = 200, convention: str = "seed",
                 fid_ref: str | None = None) -> Report | None:
    """Sample (or reuse), score, probe, FINC and optionally STIG; writes ``metrics.json`` and ``report.html``.

    Every checkpoint and image set is loaded once and handed on; bad input fails before minutes of sampling.
    Under ``accelerate launch`` / ``torchrun`` the processes split the sampling (wgunet.sampling.samplers) and the feature
    extraction for FID/KID and FINC (wgunet.evaluation.features); the rest runs on the main process, which returns the report
    (the others return None).
    """
    if stig_refiner and stig_steps:
        raise ReportError("pass either --stig-refiner (apply a trained refiner) or --stig-steps (train one), not both")
    models = {"teacher": load_model(teacher), "student": load_model(student)}
    size = models["student"].image_size
    if models["teacher"].image_size != size:
        raise ReportError(f"the student makes {size}px images and the teacher {models['teacher'].image_size}"
                          "px: compare models of one image size")
    reference_set = open_image_set(reference, size)  # every set is read batch by batch, never held whole
    translator = load_refiner(stig_refiner) if stig_refiner else None
    statistics = read_fid_reference(fid_ref) if fid_ref else None
    # the evaluations during training of the student's run (wgunet.training.monitor), read with the other inputs
    student_run = Path(student).parent
    training = read_evaluations(student_run)
    training_grids = {f"step {e['step']}": (student_run / "evals" / f"step-{e['step']}" / "grid.png").read_bytes()
                      for e in training}
    state = processes()
    main = state.is_main_process
    with folder_lock(out, "report") if main else contextlib.nullcontext():
        stage = _Stages(["sample teacher", "sample student", "STIG", "features", "spectra and FID/KID", "probe",
                         "FINC", "report.html"], enabled=main)
        samples, sampling = {}, {}
        for name, checkpoint in (("teacher", teacher), ("student", student)):
            with stage(f"sample {name}"):
                folder = out / "samples" / name
                # resume: images already in the folder (same checkpoint and settings) are kept, only missing ones drawn
                sampling[name] = run_sampling(checkpoint, num_samples, folder, scheduler=scheduler, steps=steps,
                                              batch_size=batch_size, seed=seed, device=device, resume=folder.is_dir(),
                                              model=models[name])
                samples[name] = open_image_set(folder)  # on every process: each embeds its share below
        refined = None

        def refine_student() -> str | None:  # STIG on the main process; the others wait for its folder
            nonlocal stig_refiner, translator, refined
            if stig_steps:
                run = out / "stig"
                stig_refiner = str(train_refiner(samples["student"], reference_set, run,
                                                 StigConfig(steps=stig_steps), resume=(run / "checkpoints").is_dir()))
                translator = load_refiner(stig_refiner)
            if translator is not None:
                refined = refine_set(translator, stig_refiner, samples["student"], out / "samples" / "student_stig",
                                     overwrite=True)
            return stig_refiner

        with stage("STIG"):
            stig_refiner = on_main(state, refine_student)
            if stig_refiner is not None:
                samples[STIG_SET] = refined if main else open_image_set(out / "samples" / "student_stig")
        with stage("features"):
            teacher_features = functools.cache(lambda: TeacherFeatures(*models["teacher"], teacher))
            scorer = FidKid(reference_set if statistics is None else statistics,
                            feature_extractor(features, teacher_features), state=state)
            generated = {name: scorer.features(image_set) for name, image_set in samples.items()}
            embed = feature_extractor(finc_features, teacher_features)
            cache = out / "finc" / "feature_cache"
            finc_vectors = {name: cached_features(samples[name], embed, cache, state) for name in ("student", "teacher")}
        if not main:
            return None
        with stage("spectra and FID/KID"):
            fid_kid = {name: scorer.score(vectors) for name, vectors in generated.items()}
            spectrum = score_sets(samples, reference_set, fid_kid, bootstrap, convention)
            figures = {"spectra": write_spectrum(out / "spectrum", spectrum)}
        with stage("probe"):
            probe = spectral_probe(models, reference_set.first(probe_images).load().images, probe_timesteps, seed)
            figures["probe"] = write_probe(out / "probe", probe)
        with stage("FINC"):
            modes = compare_modes(samples["student"], samples["teacher"], finc_vectors["student"],
                                  finc_vectors["teacher"], label(embed), ("student", "teacher"), seed=seed)
            figures["finc"] = write_modes(out / "finc", modes)
        with stage("report.html"):
            spread = torch.linspace(0, len(reference_set) - 1, min(GRID_IMAGES, len(reference_set))).long()  # all photos
            grids = {"real": png_bytes(make_grid(reference_set.take(spread).permute(0, 2, 3, 1).numpy()))}
            grids |= {name: png_bytes(make_grid(s.read(0, min(len(s), GRID_IMAGES)).permute(0, 2, 3, 1).numpy()))
                      for name, s in samples.items()}
            write_png_bytes(out / "real_grid.png", grids["real"])
            sizes = {name: describe(loaded.model) for name, loaded in models.items()}
            if models["student"].autoencoder is not None:  # counted apart: it runs once per image, not per step
                sizes["autoencoder"] = describe_autoencoder(models["student"].autoencoder)
            if translator is not None:  # the refiner's FFTs are not counted by the MAC counter
                sizes[STIG_SET] = {"params_M": sizes["student"]["params_M"] + count_parameters(translator) / 1e6,
                                   "GMACs": None}
            if training:
                figures["training"] = plot_training(training)
                write_png_bytes(out / "training.png", figures["training"])
                grids |= training_grids
            report = Report(student, teacher, num_samples, stig_refiner, samples, sampling, sizes, spectrum, probe,
                            modes, training, stage.seconds)
            write_text(out / "report.html", render_html(report, figures, grids))
        write_json(out / "metrics.json", report.to_dict())  # with the last stage's time
        stage.close()
    return report
