"""eval.py report: the whole evaluation of a student against its teacher, as metrics.json and one report.html.

Layout of ``out``: ``samples/{student,teacher,student_stig}`` (sample.py folders, reused on a re-run),
``spectrum/`` (scores, FID/KID, spectra.png), ``probe/``, ``finc/``, ``stig/`` (a refiner trained here),
``metrics.json`` (every number) and ``report.html`` (self-contained: images embedded as data URIs, no script).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import html
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from wgunet.common.errors import UserError
from wgunet.common.files import folder_lock, write_json, write_text
from wgunet.common.processes import on_main, processes
from wgunet.evaluation.commands import refine_set
from wgunet.evaluation.definitions import SCORES
from wgunet.evaluation.features import TeacherFeatures, cached_features, feature_extractor, label
from wgunet.evaluation.fid import FidKid, read_fid_reference
from wgunet.evaluation.image_sets import GRID_IMAGES, ImageSource, make_grid, open_image_set, png_bytes
from wgunet.evaluation.outputs import write_modes, write_png_bytes, write_probe, write_spectrum
from wgunet.evaluation.plots import in_set_order, plot_training
from wgunet.evaluation.probe import DEFAULT_TIMESTEPS, ProbeResult, format_cutoff, spectral_probe
from wgunet.evaluation.scores import ModeComparison, SpectrumResult, compare_modes, score_sets
from wgunet.evaluation.stig import StigConfig, load_refiner, train_refiner
from wgunet.model.macs import count_parameters, describe, describe_autoencoder
from wgunet.sampling.loading import load_model
from wgunet.sampling.samplers import run_sampling
from wgunet.training.monitor import read_evaluations

STIG_SET = "student + STIG"


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


@dataclass
class Report:
    student: str
    teacher: str
    num_samples: int
    stig_refiner: str | None
    samples: dict[str, ImageSource]  # teacher, student (and student + STIG): the sample folders
    sampling: dict[str, dict]  # each model's sampling record (sampler, steps, seed, speed)
    model_sizes: dict[str, dict]
    spectrum: SpectrumResult
    probe: ProbeResult
    modes: ModeComparison
    training: list[dict]  # the student's evaluations during training (wgunet.training.monitor), when its run folder has them
    seconds: dict[str, float]  # each stage's wall time (a reused sample set: about nothing)

    def to_dict(self) -> dict:
        return {"student": self.student, "teacher": self.teacher, "num_samples": self.num_samples,
                "stig_refiner": self.stig_refiner, "samples": {n: s.source for n, s in self.samples.items()},
                "sampling": self.sampling, "model_sizes": self.model_sizes, "spectrum": self.spectrum.to_dict(),
                "probe": {"timesteps": self.probe.timesteps,
                          "cutoff": {n: c.cutoff for n, c in self.probe.models.items()}},
                "finc": self.modes.to_dict(), "training": self.training,
                "seconds": self.seconds}


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


def _image(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(png: bytes, caption: str) -> str:
    return f"<figure>{_image(png, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"


PROBE_LATENT_NOTE = (" Latent models: x_t is made from the encoded reference in the latent space, where the models and "
                     "the optimal linear (Wiener) filter denoise (the filter is defined there, on the diffusion's x0); "
                     "every estimate is decoded and compared with the real images, so the autoencoder's own loss "
                     "counts as not recovered.")


def render_html(report: Report, figures: dict[str, bytes], grids: dict[str, bytes]) -> str:
    """The report page: every image embedded (the bytes written beside it), every number with its 95% interval."""
    spectrum, sets = report.spectrum, in_set_order(report.spectrum.sets)
    scores = {name: spectrum.sets[name] for name in sets}
    sizes = report.model_sizes
    score_rows = [["parameters (M)"] + [f"{sizes[n]['params_M']:.2f}" for n in sets],
                  ["GMACs per image (one network evaluation)"]
                  + ["-" if sizes[n]["GMACs"] is None else f"{sizes[n]['GMACs']:.3f}" for n in sets]]
    for key, _ in scores[sets[0]].scores.items():
        score_rows.append([SCORES[key].note()] + [str(getattr(s.scores, key)) for s in scores.values()])
    score_rows.append([SCORES["fid"].note()] + [str(s.fid_kid.fid) for s in scores.values()])
    score_rows.append([SCORES["kid"].note()]
                      + ["-" if s.fid_kid.kid_mean is None else f"{s.fid_kid.kid_mean:.5f} ± {s.fid_kid.kid_std:.5f}"
                         for s in scores.values()])
    score_rows.append(["images"] + [str(s.num) for s in scores.values()])
    probe = report.probe
    probe_models = in_set_order(probe.models)
    probe_rows = [[str(t)] + [format_cutoff(probe.models[n].cutoff[i]) for n in probe_models]
                  for i, t in enumerate(probe.timesteps)]
    finc = report.modes.to_dict()
    finc_rows = [[direction, str(j + 1), f"{m['eigenvalue']:.4f}", str(m["size"]), ", ".join(m["top"][:5])]
                 for key, direction in (("test_modes", "student over-produces"),
                                        ("reference_modes", "student under-produces"))
                 for j, m in enumerate(finc[key])]
    sampling = report.sampling["student"]
    setup_rows = [["student", report.student], ["teacher", report.teacher],
                  ["reference (real, held out)", f"{spectrum.reference} ({spectrum.num_reference} images)"],
                  ["sampler", f"{sampling['scheduler']}, {sampling['steps']} steps, seed {sampling['seed']}, "
                              f"{report.num_samples} images each"],
                  ["FID/KID features", spectrum.features],
                  ["FINC features", f"{finc['features']}; sigma {finc['sigma']:.4g}, noise floor "
                                    f"{finc['noise_floor']['test']:.4g} (student's modes) / "
                                    f"{finc['noise_floor']['reference']:.4g} (teacher's)"]]
    if report.stig_refiner:
        setup_rows.append(["STIG refiner", report.stig_refiner])
    setup_rows.append(["time per stage (s)", ", ".join(f"{stage} {s:.1f}" for stage, s in report.seconds.items())])
    if "autoencoder" in sizes:  # a latent student and teacher share it; not in the GMACs per network evaluation
        coder = sizes["autoencoder"]
        setup_rows.append(["autoencoder (latent models; counted apart)",
                           f"{coder['params_M']:.2f} M parameters; {coder['decode_GMACs']:.3f} GMACs to decode one "
                           f"{coder['image_size']}px image (once per sample), {coder['encode_GMACs']:.3f} to encode"])
    shown = min(GRID_IMAGES, report.num_samples)
    captions = {"real": f"real (held out): {GRID_IMAGES} of {spectrum.num_reference}, evenly spaced"}
    sample_grids = "".join(_figure(grids[name], captions.get(name, f"{name}: first {shown} samples"))
                           for name in in_set_order(["real", "teacher", "student"]))
    stig = ""
    if STIG_SET in grids:
        stig = ("<h2 id=\"stig\">STIG refinement of the student's samples</h2><div class=\"row grid\">"
                + _figure(grids["student"], "before (student)") + _figure(grids[STIG_SET], "after (student + STIG)")
                + "</div><p>Scores before and after are the student and student + STIG columns of the "
                  "<a href=\"#scores\">score table</a> above.</p>")
    training = ""
    if report.training:
        first = report.training[0]
        frames = "".join(_figure(grids[f"step {e['step']}"], f"step {e['step']}: high-frequency ratio "
                                 f"{e['scores']['high_frequency_ratio']['value']:.3g}, LSD "
                                 f"{e['scores']['log_spectral_distance_db']['value']:.3g} dB") for e in report.training)
        training = (f"<h2 id=\"training\">During training</h2><p>The EMA student every eval_every steps: "
                    f"{first['num_images']} images ({first['sampler']}) from the same noise each time, scored against "
                    f"{html.escape(first['reference'])} (run folder's evals/).</p><div class=\"plot\">"
                    + _figure(figures["training"], "scores against training step, 95% intervals as bands")
                    + f"</div><div class=\"row frames\">{frames}</div>")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
             "th{background:#f2f2f2}.row{display:flex;gap:1em;flex-wrap:wrap}figure{margin:0}"
             "img{max-width:100%;image-rendering:pixelated}.grid img{width:380px}figcaption{font-size:90%;color:#555}"
             ".plot img{width:100%;image-rendering:auto}.frames img{width:220px}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>wgunet report</title><style>{style}</style></head><body>
<h1>wgunet report: student vs teacher</h1>
{_table(["setting", "value"], setup_rows)}
<h2>Samples</h2><div class="row grid">{sample_grids}</div>
{training}
<h2 id="scores">Scores against the real set (95% bootstrap intervals)</h2>
{_table(["score"] + sets, score_rows)}
<h2>Reduced spectra</h2>{_figure(figures["spectra"], "mean reduced power spectra, log-log")}
<h2>Spectral-bias probe</h2>
<p>Share of the clean spectrum each model recovers from x_t, per radius; the table gives the radius below which
at least half is recovered.{PROBE_LATENT_NOTE if probe.space == "latents" else ""}</p>
<div class="plot">{_figure(figures["probe"], "recovered share of the clean spectrum per radius, one panel per timestep")}</div>
{_table(["t"] + probe_models, probe_rows)}
<h2>FINC: modes the student over- and under-produces against the teacher</h2>
<p>Eigenvalues of C_student - C_teacher (and the reverse) above the split-half noise floor; size is the
number of samples that load on the mode.</p>
{_table(["direction", "mode", "eigenvalue", "size", "top samples"], finc_rows) if finc_rows
 else "<p>No mode above the noise floor in either direction.</p>"}
{_figure(figures["finc"], "top samples of each mode")}
{stig}
</body></html>
"""
