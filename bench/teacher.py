"""Is a new teacher better than the shipped one? The measures fixed for that question, side by side for the real
held-out patches, the shipped teacher and a candidate, with the full ancestral chain (DDPM over every training
step) and with DDIM 50, all on the same seeds:

    python bench/teacher.py --new runs/teacher/model [--old assets/teacher] [--num-images 128] [--ddim-steps 50]
                            [--chain-images 64] [--features-of assets/teacher] [--seed 0] [--work runs/teacher-compare]

Columns: pixel std and the spread (std) of the per-image mean colours, each also as a ratio to the real patches'
(within 10% is the bar); the high-frequency ratio (1 is ideal) and the log-spectral distance in dB (0 is ideal),
both against the held-out patches, with their 95% bootstrap intervals; FID against them in the features of the
network given by --features-of (the shipped teacher by default, frozen for this comparison: a network that is
neither candidate's own). Each sampler's rows start with the training patches themselves: --draws random draws
(seeded) of as many patches as the models' images, each scored the same way, as the median and the range of the
middle 95% of draws: what a teacher that reproduced its training data exactly would score. Inception FID
needs torch-fidelity and its weights in torch's hub cache; the column is left out without them. Sample folders are
kept in --work, so a run resumes and a candidate re-measured later reuses the shipped teacher's images; the
first 36 images of each model (36 spread over the real set), side by side, go to --work/grids.png. Another --seed
draws every model's noise and the training patches afresh: a confirmation that no choice made on the default seeds
has seen (its folders and grids are named -seedN). The last lines
say, for the candidate and for the training patches (their medians), how many of the fixed measures each passes
against the shipped teacher and which it misses (a tie misses), and in how many draws the training patches pass
every measure, and each one: the chance that a teacher that reproduced its data exactly would pass the bar.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from wgunet.common.pixels import to_signed
from wgunet.common.results import Estimate
from wgunet.evaluation.features import MetricError, feature_extractor, label, teacher_features
from wgunet.evaluation.fid import FidKid
from wgunet.evaluation.image_sets import load_image_set, open_image_set
from wgunet.evaluation.outputs import write_png_bytes
from wgunet.evaluation.plots import plot_grids
from wgunet.evaluation.scores import score_sets
from wgunet.sampling.samplers import run_sampling

BAR = 0.10  # pixel std and colour spread within 10% of the real patches'


@dataclass
class Measures:
    """One set's measures against the held-out patches: pixel std and colour spread as ratios to theirs."""

    std: float
    spread: float
    hf_ratio: float
    lsd_db: float
    fids: list[float]


def checks(new: Measures, old: Measures, fid_names: list[str]) -> list[tuple[str, bool, str]]:
    """Each fixed measure as (name, passed, what was measured): is `new` better than the shipped teacher's `old`
    (a tie is not better)?"""
    result = [(name, abs(ratio - 1) <= BAR, f"{name} {ratio:.2f} x real")
              for name, ratio in (("pixel std", new.std), ("colour spread", new.spread))]
    result.append(("HF ratio", abs(new.hf_ratio - 1) < abs(old.hf_ratio - 1),
                   f"HF ratio {new.hf_ratio:.3f} vs {old.hf_ratio:.3f}"))
    result.append(("LSD", new.lsd_db < old.lsd_db, f"LSD {new.lsd_db:.2f} vs {old.lsd_db:.2f} dB"))
    result += [(name, a < b, f"{name} {a:.2f} vs {b:.2f}") for name, a, b in zip(fid_names, new.fids, old.fids)]
    return result


def misses(new: Measures, old: Measures, fid_names: list[str]) -> list[str]:
    """The fixed measures by which `new` is not better than the shipped teacher's `old`."""
    return [measured for _, passed, measured in checks(new, old, fid_names) if not passed]


def chance_of_data(each_draw: dict[str, list[Measures]], shipped: dict[str, Measures], fid_names: list[str]) -> str:
    """How often the training patches themselves pass the bar, draw by draw (draw i of each sampler together):
    the chance that a teacher that reproduced its data exactly would pass, measured as the bench measures one."""
    results = {sampler: [checks(draw, shipped[sampler], fid_names) for draw in draws]
               for sampler, draws in each_draw.items()}
    together = list(zip(*results.values()))  # every sampler's checks of draw i
    all_pass = sum(all(passed for draw in draws for _, passed, _ in draw) for draws in together)
    each = "; ".join(f"{sampler}: " + ", ".join(f"{name} {sum(draw[j][1] for draw in draws)}"
                                               for j, (name, _, _) in enumerate(draws[0]))
                     for sampler, draws in results.items())
    return (f"training patches, draw by draw: {all_pass} of {len(together)} draws pass every measure; "
            f"draws passing each: {each}")


