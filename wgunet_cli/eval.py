"""Evaluate generated images and checkpoints: python eval.py {spectrum,probe,finc,stig,report,fid-ref} ...

  spectrum  reduced spectra, spectral scores (log-spectral distance, LFD, high-frequency ratio, per-band
            errors, 95% bootstrap intervals) and FID/KID of generated sets against a reference set
  probe     per-timestep spectral-bias probe of checkpoints against the optimal linear denoiser
  stig      STIG spectral refinement of generated images (train a refiner, apply it)
  finc      FINC differential clustering: the modes a test set has more of than a reference, and those it misses
  report    all of the above for a student and its teacher: samples (reused on a re-run), metrics.json and one
            self-contained report.html
  fid-ref   FID reference statistics (mu, sigma) of a set, saved for --fid-ref

Image sets are a folder of same-size images, an .npz, a sample folder (sample.py, stig apply) or patches:heldout
(built-in photographs, cut at the size of the images they are compared with). Name a set or a checkpoint with
name=path, e.g. --generated teacher=runs/teacher_samples.
"""

import argparse
import sys
from pathlib import Path

from wgunet_cli.arguments import count, path, positive, positive_number, renamed, seed, weight

PROBE_TIMESTEPS = "50,150,300,500,700,900"  # wgunet.evaluation.probe.DEFAULT_TIMESTEPS; a literal keeps --help fast
TEACHER = "assets/teacher"  # as TrainConfig.teacher; a literal here keeps --help from importing torch
REFERENCE = "patches:heldout"
FID_FEATURES = ["auto", "teacher", "inception", "dinov2", "none"]


def timestep_list(text: str) -> tuple[int, ...]:
    """--timesteps: comma-separated non-negative integers."""
    try:
        values = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 50,300,700, got {text!r}") from None
    if any(t < 0 for t in values):
        raise argparse.ArgumentTypeError(f"timesteps must be >= 0, got {text!r}")
    return values


# Every flag that more than one subcommand takes, defined once: the same name means the same thing everywhere.
SHARED = {
    "--reference": dict(default=REFERENCE, help=f"real images: a folder, an .npz, a sample folder or {REFERENCE} "
                        "(built-in, cut at the size of the other images; default)"),
    "--teacher": dict(default=TEACHER, help=f"the teacher checkpoint, whose features --features teacher uses (default {TEACHER})"),
    "--features": dict(default="auto", choices=FID_FEATURES,
                       help="FID/KID features: auto (inception, else dinov2, else teacher), inception (the standard FID "
                       "features; needs .[inception] and its weights file), dinov2 (transformers + local weights), "
                       "teacher (mid-block features of --teacher; offline; compares only sets scored with the same "
                       "teacher, NOT published FID), none (no FID/KID: the spectra alone, read in batches)"),
    "--bootstrap": dict(type=count, default=200, help="bootstrap resamples for the 95%% intervals (default 200)"),
    "--timesteps": dict(type=timestep_list, default=timestep_list(PROBE_TIMESTEPS),
                        help=f"probe timesteps, comma-separated (default {PROBE_TIMESTEPS})"),
    "--probe-images": dict(type=positive, default=256, help="real images the probe noises and denoises (default 256)"),
    "--seed": dict(type=seed, default=0, help="seed (sampling: image i uses (seed, i); probe noise; FINC features)"),
    "--out": dict(type=path, required=True, help="output folder"),
    "--fid-ref": dict(default=None, metavar="STATS_NPZ",
                      help="score FID against saved statistics (eval.py fid-ref, or a published mu/sigma .npz made "
                      "with the same --features) instead of the reference images; KID is then not computed"),
    "--convention": dict(default="seed", choices=["seed", "frequency_bias"],
                         help="reduced-spectrum convention: seed (luma, DC removed, Hann window, rings of normalised "
                         "radius; default) or frequency_bias (per RGB channel, no window, DC kept, rings of integer "
                         "pixel radius, as autonomousvision/frequency_bias: curves comparable with published ones)"),
}


