"""The evaluation commands behind eval.py: spectra and scores of image sets, and the spectral-bias probe."""

from __future__ import annotations

from pathlib import Path

from .checkpoints import load_model
from .data import DataError, load_image_set
from .features import cached_features
from .finc import finc
from .metrics import FidKid
from .plots import plot_modes, plot_probe, plot_spectra
from .probe import DEFAULT_TIMESTEPS, probe_table, spectral_probe
from .files import folder_lock, write_json, write_text
from .sampling import finish_image_folder, image_name, prepare_image_folder, write_png
from .spectral import image_statistics, spectral_scores
from .stig import StigConfig, load_refiner, refine, train_refiner


def named_sources(values: list[str]) -> dict[str, str]:
    """``name=path`` or ``path`` (named after the path) for each image set."""
    named = {}
    for value in values:
        name, _, path = value.rpartition("=") if "=" in value else (None, "", value)
        parts = [p for p in Path(path).parts if p not in ("model", "samples", "samples.npz", "/")]
        named[name or (parts[-1] if parts else path)] = path
    return named


def evaluate_spectrum(generated: dict[str, str], reference: str, out: str | Path, *, features: str = "auto",
                      teacher: str = "assets/teacher", size: int = 32, limit: int | None = None, bootstrap: int = 200,
                      fid: bool = True) -> dict:
    """Write ``metrics.json`` (reduced spectra, spectral scores with 95% intervals, FID/KID) and ``spectra.png``."""
    out = Path(out)
    real_images, _ = load_image_set(reference, size, limit)
    sets = {name: load_image_set(source, size, limit)[0] for name, source in generated.items()}  # bad input fails here
    for name, images in sets.items():
        if images.shape[1:] != real_images.shape[1:]:
            raise DataError(f"{generated[name]!r} holds {tuple(images.shape[2:])} images and the reference {reference!r} "
                            f"{tuple(real_images.shape[2:])}: spectra compare sets of one size (sample at the "
                            "reference's size, or pass a reference of this size)")
    out.mkdir(parents=True, exist_ok=True)
    real = image_statistics(real_images)
    metrics = {"reference": reference, "num_reference": len(real_images),
               "reduced_spectrum": {"radius": real["radius"].tolist(), "real": real["spectra"].mean(0).tolist()},
               "scores": {}, "fid_kid": {}}
    scorer = FidKid(real_images, features, teacher=teacher) if fid else None
    for name, images in sets.items():
        stats = image_statistics(images)
        metrics["reduced_spectrum"][name] = stats["spectra"].mean(0).tolist()
        metrics["scores"][name] = {"num": len(images), **spectral_scores(stats, real, bootstrap)}
        if fid:
            metrics["fid_kid"][name] = scorer(images)
    write_json(out / "metrics.json", metrics)
    curves = {("real (" + reference + ")" if k == "real" else k): v for k, v in metrics["reduced_spectrum"].items()
              if k != "radius"}
    plot_spectra(metrics["reduced_spectrum"]["radius"], curves, out / "spectra.png")
    return metrics


