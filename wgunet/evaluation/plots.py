"""Figures (matplotlib, Agg) as PNG bytes: reduced spectra, the spectral-bias probe, FINC's modes."""

from __future__ import annotations

import io
import itertools

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from wgunet.evaluation.definitions import SCORES  # noqa: E402
from wgunet.evaluation.image_sets import make_grid  # noqa: E402
from wgunet.evaluation.probe import ProbeResult  # noqa: E402

# One order and one colour per image set in every table, grid and plot of the project.
SET_ORDER = ("real", "teacher", "student", "student + STIG")
SET_COLOURS = {"real": "#222222", "teacher": "#1f77b4", "student": "#ff7f0e", "student + STIG": "#2ca02c",
               "optimal linear (Wiener)": "#8c8c8c"}


def set_colour(name: str) -> str | None:
    """The fixed colour of a named set ("real (patches:heldout)" is "real"); None lets matplotlib choose."""
    return SET_COLOURS.get(name) or SET_COLOURS.get(name.split(" (")[0])


def in_set_order(names) -> list[str]:
    """Names sorted as SET_ORDER; other names keep their order after those."""
    rank = {name: i for i, name in enumerate(SET_ORDER)}
    return sorted(names, key=lambda n: rank.get(n.split(" (")[0], len(SET_ORDER)))


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    plt.close(figure)
    return buffer.getvalue()


def plot_spectra(radius: list[float], spectra: dict[str, list[float]], title: str = "") -> bytes:
    """Mean reduced spectra on log-log axes, one curve per image set."""
    figure, axis = plt.subplots(figsize=(6, 4.2), dpi=120)
    for name in in_set_order(spectra):
        axis.loglog(radius, spectra[name], label=name, color=set_colour(name),
                    linewidth=2 if name.startswith("real") else 1.5)
    axis.axvspan(2 / 3, 1, color="0.9", zorder=0, label="high band (r >= 2/3)")
    axis.set(xlabel="normalised radius r (1 = corner)", ylabel="mean power", title=title or "reduced spectra")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return _png(figure)


def plot_probe(result: ProbeResult) -> bytes:
    """Recovered share of the clean spectrum vs radius, one panel per timestep (3 a row), one line per model."""
    timesteps = result.timesteps
    columns = min(3, len(timesteps))
    rows = -(-len(timesteps) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows), sharey=True,
                             squeeze=False, dpi=110)
    for axis in axes.flat[len(timesteps):]:
        axis.axis("off")
    for i, (axis, t) in enumerate(zip(axes.flat, timesteps)):
        for name in in_set_order(result.models):
            axis.semilogx(result.radius, result.models[name].recovered[i], label=name,
                          color=set_colour(name), linestyle="--" if "Wiener" in name else "-")
        axis.axhline(0.5, color="0.6", linewidth=0.8)
        axis.set(title=f"t = {t}", xlabel="normalised radius r", ylim=(-0.5, 1.05))
        axis.grid(True, which="both", alpha=0.3)
    for row in axes:
        row[0].set_ylabel("recovered share")
    axes.flat[0].legend(fontsize=8)
    figure.suptitle("recovered: 1 - S(x0_hat - x0) / S(x0); half recovered at the grey line")
    figure.tight_layout()
    return _png(figure)


def plot_modes(rows: list[tuple[str, np.ndarray]]) -> bytes:
    """One row of top images (uint8, (k, H, W, C)) per mode, labelled on the left."""
    height = max(1, len(rows))
    columns = max([len(images) for _, images in rows] + [1])
    figure, axes = plt.subplots(height, columns, figsize=(1.1 * columns + 2.4, 1.2 * height),
                             squeeze=False, dpi=100)
    for axis in axes.flat:
        axis.axis("off")
    figure.subplots_adjust(left=2.4 / (1.1 * columns + 2.4), right=0.99, wspace=0.05, hspace=0.1)
    for row, (label, images) in enumerate(rows):
        box = axes[row][0].get_position()  # the label sits in the left margin, clear of the first image
        figure.text(box.x0 - 0.01, (box.y0 + box.y1) / 2, label, ha="right", va="center", fontsize=8)
        for column, image in enumerate(images):
            axes[row][column].imshow(image, interpolation="nearest")
    if not rows:
        axes[0][0].text(0.5, 0.5, "no mode above the noise floor", ha="center", va="center")
    return _png(figure)