def add(parser: argparse.ArgumentParser, *flags: str, **changes: dict) -> None:
    for flag in flags:
        parser.add_argument(flag, **{**SHARED[flag], **changes.get(flag.lstrip("-").replace("-", "_"), {})})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    spectrum = commands.add_parser("spectrum", help="reduced spectra, spectral scores and FID/KID of image sets")
    spectrum.add_argument("--generated", action="append", required=True, metavar="[NAME=]SET",
                          help="a generated set (folder, .npz or sample folder); repeat for several (teacher, student, ...)")
    add(spectrum, "--reference", "--out", "--features", "--teacher", "--bootstrap", "--convention", "--fid-ref",
        out=dict(help="folder for metrics.json and spectra.png"))
    spectrum.add_argument("--no-fid", action="store_true", help="skip FID/KID")
    spectrum.add_argument("--num-images", type=positive, default=None,
                          help="use the first N images of each set, the reference included (default all)")

    probe = commands.add_parser("probe", help="which radii each checkpoint recovers from x_t, per timestep")
    probe.add_argument("checkpoints", nargs="+", metavar="[NAME=]CHECKPOINT", help="model folders, runs or Hub ids")
    add(probe, "--reference", "--out", "--timesteps", "--probe-images", "--seed",
        out=dict(help="folder for probe.json, probe.md and probe.png"))

    finc = commands.add_parser("finc", help="FINC modes the test set over- and under-produces against the reference")
    finc.add_argument("--test", required=True, help="the set under test (e.g. student samples): folder, .npz or sample folder")
    add(finc, "--reference", "--out", "--teacher", "--seed",
        reference=dict(required=True, default=None, help="the set it is compared with (e.g. teacher samples)"),
        out=dict(help="folder for finc.json, finc_modes.png and the feature cache"))
    finc.add_argument("--features", default="teacher", choices=["teacher", "pixels", "inception", "dinov2"],
                      help="embedding: teacher (mid-block of --teacher at small t, offline; default), pixels "
                      "(downsampled), inception or dinov2 (need their weights)")
    finc.add_argument("--sigma", type=positive_number, default=None, help="kernel bandwidth (default: half the median distance)")
    finc.add_argument("--rho", type=positive_number, default=1.0, help="novelty threshold in C_test - rho C_reference")
    finc.add_argument("--r", type=positive, default=2000, help="random Fourier features (2r dimensions)")
    finc.add_argument("--num-modes", type=positive, default=10, help="modes reported per direction, at most")
    finc.add_argument("--top-k", type=positive, default=25, help="top samples listed per mode")
    finc.add_argument("--cache", default=None, help="feature cache folder (default OUT/feature_cache)")

    stig = commands.add_parser("stig", help="STIG spectral refinement: train a refiner, or apply one")
    stig_commands = stig.add_subparsers(dest="stig_command", required=True)
    stig_train = stig_commands.add_parser("train", help="train a refiner from generated toward real spectra")
    stig_train.add_argument("--generated", required=True, help="generated images: folder, .npz or sample folder")
    add(stig_train, "--reference", "--out", out=dict(help="run folder: checkpoints/, metrics.jsonl, refiner/"))
    stig_train.add_argument("--preset", default="compact", choices=["compact", "paper"],
                            help="compact (default: a 0.05 M-parameter translator that trains in minutes on a CPU) or "
                            "paper (STIG as published: UNet++ translator of 24.8 M parameters, sigmoid PatchGAN, "
                            "batch 1, lr 8e-5; the flags below override either)")
    stig_train.add_argument("--steps", type=positive, default=None, help="training steps (default 1000)")
    stig_train.add_argument("--batch-size", type=positive, default=None,
                            help="spectra per batch (default 16; paper preset 1)")
    stig_train.add_argument("--lr", type=positive_number, default=None,
                            help="Adam learning rate (default 1e-3; paper preset 8e-5; CUT uses 2e-4 for far longer runs)")
    stig_train.add_argument("--seed", type=seed, default=None, help="seed (default 0)")
    stig_train.add_argument("--lambda-gan", type=weight, default=None, help="adversarial weight (default 5; paper preset 3)")
    stig_train.add_argument("--lambda-identity", type=weight, default=None,
                            help="weight of the L1 identity loss on real spectra (default 1)")
    stig_train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    stig_apply = stig_commands.add_parser("apply", help="refine a set of images with a trained refiner")
    stig_apply.add_argument("--model", required=True, help="refiner folder (or the training --out)")
    stig_apply.add_argument("--input", required=True, help="images to refine: folder, .npz or sample folder")
    add(stig_apply, "--out", "--reference", "--features", "--teacher", "--bootstrap",
        out=dict(help="folder for the refined PNGs, grid.png and samples.npz"),
        reference=dict(default=None, help="real set: scores (LFD, high-frequency ratio, FID/KID, ...) before and after"))
    stig_apply.add_argument("--overwrite", action="store_true", help="replace images already in --out")

    report = commands.add_parser("report", help="the whole evaluation of a student vs its teacher: metrics.json, report.html")
    report.add_argument("student", help="the student checkpoint: model folder, run folder, diffusers folder or Hub id")
    add(report, "--teacher", "--reference", "--out", "--features", "--timesteps", "--probe-images", "--bootstrap",
        "--seed", "--convention", "--fid-ref", out=dict(help="report folder; samples already in OUT/samples are reused"),
        teacher=dict(help=f"the teacher checkpoint, sampled and scored beside the student (default {TEACHER})"))
    report.add_argument("--num-images", type=positive, default=256, help="images sampled from each model (default 256)")
    report.add_argument("--num-samples", dest="num_images", type=positive, action=renamed("--num-images"),
                        help=argparse.SUPPRESS)
    report.add_argument("--scheduler", default="ddim", choices=["ddpm", "ddim", "dpm++"], help="sampler (default ddim)")
    report.add_argument("--steps", type=positive, default=None, help="denoising steps (default: as sample.py)")
    report.add_argument("--batch-size", type=positive, default=None, help="images per forward pass (default: as sample.py)")
    report.add_argument("--device", default="auto", help="sampling device: auto, cpu, cuda, ...")
    report.add_argument("--finc-features", default="teacher", choices=["teacher", "pixels", "inception", "dinov2"],
                        help="FINC embedding (see eval.py finc --help; default teacher)")
    report.add_argument("--stig-refiner", default=None, help="apply this trained STIG refiner to the student's samples")
    report.add_argument("--stig-steps", type=positive, default=None,
                        help="train a STIG refiner for this many steps on the student's samples vs --reference "
                        "(in OUT/stig, resumed on a re-run) and apply it")
    fid_ref = commands.add_parser("fid-ref", help="FID reference statistics of a set, for --fid-ref")
    fid_ref.add_argument("set", metavar="SET", help="the reference images: folder, .npz, sample folder or patches:heldout "
                         "(built-in, at 32 px)")
    add(fid_ref, "--out", "--features", "--teacher", out=dict(help="the .npz to write (mu, sigma, features, num)"))
    return parser


