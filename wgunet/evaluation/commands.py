"""The eval.py subcommands, each one composition: load every input once, measure (wgunet.evaluation.scores), write
(wgunet.evaluation.outputs). ``eval.py report`` composes the same steps in wgunet.evaluation.report."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from wgunet.common.files import folder_lock, write_json
from wgunet.evaluation.features import cached_features, compute_features, feature_extractor, label, teacher_features
from wgunet.evaluation.fid import FidKid, MetricError, ReferenceStatistics, read_fid_reference
from wgunet.evaluation.image_sets import ImageSource, open_image_set, write_image_folder
from wgunet.evaluation.outputs import write_fid_reference, write_modes, write_probe, write_spectrum
from wgunet.evaluation.probe import ProbeResult, spectral_probe
from wgunet.evaluation.scores import ModeComparison, SpectrumResult, compare_modes, score_sets
from wgunet.evaluation.stig import StigConfig, load_refiner, paper_config, refine, train_refiner
from wgunet.sampling.loading import load_model
from wgunet.training.data import BUILTIN_SIZE, DataError, builtin_set


def open_sets(sources: dict[str, str], limit: int | None = None) -> dict[str, ImageSource]:
    """Each named source opened to read in batches (its first ``limit`` images); built-in sets are cut at the size of
    the first set read from files, the size they are compared at, or at the shipped teacher's 32 px when every set
    is built in (patches:train against patches:heldout)."""
    files = {name: open_image_set(source).first(limit) for name, source in sources.items() if not builtin_set(source)}
    size = next(iter(files.values())).size[0] if files else BUILTIN_SIZE
    return {name: files.get(name) or open_image_set(source, size).first(limit) for name, source in sources.items()}


def fid_reference(source: str, out: Path, *, features: str, teacher: str) -> ReferenceStatistics:
    """The FID statistics of a set, written to ``out`` (.npz) for reuse with --fid-ref (a built-in set at the shipped
    teacher's 32 px)."""
    image_set = open_image_set(source, size=BUILTIN_SIZE)
    if len(image_set) < 2:
        raise MetricError("FID statistics need at least 2 images")
    extractor = feature_extractor(features, teacher_features(teacher))
    statistics = ReferenceStatistics.of(compute_features(image_set, extractor), label(extractor))
    write_fid_reference(out, statistics)
    return statistics


def fid_scorer(reference: ImageSource, features: str, teacher: str, fid_ref: str | None) -> FidKid:
    """FID/KID against the reference set, or FID alone against saved statistics of it (``fid_ref``)."""
    extractor = feature_extractor(features, teacher_features(teacher))
    return FidKid(read_fid_reference(fid_ref) if fid_ref else reference, extractor)


def spectrum(generated: dict[str, str], reference: str, out: Path, *, features: str, teacher: str,
             num_images: int | None, bootstrap: int, fid: bool, convention: str = "seed",
             fid_ref: str | None = None) -> SpectrumResult:
    """Reduced spectra, spectral scores and FID/KID of generated sets: ``metrics.json``, ``spectra.png``."""
    sets = open_sets({**generated, "reference": reference}, num_images)  # every set is read batch by batch
    reference_set = sets.pop("reference")
    scorer = fid_scorer(reference_set, features, teacher, fid_ref) if fid else None
    fid_kid = {name: scorer(image_set) for name, image_set in sets.items()} if fid else None
    result = score_sets(sets, reference_set, fid_kid, bootstrap, convention)
    write_spectrum(out, result)
    return result


def probe(checkpoints: dict[str, str], reference: str, out: Path, *, timesteps: tuple[int, ...],
          probe_images: int, seed: int) -> ProbeResult:
    """The spectral-bias probe of checkpoints: ``probe.json``, ``probe.md``, ``probe.png``."""
    models = {name: load_model(path) for name, path in checkpoints.items()}
    size = next(iter(models.values())).image_size
    reference_set = open_image_set(reference, size).first(probe_images).load()
    if reference_set.size != (size, size):
        raise DataError(f"the probe noises real images at the models' size, {size}x{size}; {reference!r} holds "
                        f"{reference_set.size[0]}x{reference_set.size[1]} images: pass a reference of that size "
                        "(patches:heldout is cut at it)")
    result = spectral_probe(models, reference_set.images, timesteps, seed)
    write_probe(out, result)
    return result


def modes(test: str, reference: str, out: Path, *, features: str, teacher: str, cache: str | None,
          **options) -> ModeComparison:
    """FINC both ways: ``finc.json``, ``finc_modes.png``; features cached in ``cache`` (default OUT/feature_cache)."""
    sets = open_sets({"test": test, "reference": reference})
    extractor = feature_extractor(features, teacher_features(teacher))
    cache = Path(cache) if cache else out / "feature_cache"
    vectors = {role: cached_features(image_set, extractor, cache) for role, image_set in sets.items()}
    comparison = compare_modes(sets["test"], sets["reference"], vectors["test"], vectors["reference"],
                               label(extractor), **options)
    write_modes(out, comparison)
    return comparison


def stig_train(generated: str, real: str, out: Path, *, resume: bool, preset: str = "compact", **overrides) -> Path:
    """Train a STIG refiner from generated toward real spectra; returns the refiner folder (``out/refiner``).
    ``preset``: "compact" (StigConfig's defaults) or "paper" (stig.paper_config); set overrides win."""
    sets = open_sets({"generated": generated, "real": real})
    given = {k: v for k, v in overrides.items() if v is not None}
    config = paper_config(**given) if preset == "paper" else StigConfig(**given)
    return train_refiner(sets["generated"], sets["real"], out, config, resume)


def refine_set(translator: nn.Module, refiner: str, image_set: ImageSource, out: Path, overwrite: bool) -> ImageSource:
    """``image_set`` refined by a loaded STIG refiner (from folder ``refiner``), batch by batch, written to ``out``
    as a sample folder; returns that folder's set."""
    refined = ImageSource(str(out), image_set.names, image_set.size, lambda a, b: refine(translator, image_set.read(a, b)))
    with folder_lock(out, "STIG apply"):
        write_image_folder(refined, out, {"stig_refiner": str(refiner), "input": image_set.source}, overwrite)
    return open_image_set(out)


def stig_apply(refiner: str, source: str, out: Path, *, reference: str | None, features: str, teacher: str,
               bootstrap: int, overwrite: bool) -> SpectrumResult | None:
    """Refine a set into ``out``; with a reference, scores before and after in ``out/stig_metrics.json``."""
    translator = load_refiner(refiner)  # a bad refiner is named before anything is read
    sets = open_sets({"before": source} | ({"reference": reference} if reference else {}))
    refined = refine_set(translator, refiner, sets["before"], out, overwrite)
    if reference is None:
        return None
    reference_set = sets.pop("reference")
    scorer = fid_scorer(reference_set, features, teacher, fid_ref=None)
    scored = {"before": sets["before"], "after": refined}
    result = score_sets(scored, reference_set, {name: scorer(s) for name, s in scored.items()}, bootstrap)
    write_json(out / "stig_metrics.json", result.to_dict())
    return result
