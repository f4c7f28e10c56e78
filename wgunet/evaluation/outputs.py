"""The writing layer of the evaluation: each result as JSON, PNG figures and plain text, into one folder.

Figures are made once as PNG bytes (wgunet.evaluation.plots); the same bytes go to the folder and into report.html.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wgunet.common.files import write_file, write_json, write_text
from wgunet.common.results import INTERVAL_KIND
from wgunet.evaluation.fid import ReferenceStatistics
from wgunet.evaluation.plots import plot_modes, plot_probe, plot_spectra
from wgunet.evaluation.probe import ProbeResult, probe_table
from wgunet.evaluation.scores import ModeComparison, SpectrumResult


def write_png_bytes(path: Path, data: bytes) -> None:
    write_file(path, lambda handle: handle.write(data))


def spectrum_figure(result: SpectrumResult) -> bytes:
    curves = {f"real ({result.reference})": result.real_spectrum,
              **{name: s.spectrum for name, s in result.sets.items()}}
    return plot_spectra(result.radius, curves, f"reduced spectra ({result.convention} convention)")


def write_spectrum(out: Path, result: SpectrumResult) -> bytes:
    """``metrics.json`` and ``spectra.png``; returns the figure."""
    figure = spectrum_figure(result)
    write_json(out / "metrics.json", result.to_dict())
    write_png_bytes(out / "spectra.png", figure)
    return figure


def write_probe(out: Path, result: ProbeResult) -> bytes:
    """``probe.json``, ``probe.md`` (cut-off radius per model and t) and ``probe.png``; returns the figure."""
    figure = plot_probe(result)
    write_json(out / "probe.json", result.to_dict())
    write_text(out / "probe.md", probe_table(result) + "\n")
    write_png_bytes(out / "probe.png", figure)
    return figure


def write_modes(out: Path, comparison: ModeComparison) -> bytes:
    """``finc.json`` (modes both ways, eigenvalues, sizes, top file names) and ``finc_modes.png``."""
    figure = plot_modes(comparison.mode_rows())
    write_json(out / "finc.json", comparison.to_dict())
    write_png_bytes(out / "finc_modes.png", figure)
    return figure


def format_scores(result: SpectrumResult) -> str:
    """A plain-text table of every score with its interval and bootstrap bias, one block per generated set."""
    lines = [f"value [95% interval: {INTERVAL_KIND}] (bootstrap bias: mean resample less value)"]
    for name, scores in result.sets.items():
        lines.append(f"{name} ({scores.num} images vs {result.num_reference} images of {result.reference})")
        lines += [f"  {key:26s} {estimate}" for key, estimate in scores.scores.items()]
        if scores.fid_kid:
            f = scores.fid_kid
            kid = "kid -" if f.kid_mean is None else f"kid {f.kid_mean:.5f} +- {f.kid_std:.5f}"
            lines.append(f"  {'fid':26s} {f.fid}  {kid}  [{f.features}; against {f.against}]")
    return "\n".join(lines)


def write_fid_reference(path: Path, statistics: ReferenceStatistics) -> None:
    """``mu``, ``sigma`` (the keys EDM and clean-fid use), the extractor's label and the image count, as .npz."""
    write_file(path, lambda handle: np.savez(handle, mu=statistics.mu.numpy(), sigma=statistics.sigma.numpy(),
                                             features=np.array(statistics.features), num=np.array(statistics.num)))


def format_modes(comparison: ModeComparison) -> str:
    result = comparison.result
    lines = [f"features: {comparison.features}; sigma {result.sigma:.4g}, noise floor {result.test_modes.noise_floor:.4g}"
             f" (test) / {result.reference_modes.noise_floor:.4g} (reference)"]
    for modes, title in ((result.test_modes, "more in test"), (result.reference_modes, "missed by test")):
        found = [f"{float(modes.eigenvalues[j]):.4f} (~{int(modes.sizes[j])} images)" for j in range(len(modes))]
        lines.append(f"{title}: " + (", ".join(found) or "none"))
    return "\n".join(lines)
