"""What the report holds (Report) and its HTML page: every image embedded, every number with its interval."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

from wgunet.evaluation.definitions import SCORES
from wgunet.evaluation.image_sets import GRID_IMAGES, ImageSource
from wgunet.evaluation.plots import in_set_order
from wgunet.evaluation.probe import ProbeResult, format_cutoff
from wgunet.evaluation.scores import ModeComparison, SpectrumResult

STIG_SET = "student + STIG"


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
