"""Does it hold? Where a small model loses high frequencies, and what each part of the method buys, over seeds.

    .venv/bin/python bench/study.py [--out runs/study] [--seeds 0,1,2] [--parts grid,budget,steps]

Four parts, each training run and each sample set kept in ``out`` and reused (run it again after a kill and it
goes on where it stopped; one study per folder at a time, a lock in the folder):
1. grid: {WG-UNet, UNet2DModel of equal MACs} x {DDPM only, + spatial, + spatial + frequency} x seeds, at the
   embedded default's budget (configs/default.yaml, 1,000 steps);
2. budget: DDPM-only and fully distilled WG-UNets trained for each of ``--budgets`` steps, x seeds;
3. steps: the teacher and every grid student sampled with DDIM 5 / 10 / 20 / 50 / 100 and DPM-Solver++ 10 / 20;
4. weighting (not run by default): fully distilled WG-UNets with L_freq weighted ``focal`` and ``uniform``
   (loss.freq_weight) at the default budget, and ``focal`` at the longest of ``--budgets``, x seeds.
Every sample set (``--num-images``, the same per-image noise for every model) is scored against the held-out
patches: HF ratio, LSD, both LFDs, band errors (95% bootstrap intervals within a seed) and FID/KID in the
teacher's features (labelled: they rank sets scored with this teacher only); every trained student gets the
spectral-bias probe's cut-off radius per t. Seeds are the outer loop, so that a partial study has whole seeds.
Writes ``results.jsonl`` (one row per sample set, appended as they finish, each with the wall seconds it took),
``summary.md`` (mean and spread over seeds), ``steps.png`` / ``budget.png`` and ``wall_time.json`` (the rows' sum).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from wgunet.common.files import folder_lock, write_json, write_text
from wgunet.evaluation.features import feature_extractor, teacher_features
from wgunet.evaluation.fid import FidKid
from wgunet.evaluation.image_sets import load_image_set
from wgunet.evaluation.outputs import write_png_bytes
from wgunet.evaluation.plots import SWEPT_SCORES, plot_sweep
from wgunet.evaluation.probe import DEFAULT_TIMESTEPS, spectral_probe
from wgunet.evaluation.spectral import image_statistics, spectral_scores
from wgunet.sampling.loading import load_model
from wgunet.sampling.samplers import run_sampling
from wgunet.training.config import load_config
from wgunet.training.loop import train

LOSSES = {"DDPM only": ["loss.lambda_spatial=0", "loss.lambda_freq=0"], "+ spatial": ["loss.lambda_freq=0"],
          "+ spatial + frequency": []}
# L_freq's other per-frequency weights (loss.freq_weight; "+ spatial + frequency" is inverse_magnitude, the paper's,
# and "+ spatial" is no frequency term): the weighting part, WG-UNet only
WEIGHTINGS = {"+ spatial + frequency, focal": ["loss.freq_weight=focal"],
              "+ spatial + frequency, uniform": ["loss.freq_weight=uniform"]}
# A UNet2DModel with the default WG-UNet's levels, attention at 8px and about its MACs (0.112 vs 0.114 GMACs per
# image at 32px, python -m wgunet.training.sizes): stride-2 convolutions and nearest upsampling instead of wavelet gates.
UNET2D_EQUAL_MACS = dict(block_out_channels=[24, 40, 40], layers_per_block=1, norm_num_groups=8, attention_head_dim=20,
                         down_block_types=["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
                         up_block_types=["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"])
ARCHITECTURES = {"WG-UNet": [], "UNet2DModel": ["student_class=UNet2DModel", f"student={UNET2D_EQUAL_MACS}"]}
SAMPLERS = (("ddim", 5), ("ddim", 10), ("ddim", 20), ("ddim", 50), ("ddim", 100), ("dpm++", 10), ("dpm++", 20))
SCORED_WITH = ("ddim", 50)  # the sampler of the grid's and the budget sweep's scores (the report's default)
HEADLINE = ("high_frequency_ratio", "log_spectral_distance_db", "lfd_stig", "lfd_mean_magnitude", "band_error_low",
            "band_error_mid", "band_error_high")


@dataclass
class Study:
    out: Path
    seeds: tuple[int, ...] = (0, 1, 2)
    budget: int = 1000  # the embedded default's
    budgets: tuple[int, ...] = (250, 500, 1000, 2000)
    samplers: tuple[tuple[str, int], ...] = SAMPLERS
    num_images: int = 256
    config: str = "configs/default.yaml"
    overrides: tuple[str, ...] = ()  # for every run (the tests: a tiny teacher, student and data)
    architectures: dict[str, list[str]] = field(default_factory=lambda: dict(ARCHITECTURES))
    scored_with: tuple[str, int] = SCORED_WITH
    reference: str = "patches:heldout"
    bootstrap: int = 200
    probe_timesteps: tuple[int, ...] = DEFAULT_TIMESTEPS


class Scorer:
    """The study's measures of one sample set against the held-out reference, with a JSON row per set."""

    def __init__(self, study: Study, teacher: str, size: int):
        reference = load_image_set(study.reference, size)
        self.real, self.bootstrap = image_statistics(reference.images), study.bootstrap
        self.fid = FidKid(reference.images, feature_extractor("teacher", teacher_features(teacher)))
        self.probe_images = reference.first(256).images

    def __call__(self, folder: Path) -> dict:
        images = load_image_set(str(folder)).images
        scores = spectral_scores(image_statistics(images), self.real, self.bootstrap).to_dict()
        fid = self.fid(images)
        return {**scores, "fid_teacher_features": fid.fid.to_dict(), "kid_teacher_features": fid.kid_mean}