def plot_grids(panels: dict[str, np.ndarray], images_per_panel: int = 36) -> bytes:
    """Titled grids of uint8 (N, H, W, C) image sets side by side, the first ``images_per_panel`` of each."""
    figure, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9), squeeze=False, dpi=100)
    for axis, (title, images) in zip(axes[0], panels.items()):
        axis.imshow(make_grid(images[:images_per_panel]), interpolation="nearest")
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    return _png(figure)


SWEPT_SCORES = ("high_frequency_ratio", "log_spectral_distance_db")  # the two a training or a sweep is plotted by


def axis_title(key: str) -> str:
    """The score's title (wgunet.evaluation.definitions); the high-frequency ratio is drawn on a log scale."""
    return SCORES[key].title() + ("; log scale" if key == "high_frequency_ratio" else "")


def plot_training(evaluations: list[dict]) -> bytes:
    """High-frequency ratio and log-spectral distance of the evaluations during training (scores.json of
    wgunet.training.monitor) against step, each with its 95% interval as a band."""
    steps = [e["step"] for e in evaluations]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2), dpi=110)
    for axis, key in zip(axes, SWEPT_SCORES):
        values = [e["scores"][key]["value"] for e in evaluations]
        low, high = zip(*(e["scores"][key]["ci95"] for e in evaluations))
        axis.fill_between(steps, low, high, color=set_colour("student"), alpha=0.25, linewidth=0)
        axis.plot(steps, values, "o-", color=set_colour("student"))
        axis.axhline(1.0 if key == "high_frequency_ratio" else 0.0, color=set_colour("real"), linewidth=1)
        if key == "high_frequency_ratio":
            axis.set_yscale("log")
        axis.set(xlabel="training step", title=axis_title(key))
        axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def plot_sweep(curves: dict[str, dict[str, dict[float, list[float]]]], xlabel: str,
               references: dict[str, dict[str, float]] | None = None) -> bytes:
    """Scores against a swept setting (sampling steps, training budget), log x: per variant the mean over seeds as
    a line and the seeds' range as a band. ``curves``: score key (SWEPT_SCORES) -> variant -> x -> one value per seed;
    ``references``: label -> score key -> a value not swept (e.g. the teacher's), drawn as a dashed level."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), dpi=110)
    cycle = map(matplotlib.colors.to_hex, plt.rcParams["axes.prop_cycle"].by_key()["color"])
    free = itertools.cycle([c for c in cycle if c not in SET_COLOURS.values()])
    # the sets' fixed colours, then the cycle's other colours in turn
    colours = {variant: set_colour(variant) or next(free) for variant in curves[SWEPT_SCORES[0]]}
    for axis, key in zip(axes, SWEPT_SCORES):
        for variant, points in curves[key].items():
            xs = sorted(points)
            line, = axis.plot(xs, [np.mean(points[x]) for x in xs], "o-", label=variant, color=colours[variant])
            axis.fill_between(xs, [min(points[x]) for x in xs], [max(points[x]) for x in xs], color=line.get_color(),
                              alpha=0.2, linewidth=0)
        for label, scores in (references or {}).items():
            axis.axhline(scores[key], color=set_colour(label) or "black", linestyle="--", linewidth=1, label=label)
        axis.axhline(1.0 if key == "high_frequency_ratio" else 0.0, color=set_colour("real"), linewidth=1)
        axis.set_xscale("log")
        if key == "high_frequency_ratio":
            axis.set_yscale("log")
        axis.set(xlabel=xlabel, title=axis_title(key))
        axis.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    return _png(figure)