def run_probe(checkpoints: dict[str, str], reference: str, out: str | Path, *, size: int = 32, limit: int = 256,
              timesteps: tuple[int, ...] = DEFAULT_TIMESTEPS, seed: int = 0) -> dict:
    """Write ``probe.json``, ``probe.md`` (cut-off radius per model and t) and ``probe.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images, _ = load_image_set(reference, size, limit)
    models = {name: load_model(path) for name, path in checkpoints.items()}
    result = spectral_probe(models, images, timesteps, seed)
    write_json(out / "probe.json", result)
    write_text(out / "probe.md", probe_table(result) + "\n")
    plot_probe(result, out / "probe.png")
    return result


def run_finc(test: str, reference: str, out: str | Path, *, features: str = "pixels", teacher: str = "assets/teacher",
             cache: str | Path | None = None, size: int = 32, sigma: float | None = None, rho: float = 1.0,
             r: int = 2000, num_modes: int = 10, top_k: int = 25, seed: int = 0, row_images: int = 10,
             set_names: tuple[str, str] = ("test", "reference")) -> dict:
    """Write ``finc.json`` (modes both ways, eigenvalues, sizes, top file names) and ``finc_modes.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache) if cache else out / "feature_cache"
    sets = {}
    for role, source in (("test", test), ("reference", reference)):
        images, names = load_image_set(source, size)
        vectors, label = cached_features(source, images, features, cache, teacher)
        sets[role] = (images, names, vectors)
    result = finc(sets["test"][2], sets["reference"][2], sigma=sigma, rho=rho, r=r, num_modes=num_modes, top_k=top_k,
                  seed=seed)
    report = {"test": test, "reference": reference, "features": label, "num_test": len(sets["test"][0]),
              "num_reference": len(sets["reference"][0]),
              **{k: result[k] for k in ("sigma", "rho", "r", "noise_floor")}}
    rows = []
    for key, role in (("test_modes", "test"), ("reference_modes", "reference")):
        modes, (images, names, _) = result[key], sets[role]
        report[key] = [{"eigenvalue": float(modes.eigenvalues[j]), "size": int(modes.sizes[j]),
                        "top": [names[i] for i in modes.top[j].tolist()],
                        "top_scores": [float(modes.scores[i, j]) for i in modes.top[j].tolist()]}
                       for j in range(len(modes.eigenvalues))]
        test_name, reference_name = set_names
        direction = f"{test_name} has more" if role == "test" else f"{test_name} misses"
        for j, mode in enumerate(report[key]):
            picked = images[modes.top[j][:row_images]].permute(0, 2, 3, 1).numpy()
            owner = test_name if role == "test" else reference_name
            rows.append((f"{owner} mode {j + 1}\n{direction}\nλ = {mode['eigenvalue']:.4f}", picked))
    write_json(out / "finc.json", report)
    plot_modes(rows, out / "finc_modes.png")
    return report


def format_scores(metrics: dict) -> str:
    """A plain-text table of every score with its interval, one row per generated set."""
    lines = []
    for name, scores in metrics["scores"].items():
        lines.append(f"{name} ({scores['num']} images vs {metrics['num_reference']} reference)")
        for key, score in scores.items():
            if key != "num":
                lines.append(f"  {key:26s} {score['value']:9.4f}  [{score['ci95'][0]:.4f}, {score['ci95'][1]:.4f}]")
        if name in metrics["fid_kid"]:
            f = metrics["fid_kid"][name]
            lines.append(f"  {'fid':26s} {f['fid']:9.4f}  [{f['fid_ci95'][0]:.4f}, {f['fid_ci95'][1]:.4f}]  "
                         f"kid {f['kid_mean']:.5f} +- {f['kid_std']:.5f}  [{f['features']}]")
    return "\n".join(lines)


def train_stig(generated: str, real: str, out: str | Path, *, size: int = 32, resume: bool = False,
               **overrides) -> Path:
    """Train a STIG refiner on two image sets; returns the refiner folder (``out/refiner``)."""
    fake_images, _ = load_image_set(generated, size)
    real_images, _ = load_image_set(real, size)
    config = StigConfig(**{k: v for k, v in overrides.items() if v is not None})
    return train_refiner(fake_images, real_images, out, config, resume)


def apply_stig(model: str, source: str, out: str | Path, *, reference: str | None = None, size: int = 32,
               features: str = "auto", teacher: str = "assets/teacher", overwrite: bool = False) -> dict:
    """Refine a set into ``out`` (PNGs, grid.png, samples.npz); with a reference, scores before and after."""
    out = Path(out)
    translator = load_refiner(model)
    images, _ = load_image_set(source, size)
    refined = refine(translator, images)
    with folder_lock(out, "STIG apply"):
        prepare_image_folder(out, len(refined), {"stig_refiner": str(model), "input": str(source)}, False, overwrite,
                             resumable=False)
        for index, image in enumerate(refined.permute(0, 2, 3, 1).numpy()):
            write_png(image, out / image_name(index))
        finish_image_folder(out, len(refined))
    report = {"model": str(model), "input": source, "num": len(refined)}
    if reference is not None:
        real_images, _ = load_image_set(reference, size)
        real, scorer = image_statistics(real_images), FidKid(real_images, features, teacher=teacher)
        for stage, stage_images in (("before", images), ("after", refined)):
            scores = spectral_scores(image_statistics(stage_images), real)
            report[stage] = {"lfd": scores["lfd"], "high_frequency_ratio": scores["high_frequency_ratio"],
                             "log_spectral_distance_db": scores["log_spectral_distance_db"], **scorer(stage_images)}
        write_json(out / "stig_metrics.json", report)
    return report
