"""eval.py report: the whole evaluation of a student against its teacher, as metrics.json and one report.html.

Layout of ``out``: ``samples/{student,teacher,student_stig}`` (sample.py folders, reused on a re-run),
``spectrum/`` (scores, FID/KID, spectra.png), ``probe/``, ``finc/``, ``stig/`` (a refiner trained here),
``metrics.json`` (every number) and ``report.html`` (self-contained: images embedded as data URIs, no script).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import load_model
from .cli import UserError
from .data import load_image_set
from .evaluate import apply_stig, evaluate_spectrum, run_finc, run_probe, train_stig
from .files import folder_lock, write_json, write_text
from .plots import in_set_order
from .probe import DEFAULT_TIMESTEPS, format_cutoff
from .sampling import GRID_IMAGES, make_grid, run_sampling, write_png
from .stats import count_parameters, macs_per_image
from .stig import load_refiner

STIG_SET = "student + STIG"


class ReportError(UserError):
    """A report that cannot be made as asked; the message says what to change."""


def build_report(student: str, teacher: str, reference: str, num: int, out: str | Path, *, scheduler: str = "ddim",
                 steps: int | None = None, seed: int = 0, batch_size: int | None = None, device: str = "auto",
                 features: str = "auto", finc_features: str = "teacher", stig_refiner: str | None = None,
                 stig_steps: int | None = None, probe_timesteps: tuple[int, ...] = DEFAULT_TIMESTEPS,
                 bootstrap: int = 200) -> dict:
    """Sample (or reuse), score, probe, FINC and optionally STIG; writes ``metrics.json`` and ``report.html``."""
    if stig_refiner and stig_steps:
        raise ReportError("pass either --stig-refiner (apply a trained refiner) or --stig-steps (train one), not both")
    # a bad checkpoint, reference or refiner fails now, not after minutes of sampling
    model_sizes = {name: describe(checkpoint) for name, checkpoint in (("teacher", teacher), ("student", student))}
    load_image_set(reference, limit=2)
    if stig_refiner:
        load_refiner(stig_refiner)
    out = Path(out)
    with folder_lock(out, "report"):
        return _build_report(student, teacher, reference, num, out, scheduler, steps, seed, batch_size, device, features,
                             finc_features, stig_refiner, stig_steps, probe_timesteps, bootstrap, model_sizes)


def _build_report(student, teacher, reference, num, out, scheduler, steps, seed, batch_size, device, features,
                  finc_features, stig_refiner, stig_steps, probe_timesteps, bootstrap, model_sizes) -> dict:
    stages = ["sample student", "sample teacher", "STIG", "spectra and FID/KID", "probe", "FINC", "report.html"]
    bar = tqdm(stages, desc="report", unit="stage")
    samples, sampling = {}, {}
    for name, checkpoint in (("teacher", teacher), ("student", student)):
        bar.set_postfix_str(f"sample {name}")
        folder = out / "samples" / name
        # resume: images already in the folder (same checkpoint and settings) are kept, only missing ones are drawn
        sampling[name] = run_sampling(checkpoint, num, folder, scheduler=scheduler, steps=steps, batch_size=batch_size,
                                      seed=seed, device=device, resume=folder.is_dir())
        samples[name] = str(folder)
        bar.update()
    size = sampling["student"]["sample_size"]
    if sampling["teacher"]["sample_size"] != size:
        raise ReportError(f"the student makes {size}px images and the teacher {sampling['teacher']['sample_size']}px: "
                          "compare models of one image size")
    bar.set_postfix_str("STIG")
    if stig_steps:
        stig_run = out / "stig"
        stig_refiner = str(train_stig(samples["student"], reference, stig_run, size=size, steps=stig_steps,
                                      resume=(stig_run / "checkpoints").is_dir()))
    if stig_refiner:
        samples[STIG_SET] = str(out / "samples" / "student_stig")
        apply_stig(stig_refiner, samples["student"], samples[STIG_SET], size=size, overwrite=True)
    bar.update()
    bar.set_postfix_str("spectra, FID/KID")
    spectrum = evaluate_spectrum(samples, reference, out / "spectrum", features=features, teacher=teacher, size=size,
                                 bootstrap=bootstrap)
    bar.update()
    bar.set_postfix_str("probe")
    probe = run_probe({"teacher": teacher, "student": student}, reference, out / "probe", size=size,
                      limit=min(num, 256), timesteps=probe_timesteps, seed=seed)  # as many real images as samples, <= 256
    bar.update()
    bar.set_postfix_str("FINC")
    finc = run_finc(samples["student"], samples["teacher"], out / "finc", features=finc_features, teacher=teacher,
                    size=size, seed=seed, set_names=("student", "teacher"))
    bar.update()
    real_images, _ = load_image_set(reference, size)
    spread = torch.linspace(0, len(real_images) - 1, min(GRID_IMAGES, len(real_images))).long()  # every source photo
    write_png(make_grid(real_images[spread].permute(0, 2, 3, 1).numpy()), out / "real_grid.png")
    metrics = {
        "student": student, "teacher": teacher, "reference": reference, "num": num, "stig_refiner": stig_refiner,
        "samples": samples, "sampling": sampling,
        "features": next(iter(spectrum["fid_kid"].values()))["features"],
        "scores": spectrum["scores"], "fid_kid": spectrum["fid_kid"], "num_reference": spectrum["num_reference"],
        "reduced_spectrum": spectrum["reduced_spectrum"],
        "probe": {"timesteps": probe["timesteps"], "cutoff": {n: m["cutoff"] for n, m in probe["models"].items()}},
        "finc": finc,
        "model_sizes": model_sizes,
    }
    if stig_refiner:
        metrics["model_sizes"][STIG_SET] = {"params_M": metrics["model_sizes"]["student"]["params_M"]
                                            + count_parameters(load_refiner(stig_refiner)) / 1e6,
                                            "GMACs": None}  # the refiner's FFTs are not counted by the MAC counter
    write_json(out / "metrics.json", metrics)
    bar.set_postfix_str("report.html")
    write_text(out / "report.html", render_html(metrics, out))
    bar.update()
    bar.close()
    return metrics


def describe(checkpoint: str) -> dict:
    """Parameters (millions) and GMACs per image of a checkpoint's model."""
    model, _ = load_model(checkpoint)
    return {"params_M": count_parameters(model) / 1e6, "GMACs": macs_per_image(model) / 1e9}


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(path: Path, caption: str) -> str:
    return f"<figure>{_image(path, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>"