def pixel_statistics(images: torch.Tensor) -> tuple[float, float]:
    """(pixel std, std of the per-image mean colours) of uint8 images, in [-1, 1]."""
    x = to_signed(images)
    return x.std().item(), x.mean((2, 3)).std().item()


def with_interval(estimate: Estimate, digits: int) -> str:
    """"1.95 (1.38-3.02)": the value and its 95% bootstrap interval (the value alone without resamples)."""
    low, high = estimate.ci95
    interval = f" ({low:.{digits}f}-{high:.{digits}f})" if low != high else ""
    return f"{estimate.value:.{digits}f}{interval}"


def median(values: list[float]) -> float:
    return torch.tensor(values).quantile(0.5).item()


def median_and_range(values: list[float], digits: int) -> str:
    """"2.54 (1.51-3.83)": the median of the draws' values and the range of their middle 95%."""
    low, middle, high = torch.tensor(values).quantile(torch.tensor([0.025, 0.5, 0.975])).tolist()
    return f"{middle:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--new", required=True, help="the candidate teacher (a pipeline folder or checkpoint model/)")
    parser.add_argument("--old", default="assets/teacher", help="the shipped teacher (default assets/teacher)")
    parser.add_argument("--num-images", type=int, default=128, help="images per model with DDIM (default 128)")
    parser.add_argument("--ddim-steps", type=int, default=50, help="DDIM steps (default 50)")
    parser.add_argument("--chain-images", type=int, default=64,
                        help="images per model with the full ancestral chain (default 64; 0 skips it)")
    parser.add_argument("--features-of", default="assets/teacher",
                        help="the frozen network whose features FID uses (default the shipped teacher)")
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples for the intervals (default 200)")
    parser.add_argument("--draws", type=int, default=100,
                        help="random draws of the training patches for their rows (default 100; 0 leaves them out)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every model's noise and of the training patches' draws (default 0: the seeds "
                             "every candidate in docs/teacher.md was measured on)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images per sampling batch (default: sample.py's; an image moves by 1/255 at most)")
    parser.add_argument("--work", default="runs/teacher-compare", help="folder for the sample folders")
    args = parser.parse_args()
    seeded = f"-seed{args.seed}" if args.seed else ""  # the default seeds' folders keep their names

    real = load_image_set("patches:heldout", 32)
    real_std, real_spread = pixel_statistics(real.images)
    extractors = {"FID (frozen teacher features)": feature_extractor("teacher", teacher_features(args.features_of))}
    try:
        extractors["FID (Inception)"] = feature_extractor("inception")
    except MetricError as missing:
        print(f"Inception FID left out: {missing}")
    scorers = {name: FidKid(real, extractor, bootstrap=0) for name, extractor in extractors.items()}
    print(f"features: {'; '.join(label(e) for e in extractors.values())}\n")

    header = ["set", "sampler", "images", "pixel std", "/ real", "colour spread", "/ real", "HF ratio", "LSD (dB)",
              *scorers]
    rows = [["real held-out patches", "-", str(len(real)), f"{real_std:.4f}", "1.00", f"{real_spread:.4f}", "1.00",
             "1", "0", *["0"] * len(scorers)]]
    runs = [("ddpm", None, args.chain_images, "full chain"),
            ("ddim", args.ddim_steps, args.num_images, f"DDIM {args.ddim_steps}")]
    spread_out = torch.linspace(0, len(real) - 1, 36).long()  # the held-out set comes photograph by photograph
    panels = {"real held-out patches": real.images[spread_out].permute(0, 2, 3, 1).numpy()}
    training = load_image_set("patches:train", 32)
    measured: dict[tuple[str, str], Measures] = {}  # (who, sampler) -> measures, for the verdict
    each_draw: dict[str, list[Measures]] = {}  # sampler -> the training patches' measures, draw by draw

    def add(name: str, sampler: str, num: int, std: float, spread: float, *scores: str) -> None:
        rows.append([name, sampler, str(num), f"{std:.4f}", f"{std / real_std:.2f}", f"{spread:.4f}",
                     f"{spread / real_spread:.2f}", *scores])
        print(" | ".join(rows[-1]), flush=True)

    def measure(who: str, name: str, sampler: str, images: torch.Tensor) -> None:
        scores = score_sets({name: images}, real, None, args.bootstrap).sets[name].scores
        std, spread = pixel_statistics(images)
        fids = [scorer(images).fid.value for scorer in scorers.values()]
        measured[who, sampler] = Measures(std / real_std, spread / real_spread, scores.high_frequency_ratio.value,
                                          scores.log_spectral_distance_db.value, fids)
        add(name, sampler, len(images), std, spread, with_interval(scores.high_frequency_ratio, 3),
            with_interval(scores.log_spectral_distance_db, 2), *[f"{fid:.2f}" for fid in fids])

    def measure_training(sampler: str, num: int) -> None:
        generator = torch.Generator().manual_seed(args.seed)
        draws = [torch.randperm(len(training), generator=generator)[:num] for _ in range(args.draws)]
        statistics = torch.tensor([pixel_statistics(training.images[d]) for d in draws])
        std, spread = statistics.median(0).values.tolist()
        sets = score_sets({str(i): training.images[d] for i, d in enumerate(draws)}, real, None, 0).sets
        scores = [sets[str(i)].scores for i in range(len(draws))]
        hf_ratios = [x.high_frequency_ratio.value for x in scores]
        lsds = [x.log_spectral_distance_db.value for x in scores]
        fids = [[scorer(training.images[d]).fid.value for d in draws] for scorer in scorers.values()]
        measured["training patches", sampler] = Measures(std / real_std, spread / real_spread, median(hf_ratios),
                                                         median(lsds), [median(v) for v in fids])
        each_draw[sampler] = [Measures(draw_std / real_std, draw_spread / real_spread, hf, lsd, fid)
                              for (draw_std, draw_spread), hf, lsd, *fid in zip(statistics.tolist(), hf_ratios, lsds,
                                                                               *fids)]
        add(f"training patches (median of {len(draws)} draws)", sampler, num, std, spread,
            median_and_range(hf_ratios, 3), median_and_range(lsds, 2), *[median_and_range(v, 2) for v in fids])

    for scheduler, steps, num, sampler in runs:
        if not num:
            continue
        if args.draws > 0:
            measure_training(sampler, num)
        for name, checkpoint in (("shipped teacher", args.old), ("candidate", args.new)):
            model = f"{Path(checkpoint).resolve().parent.name}-{Path(checkpoint).name}"
            folder = Path(args.work) / f"{model}-{scheduler}{steps or ''}{seeded}"
            run_sampling(checkpoint, num, folder, scheduler=scheduler, steps=steps, seed=args.seed,
                         batch_size=args.batch_size, resume=folder.is_dir())
            images = open_image_set(folder).load().images
            panels[f"{name}, {sampler}"] = images.permute(0, 2, 3, 1).numpy()
            measure(name, f"{name} ({checkpoint})", sampler, images)
    grids = Path(args.work) / f"grids{seeded}.png"
    write_png_bytes(grids, plot_grids(panels))
    print(f"grids: {grids}")
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nThe bar: pixel std and colour spread within {BAR:.0%} of the real patches', HF ratio closer to 1, "
          "LSD and each FID lower than the shipped teacher's, with both samplers.")
    samplers = [sampler for _, _, num, sampler in runs if num]
    for who in ("candidate", "training patches"):
        if not samplers or not all((who, sampler) in measured for sampler in samplers):
            continue
        missed = [f"{sampler}: {miss}" for sampler in samplers
                  for miss in misses(measured[who, sampler], measured["shipped teacher", sampler], list(scorers))]
        total = (4 + len(scorers)) * len(samplers)
        print(f"{who}: passes {total - len(missed)} of {total}" + (f"; misses {'; '.join(missed)}" if missed else ""))
    if samplers and all(sampler in each_draw for sampler in samplers):
        print(chance_of_data(each_draw, {s: measured["shipped teacher", s] for s in samplers}, list(scorers)))


if __name__ == "__main__":
    main()