def trained(study: Study, architecture: str, losses: str, budget: int, seed: int) -> Path:
    """The run's exported model: reused when finished, resumed from its last checkpoint when a kill cut it short."""
    name = f"{architecture}-{losses}-{budget}-seed{seed}".replace(" ", "").replace("+", "_").replace(",", "-")
    folder = study.out / "runs" / name
    if (folder / "model" / "model_index.json").is_file():
        return folder / "model"
    config = load_config(study.config, [*study.overrides, *study.architectures[architecture], *{**LOSSES, **WEIGHTINGS}[losses],
                                        f"max_steps={budget}", f"seed={seed}", f"output_dir={folder}", "eval_every=0",
                                        f"checkpoint_every={max(1, budget // 4)}", "log_with=none"])
    return train(config, resume=True)


def sampled(study: Study, checkpoint: Path | str, name: str, sampler: tuple[str, int]) -> Path:
    folder = study.out / "samples" / name / f"{sampler[0]}-{sampler[1]}"
    run_sampling(str(checkpoint), study.num_images, folder, scheduler=sampler[0], steps=sampler[1], seed=0,
                 resume=folder.is_dir())
    return folder


def rows_done(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    return {row["key"]: row for row in map(json.loads, path.read_text().splitlines()) if row}


class Results:
    """results.jsonl: the finished rows by key. Each is appended as one whole line (a kill loses at most the set in
    progress) with ``seconds``, the wall time since this invocation's previous row: the work that made it, a run's
    training counted in its first row. Their sum is the study's wall time, whatever kills and resumes came between."""

    def __init__(self, path: Path):
        self.path, self.rows, self.last = path, rows_done(path), time.perf_counter()

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def keep(self, row: dict) -> None:
        now = time.perf_counter()
        row, self.last = {**row, "seconds": round(now - self.last, 1)}, now
        self.rows[row["key"]] = row
        with self.path.open("a") as log:
            log.write(json.dumps(row) + "\n")


def run_study(study: Study, parts: tuple[str, ...] = ("grid", "budget", "steps")) -> list[dict]:
    """Train, sample and score what ``parts`` ask for, reusing everything already in ``study.out``."""
    started = time.perf_counter()
    study.out.mkdir(parents=True, exist_ok=True)
    with folder_lock(study.out, "study"):
        done = Results(study.out / "results.jsonl")
        base = load_config(study.config, list(study.overrides))
        scorer = Scorer(study, base.teacher, base.data.sample_size)

        def record(key: str, row: dict, folder: Path) -> None:
            if key not in done:
                done.keep({"key": key, **row, "scores": scorer(folder)})

        if "steps" in parts:  # the teacher first (deterministic: one seed), the reference of every partial study
            for sampler in study.samplers:
                key = f"teacher/{sampler[0]}-{sampler[1]}"
                record(key, {"model": "teacher", "losses": "-", "budget": 0, "seed": 0, "sampler": sampler[0],
                             "steps": sampler[1]}, sampled(study, base.teacher, "teacher", sampler))
            probed(study, scorer, done, base.teacher, "teacher", {"model": "teacher", "losses": "-", "budget": 0,
                                                                  "seed": 0})
        for seed in study.seeds:
            plan = []
            if "grid" in parts:
                plan += [(a, loss, study.budget) for a in study.architectures for loss in LOSSES]
            if "budget" in parts:
                plan += [("WG-UNet", loss, b) for loss in ("DDPM only", "+ spatial + frequency") for b in study.budgets
                         if b != study.budget or "grid" not in parts]
            if "weighting" in parts:  # each weighting at the default budget, focal also at the longest
                plan += [("WG-UNet", weighting, study.budget) for weighting in WEIGHTINGS]
                plan += [("WG-UNet", next(iter(WEIGHTINGS)), max(study.budgets))]
            for architecture, losses, budget in plan:
                model = trained(study, architecture, losses, budget, seed)
                name = model.parent.name
                samplers = study.samplers if "steps" in parts and budget == study.budget else ()
                for sampler in dict.fromkeys((study.scored_with, *samplers)):
                    key = f"{name}/{sampler[0]}-{sampler[1]}"
                    row = {"model": architecture, "losses": losses, "budget": budget, "seed": seed,
                           "sampler": sampler[0], "steps": sampler[1]}
                    if key not in done:
                        record(key, row, sampled(study, model, name, sampler))
                probed(study, scorer, done, model, name, {"model": architecture, "losses": losses, "budget": budget,
                                                          "seed": seed})
        rows = list(done.rows.values())
        write_summary(study, rows)
        write_json(study.out / "wall_time.json",
                   {"seconds_this_invocation": round(time.perf_counter() - started, 1), **wall_time(rows)})
    return rows


def wall_time(rows: list[dict]) -> dict:
    """The study's wall time: the sum of its rows' seconds (rows written before rows were timed are counted apart)."""
    timed = [row["seconds"] for row in rows if "seconds" in row]
    return {"seconds_of_timed_rows": round(sum(timed), 1), "timed_rows": len(timed), "untimed_rows": len(rows) - len(timed)}


def write_summary(study: Study, rows: list[dict]) -> None:
    write_text(study.out / "summary.md", summary(rows))
    for name, figure in figures(rows, study).items():
        write_png_bytes(study.out / name, figure)


def figures(rows: list[dict], study: Study) -> dict[str, bytes]:
    """steps.png: the scores against DDIM steps (every grid variant and the teacher); budget.png: against the
    training budget (the budget sweep, scored with ``scored_with``; the teacher's score there as a dashed level)."""
    made = {}
    scored = [r for r in rows if "scores" in r]
    teacher = [r for r in scored if r["model"] == "teacher" and (r["sampler"], r["steps"]) == tuple(study.scored_with)]
    teacher_level = {f"teacher ({' '.join(map(str, study.scored_with))})":
                     {key: teacher[0]["scores"][key]["value"] for key in SWEPT_SCORES}} if teacher else {}
    for name, xlabel, x_of, keep in (
            ("steps.png", "DDIM steps", lambda r: r["steps"],
             lambda r: r["sampler"] == "ddim" and r["budget"] in (0, study.budget)),
            ("budget.png", "training steps (budget)", lambda r: r["budget"],
             lambda r: r["model"] == "WG-UNet" and (r["sampler"], r["steps"]) == tuple(study.scored_with)
             and r["losses"] in ("DDPM only", "+ spatial + frequency"))):
        curves = {key: {} for key in SWEPT_SCORES}
        for row in filter(keep, scored):
            variant = row["model"] if row["model"] == "teacher" else f"{row['model']}, {row['losses']}"
            for key in curves:
                curves[key].setdefault(variant, {}).setdefault(x_of(row), []).append(row["scores"][key]["value"])
        if any(len(points) > 1 for points in curves["high_frequency_ratio"].values()):  # a line, not a dot
            made[name] = plot_sweep(curves, xlabel, teacher_level if name == "budget.png" else None)
    return made


def probed(study: Study, scorer: Scorer, done: Results, checkpoint: Path | str, name: str, row: dict) -> None:
    """The spectral-bias probe's cut-off radius per t of one model, as a row of results.jsonl."""
    key = f"{name}/probe"
    if key in done:
        return
    probe = spectral_probe({name: load_model(checkpoint)}, scorer.probe_images, study.probe_timesteps)
    done.keep({"key": key, **row, "probe_timesteps": probe.timesteps, "probe_cutoff": probe.models[name].cutoff})


def spread(values: list[float | None]) -> str:
    """The one value, or mean +- half the range over seeds; a probe cut-off of None (no radius recovers half) is
    "none", and counted apart rather than averaged as a radius."""
    known = [v for v in values if v is not None]
    if not known:
        return "none"
    text = f"{known[0]:.3g}" if len(known) == 1 else f"{statistics.mean(known):.3g} ± {(max(known) - min(known)) / 2:.2g}"
    return text + (f" (none in {len(values) - len(known)})" if len(known) < len(values) else "")


MODEL_ORDER = {"teacher": 0, "WG-UNet": 1, "UNet2DModel": 2}
LOSS_ORDER = {"-": 0, **{name: i + 1 for i, name in enumerate({**LOSSES, **WEIGHTINGS})}}


def _order(key: tuple) -> tuple:
    model, losses, *rest = key
    return (MODEL_ORDER.get(model, 9), LOSS_ORDER.get(losses, 9), *rest)


def summary(rows: list[dict]) -> str:
    """Markdown tables: each variant's value (one seed) or mean ± half-range over its seeds, per budget and sampler,
    and the probe's cut-off radii."""
    groups: dict[tuple, list[dict]] = {}
    for row in (r for r in rows if "scores" in r):
        groups.setdefault((row["model"], row["losses"], row["budget"], row["sampler"], row["steps"]), []).append(row)
    keys = ("high_frequency_ratio", "log_spectral_distance_db", "band_error_high", "fid_teacher_features")
    lines = ["| model | losses | budget | sampler | seeds | HF ratio | LSD (dB) | high-band error | FID (teacher features) |",
             "|---|---|---:|---|---:|---|---|---|---|"]
    for (model, losses, budget, sampler, steps), members in sorted(groups.items(), key=lambda g: _order(g[0])):
        cells = [spread([m["scores"][k]["value"] for m in members]) for k in keys]
        lines.append(f"| {model} | {losses} | {budget or '-'} | {sampler} {steps} | {len(members)} | "
                     + " | ".join(cells) + " |")
    probes: dict[tuple, list[dict]] = {}
    for row in (r for r in rows if "probe_cutoff" in r):
        probes.setdefault((row["model"], row["losses"], row["budget"]), []).append(row)
    if probes:
        timesteps = next(iter(probes.values()))[0]["probe_timesteps"]
        lines += ["", "| model | losses | budget | seeds | " + " | ".join(f"cut-off t={t}" for t in timesteps) + " |",
                  "|---|---|---:|---:|" + "---|" * len(timesteps)]
        for (model, losses, budget), members in sorted(probes.items(), key=lambda g: _order(g[0])):
            cells = [spread([m["probe_cutoff"][i] for m in members]) for i in range(len(timesteps))]
            lines.append(f"| {model} | {losses} | {budget or '-'} | {len(members)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/study", help="the study's folder: runs, samples and results (reused)")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    parser.add_argument("--budgets", default="250,500,1000,2000", help="training steps of the budget sweep")
    parser.add_argument("--parts", default="grid,budget,steps",
                        help="which parts to run: grid, budget, steps, weighting (comma-separated)")
    parser.add_argument("--num-images", type=int, default=256, help="images per sample set")
    parser.add_argument("--summary-only", action="store_true",
                        help="only write summary.md and the plots from the results so far (no training or sampling)")
    args = parser.parse_args()
    torch.manual_seed(0)
    study = Study(Path(args.out), tuple(int(s) for s in args.seeds.split(",")),
                  budgets=tuple(int(b) for b in args.budgets.split(",")), num_images=args.num_images)
    if args.summary_only:
        rows = list(rows_done(study.out / "results.jsonl").values())
        if not rows:
            sys.exit(f"error: {study.out} holds no study results (results.jsonl): run bench/study.py --out "
                     f"{study.out} without --summary-only first")
        write_summary(study, rows)
    else:
        rows = run_study(study, tuple(args.parts.split(",")))
    print(summary(rows))
    wall = wall_time(rows)
    print(f"wall time: {wall['seconds_of_timed_rows'] / 3600:.2f} h over {wall['timed_rows']} rows"
          + (f" ({wall['untimed_rows']} rows from before rows were timed not counted)" if wall["untimed_rows"] else ""))
    print(f"results: {study.out / 'results.jsonl'}, {study.out / 'summary.md'}")


if __name__ == "__main__":
    main()