SCORE_NOTES = {
    "log_spectral_distance_db": "log-spectral distance (dB), lower is better",
    "lfd": "log frequency distance, lower is better",
    "high_frequency_ratio": "high-band energy / real (r >= 2/3), 1 is ideal",
    "band_error_low": "low band (r < 1/3): mean |log10 power ratio|",
    "band_error_mid": "mid band (1/3 <= r < 2/3): mean |log10 power ratio|",
    "band_error_high": "high band (r >= 2/3): mean |log10 power ratio|",
}


def render_html(metrics: dict, out: Path) -> str:
    """The report page: every image embedded, every number with its 95% interval."""
    sets = in_set_order(metrics["scores"])
    sizes = metrics["model_sizes"]
    score_rows = [["parameters (M)"] + [f"{sizes[n]['params_M']:.2f}" for n in sets],
                  ["GMACs per image (one network evaluation)"]
                  + ["-" if sizes[n]["GMACs"] is None else f"{sizes[n]['GMACs']:.3f}" for n in sets]]
    for key in metrics["scores"][sets[0]]:
        if key == "num":
            continue
        cells = [f"{s['value']:.4f} [{s['ci95'][0]:.4f}, {s['ci95'][1]:.4f}]"
                 for s in (metrics["scores"][name][key] for name in sets)]
        score_rows.append([SCORE_NOTES.get(key, key)] + cells)
    fid = metrics["fid_kid"]
    score_rows.append(["FID, lower is better (basic bootstrap interval)"]
                      + [f"{fid[n]['fid']:.4f} [{fid[n]['fid_ci95'][0]:.4f}, {fid[n]['fid_ci95'][1]:.4f}]" for n in sets])
    score_rows.append(["KID (mean ± std over 50 subsets)"] + [f"{fid[n]['kid_mean']:.5f} ± {fid[n]['kid_std']:.5f}"
                                                            for n in sets])
    score_rows.append(["images"] + [str(metrics["scores"][n]["num"]) for n in sets])
    probe = metrics["probe"]
    probe_models = in_set_order(probe["cutoff"])
    probe_rows = [[str(t)] + [format_cutoff(probe["cutoff"][n][i]) for n in probe_models]
                  for i, t in enumerate(probe["timesteps"])]
    finc = metrics["finc"]
    finc_rows = [[direction, str(j + 1), f"{m['eigenvalue']:.4f}", str(m["size"]), ", ".join(m["top"][:5])]
                 for key, direction in (("test_modes", "student over-produces"),
                                        ("reference_modes", "student under-produces"))
                 for j, m in enumerate(finc[key])]
    sampling = metrics["sampling"]
    setup_rows = [["student", metrics["student"]], ["teacher", metrics["teacher"]],
                  ["reference (real, held out)", f"{metrics['reference']} ({metrics['num_reference']} images)"],
                  ["sampler", f"{sampling['student']['scheduler']}, {sampling['student']['steps']} steps, "
                              f"seed {sampling['student']['seed']}, {metrics['num']} images each"],
                  ["FID/KID features", metrics["features"]],
                  ["FINC features", f"{finc['features']}; sigma {finc['sigma']:.4g}, noise floor {finc['noise_floor']:.4g}"]]
    if metrics["stig_refiner"]:
        setup_rows.append(["STIG refiner", metrics["stig_refiner"]])
    grids = {"real": out / "real_grid.png", **{name: Path(folder) / "grid.png" for name, folder in metrics["samples"].items()}}
    shown = min(GRID_IMAGES, metrics["num"])
    captions = {"real": f"real (held out): {GRID_IMAGES} of {metrics['num_reference']}, evenly spaced"}
    sample_grids = "".join(_figure(grids[name], captions.get(name, f"{name}: first {shown} samples"))
                           for name in in_set_order(["real", "teacher", "student"]))
    stig = ""
    if STIG_SET in grids:
        stig = ("<h2 id=\"stig\">STIG refinement of the student's samples</h2><div class=\"row grid\">"
                + _figure(grids["student"], "before (student)") + _figure(grids[STIG_SET], "after (student + STIG)")
                + "</div><p>Scores before and after are the student and student + STIG columns of the "
                  "<a href=\"#scores\">score table</a> above.</p>")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
             "th{background:#f2f2f2}.row{display:flex;gap:1em;flex-wrap:wrap}figure{margin:0}"
             "img{max-width:100%;image-rendering:pixelated}.grid img{width:380px}figcaption{font-size:90%;color:#555}"
             ".plot img{width:100%;image-rendering:auto}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>wgunet report</title><style>{style}</style></head><body>