def main() -> int:
    parser = build_parser()
    args = parser.parse_args()
    if args.command == "report" and args.num_images < 2:
        parser.error("--num-images must be at least 2")
    if getattr(args, "features", None) == "none" and args.command != "spectrum":
        parser.error("--features none is for eval.py spectrum (the spectra alone)")
    if (getattr(args, "no_fid", False) or getattr(args, "features", None) == "none") and args.fid_ref:
        parser.error("--fid-ref gives FID its reference statistics and --no-fid skips FID: pass one of them")
    from wgunet.common.cli import run_cli  # after parsing: --help never loads torch

    return run_cli(lambda: COMMANDS[args.command](args))


def named(values: list[str]) -> dict[str, str]:
    """``name=path`` or ``path`` (named after the path) for each image set or checkpoint."""
    sources = {}
    for value in values:
        name, _, path = value.rpartition("=") if "=" in value else (None, "", value)
        parts = [p for p in Path(path).parts if p not in ("model", "samples", "samples.npz", "/")]
        key = name or (parts[-1] if parts else path)
        if key in sources:
            from wgunet.common.errors import UserError

            raise UserError(f"two sets are named {key!r}: name them apart, e.g. {key}_a={sources[key]} {key}_b={path}")
        sources[key] = path
    return sources


def _spectrum(args: argparse.Namespace) -> None:
    from wgunet.evaluation.commands import spectrum
    from wgunet.evaluation.outputs import format_scores

    result = spectrum(named(args.generated), args.reference, Path(args.out), features=args.features,
                      teacher=args.teacher, num_images=args.num_images, bootstrap=args.bootstrap,
                      fid=not args.no_fid and args.features != "none",
                      convention=args.convention, fid_ref=args.fid_ref)
    print(format_scores(result))
    print(f"metrics: {args.out}/metrics.json\nplot: {args.out}/spectra.png")