<h1>wgunet report: student vs teacher</h1>
{_table(["setting", "value"], setup_rows)}
<h2>Samples</h2><div class="row grid">{sample_grids}</div>
<h2 id="scores">Scores against the real set (95% bootstrap intervals)</h2>
{_table(["score"] + sets, score_rows)}
<h2>Reduced spectra</h2>{_figure(out / "spectrum" / "spectra.png", "mean reduced power spectra, log-log")}
<h2>Spectral-bias probe</h2>
<p>Share of the clean spectrum each model recovers from x_t, per radius; the table gives the radius below which
at least half is recovered.</p>
<div class="plot">{_figure(out / "probe" / "probe.png", "recovered share of the clean spectrum per radius, one panel per timestep")}</div>
{_table(["t"] + probe_models, probe_rows)}
<h2>FINC: modes the student over- and under-produces against the teacher</h2>
<p>Eigenvalues of C_student - C_teacher (and the reverse) above the split-half noise floor; size is the
number of samples that load on the mode.</p>
{_table(["direction", "mode", "eigenvalue", "size", "top samples"], finc_rows) if finc_rows
 else "<p>No mode above the noise floor in either direction.</p>"}
{_figure(out / "finc" / "finc_modes.png", "top samples of each mode")}
{stig}
</body></html>
"""