def _probe(args: argparse.Namespace) -> None:
    from wgunet.evaluation.commands import probe
    from wgunet.evaluation.probe import probe_table

    result = probe(named(args.checkpoints), args.reference, Path(args.out), timesteps=args.timesteps,
                   probe_images=args.probe_images, seed=args.seed)
    print("cut-off radius (recovered >= 1/2 below it):\n" + probe_table(result))
    print(f"table: {args.out}/probe.md\nplot: {args.out}/probe.png\ndata: {args.out}/probe.json")


def _finc(args: argparse.Namespace) -> None:
    from wgunet.evaluation.commands import modes
    from wgunet.evaluation.outputs import format_modes

    comparison = modes(args.test, args.reference, Path(args.out), features=args.features, teacher=args.teacher,
                       cache=args.cache, sigma=args.sigma, rho=args.rho, r=args.r, num_modes=args.num_modes,
                       top_k=args.top_k, seed=args.seed)
    print(format_modes(comparison))
    print(f"modes: {args.out}/finc.json\nimages: {args.out}/finc_modes.png")


def _stig(args: argparse.Namespace) -> None:
    from wgunet.evaluation.commands import stig_apply, stig_train

    if args.stig_command == "train":
        refiner = stig_train(args.generated, args.reference, Path(args.out), resume=args.resume, preset=args.preset,
                             steps=args.steps,
                             batch_size=args.batch_size, lr=args.lr, seed=args.seed, lambda_gan=args.lambda_gan,
                             lambda_identity=args.lambda_identity)
        print(f"refiner: {refiner}\napply it:  python eval.py stig apply --model {refiner} --input IMAGES --out DIR")
        return
    result = stig_apply(args.model, args.input, Path(args.out), reference=args.reference, features=args.features,
                        teacher=args.teacher, bootstrap=args.bootstrap, overwrite=args.overwrite)
    for stage, scores in (result.sets.items() if result else []):
        s = scores.scores
        print(f"{stage:6s} LFD (STIG's) {s.lfd_stig.value:.3f}  LFD (mean |DFT|) {s.lfd_mean_magnitude.value:.4f}  "
              f"high-frequency ratio {s.high_frequency_ratio.value:.3f}  "
              f"LSD {s.log_spectral_distance_db.value:.2f} dB  FID {scores.fid_kid.fid.value:.3f} [{scores.fid_kid.features}]")
    print(f"refined images: {args.out} (grid.png, samples.npz)")


def _report(args: argparse.Namespace) -> None:
    from wgunet.evaluation.outputs import format_scores
    from wgunet.evaluation.report import build_report

    metrics = build_report(args.student, args.teacher, args.reference, args.num_images, Path(args.out),
                           scheduler=args.scheduler, steps=args.steps, seed=args.seed, batch_size=args.batch_size,
                           device=args.device, features=args.features, finc_features=args.finc_features,
                           stig_refiner=args.stig_refiner, stig_steps=args.stig_steps, probe_timesteps=args.timesteps,
                           probe_images=args.probe_images, bootstrap=args.bootstrap, convention=args.convention,
                           fid_ref=args.fid_ref)
    if metrics is None:  # not the main process of several: it sampled its share
        return
    print(format_scores(metrics.spectrum))
    print("time per stage: " + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in metrics.seconds.items()))
    print(f"report: {args.out}/report.html\nmetrics: {args.out}/metrics.json")


def _fid_ref(args: argparse.Namespace) -> None:
    from wgunet.evaluation.commands import fid_reference

    statistics = fid_reference(args.set, Path(args.out), features=args.features, teacher=args.teacher)
    print(f"{statistics.num} images, {len(statistics.mu)} features [{statistics.features}]\nstatistics: {args.out}")


COMMANDS = {"spectrum": _spectrum, "probe": _probe, "finc": _finc, "stig": _stig, "report": _report,
            "fid-ref": _fid_ref}

if __name__ == "__main__":
    sys.exit(main())
