"""Evaluate generated images and checkpoints: python eval.py {spectrum,probe,finc,stig} ...

  spectrum  reduced spectra, spectral scores (log-spectral distance, LFD, high-frequency ratio, per-band
            errors, 95% bootstrap intervals) and FID/KID of generated sets against a reference set
  probe     per-timestep spectral-bias probe of checkpoints against the optimal linear denoiser
  stig      STIG spectral refinement of generated images (train a refiner, apply it)
  finc      FINC differential clustering: the modes a test set has more of than a reference, and those it misses
  report    all of the above for a student and its teacher: samples (reused on a re-run), metrics.json and one
            self-contained report.html

Image sets are a folder of same-size images, an .npz from sample.py, or patches:heldout (built-in).
Name a set with name=path, e.g. --generated teacher=runs/teacher_samples.
"""

import argparse
import sys


PROBE_TIMESTEPS = "50,150,300,500,700,900"  # wgunet.probe.DEFAULT_TIMESTEPS; a literal keeps --help fast
TEACHER = "assets/teacher"


def timestep_list(text: str) -> tuple[int, ...]:
    """--timesteps: comma-separated non-negative integers."""
    try:
        values = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 50,300,700, got {text!r}") from None
    if any(t < 0 for t in values):
        raise argparse.ArgumentTypeError(f"timesteps must be >= 0, got {text!r}")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    spectrum = commands.add_parser("spectrum", help="reduced spectra, spectral scores and FID/KID of image sets")
    spectrum.add_argument("--generated", "--generated2", action="append", required=True, metavar="[NAME=]DIR_OR_NPZ",
                          help="a generated set; repeat for several (teacher, student, ...)")
    spectrum.add_argument("--reference", default="patches:heldout",
                          help="the real set: DIR_OR_NPZ or patches:heldout (default)")
    spectrum.add_argument("--out", required=True, help="folder for metrics.json and spectra.png")
    spectrum.add_argument("--features", default="auto", choices=["auto", "teacher", "inception", "dinov2"],
                          help="FID/KID features: auto (inception, else dinov2, else teacher), inception (the standard "
                          "FID features; needs .[inception] and its weights file), dinov2 (transformers + local "
                          "weights), teacher (mid-block features of --teacher; offline; compares only sets scored "
                          "with the same teacher, NOT published FID)")
    spectrum.add_argument("--teacher", default=TEACHER, help=f"UNet2DModel for --features teacher (default {TEACHER})")
    spectrum.add_argument("--no-fid", action="store_true", help="skip FID/KID")
    spectrum.add_argument("--size", type=int, default=32, help="image size of the built-in reference (default 32)")
    spectrum.add_argument("--limit", type=int, default=None, help="use at most this many images per set")
    spectrum.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the intervals")

    probe = commands.add_parser("probe", help="which radii each checkpoint recovers from x_t, per timestep")
    probe.add_argument("checkpoints", nargs="+", metavar="[NAME=]CHECKPOINT", help="model folders, runs or Hub ids")
    probe.add_argument("--reference", default="patches:heldout", help="clean images: DIR_OR_NPZ or patches:heldout")
    probe.add_argument("--out", required=True, help="folder for probe.json, probe.md and probe.png")
    probe.add_argument("--timesteps", default=PROBE_TIMESTEPS, type=timestep_list, help="comma-separated timesteps")
    probe.add_argument("--num", type=int, default=256, help="reference images used")
    probe.add_argument("--size", type=int, default=32, help="image size of the built-in reference")
    probe.add_argument("--seed", type=int, default=0, help="seed of the noise added to the reference images")
    finc = commands.add_parser("finc", help="FINC modes the test set over- and under-produces against the reference")
    finc.add_argument("--test", required=True, help="the set under test (e.g. student samples): DIR_OR_NPZ")
    finc.add_argument("--reference", required=True, help="the set it is compared with (e.g. teacher samples)")
    finc.add_argument("--out", required=True, help="folder for finc.json, finc_modes.png and the feature cache")
    finc.add_argument("--features", default="teacher", choices=["teacher", "pixels", "inception", "dinov2"],
                      help="embedding: teacher (mid-block of --teacher at small t, offline; default), pixels "
                      "(downsampled), inception or dinov2 (need their weights)")
    finc.add_argument("--teacher", default=TEACHER, help="UNet2DModel for --features teacher")
    finc.add_argument("--sigma", type=float, default=None, help="kernel bandwidth (default: half the median distance)")
    finc.add_argument("--rho", type=float, default=1.0, help="novelty threshold in C_test - rho C_reference")
    finc.add_argument("--r", type=int, default=2000, help="random Fourier features (2r dimensions)")
    finc.add_argument("--num-modes", type=int, default=10, help="modes reported per direction, at most")
    finc.add_argument("--top-k", type=int, default=25, help="top samples listed per mode")
    finc.add_argument("--cache", default=None, help="feature cache folder (default OUT/feature_cache)")
    finc.add_argument("--size", type=int, default=32, help="image size of built-in sets")
    finc.add_argument("--seed", type=int, default=0, help="seed of the Fourier features and the noise split")
    stig = commands.add_parser("stig", help="STIG spectral refinement: train a refiner, or apply one")
    stig_commands = stig.add_subparsers(dest="stig_command", required=True)
    stig_train = stig_commands.add_parser("train", help="train a refiner from generated toward real spectra")
    stig_train.add_argument("--generated", required=True, help="generated images: DIR_OR_NPZ")
    stig_train.add_argument("--real", default="patches:heldout", help="real images: DIR_OR_NPZ or patches:heldout")
    stig_train.add_argument("--out", required=True, help="run folder: checkpoints/, metrics.jsonl, refiner/")
    stig_train.add_argument("--steps", type=int, default=None, help="training steps (default 1000)")
    stig_train.add_argument("--batch-size", type=int, default=None, help="spectra per batch (default 16)")
    stig_train.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3; CUT uses 2e-4 for far longer runs)")
    stig_train.add_argument("--seed", type=int, default=None, help="seed (default 0)")
    stig_train.add_argument("--lambda-gan", type=float, default=None, help="adversarial weight (default 5)")
    stig_train.add_argument("--lambda-identity", type=float, default=None,
                            help="weight of the L1 identity loss on real spectra (default 1)")
    stig_train.add_argument("--size", type=int, default=32, help="image size of built-in sets")
    stig_train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    stig_apply = stig_commands.add_parser("apply", help="refine a set of images with a trained refiner")
    stig_apply.add_argument("--model", required=True, help="refiner folder (or the training --out)")
    stig_apply.add_argument("--input", required=True, help="images to refine: DIR_OR_NPZ")
    stig_apply.add_argument("--out", required=True, help="folder for the refined PNGs, grid.png and samples.npz")
    stig_apply.add_argument("--reference", default=None,
                            help="real set: report LFD, high-frequency ratio and FID/KID before and after")
    stig_apply.add_argument("--features", default="auto", choices=["auto", "teacher", "inception", "dinov2"],
                            help="FID/KID features (see eval.py spectrum --help)")
    stig_apply.add_argument("--teacher", default=TEACHER, help="UNet2DModel for --features teacher")
    stig_apply.add_argument("--size", type=int, default=32, help="image size of built-in sets")
    stig_apply.add_argument("--overwrite", action="store_true", help="replace images already in --out")
    report = commands.add_parser("report", help="the whole evaluation of a student vs its teacher: metrics.json, report.html")
    report.add_argument("student", help="the student checkpoint: model folder, run folder, diffusers folder or Hub id")
    report.add_argument("--teacher", default=TEACHER, help="the teacher checkpoint (default assets/teacher)")
    report.add_argument("--reference", default="patches:heldout",
                        help="held-out real images: DIR_OR_NPZ or patches:heldout (default)")
    report.add_argument("--num", type=int, default=256, help="images sampled from each model (default 256)")
    report.add_argument("--out", required=True, help="report folder; samples already in OUT/samples are reused")
    report.add_argument("--scheduler", default="ddim", choices=["ddpm", "ddim", "dpm++"], help="sampler (default ddim)")
    report.add_argument("--steps", type=int, default=None, help="denoising steps (default: as sample.py)")
    report.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: as sample.py)")
    report.add_argument("--seed", type=int, default=0, help="sampling seed (image i uses (seed, i)), also probe and FINC")
    report.add_argument("--device", default="auto", help="sampling device: auto, cpu, cuda, ...")
    report.add_argument("--features", default="auto", choices=["auto", "teacher", "inception", "dinov2"],
                        help="FID/KID features (see eval.py spectrum --help); teacher means --teacher's features")
    report.add_argument("--finc-features", default="teacher", choices=["teacher", "pixels", "inception", "dinov2"],
                        help="FINC embedding (see eval.py finc --help; default teacher)")
    report.add_argument("--stig-refiner", default=None, help="apply this trained STIG refiner to the student's samples")
    report.add_argument("--stig-steps", type=int, default=None,
                        help="train a STIG refiner for this many steps on the student's samples vs --reference "
                        "(in OUT/stig, resumed on a re-run) and apply it")
    report.add_argument("--timesteps", default=PROBE_TIMESTEPS, type=timestep_list, help="probe timesteps, comma-separated")
    report.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the intervals")
    args = parser.parse_args()
    if args.command == "report" and (args.num < 2 or (args.stig_steps is not None and args.stig_steps < 1)):
        parser.error("--num must be at least 2 and --stig-steps positive")
    from wgunet.cli import run_cli  # after parsing: --help never loads torch

    return run_cli(lambda: COMMANDS[args.command](args))


def _spectrum(args: argparse.Namespace) -> None:
    from wgunet.evaluate import evaluate_spectrum, format_scores, named_sources

    metrics = evaluate_spectrum(named_sources(args.generated), args.reference, args.out, features=args.features,
                                teacher=args.teacher, size=args.size, limit=args.limit, bootstrap=args.bootstrap,
                                fid=not args.no_fid)
    print(format_scores(metrics))
    print(f"metrics: {args.out}/metrics.json\nplot: {args.out}/spectra.png")


def _probe(args: argparse.Namespace) -> None:
    from wgunet.evaluate import named_sources, run_probe
    from wgunet.probe import probe_table

    result = run_probe(named_sources(args.checkpoints), args.reference, args.out, size=args.size, limit=args.num,
                       timesteps=args.timesteps, seed=args.seed)
    print("cut-off radius (recovered >= 1/2 below it):\n" + probe_table(result))
    print(f"table: {args.out}/probe.md\nplot: {args.out}/probe.png\ndata: {args.out}/probe.json")


def _finc(args: argparse.Namespace) -> None:
    from wgunet.evaluate import run_finc

    report = run_finc(args.test, args.reference, args.out, features=args.features, teacher=args.teacher,
                      cache=args.cache, size=args.size, sigma=args.sigma, rho=args.rho, r=args.r,
                      num_modes=args.num_modes, top_k=args.top_k, seed=args.seed)
    print(f"features: {report['features']}; sigma {report['sigma']:.4g}, noise floor {report['noise_floor']:.4g}")
    for key, title in (("test_modes", "more in test"), ("reference_modes", "missed by test")):
        print(f"{title}: " + (", ".join(f"{m['eigenvalue']:.4f} (~{m['size']} images)" for m in report[key]) or "none"))
    print(f"modes: {args.out}/finc.json\nimages: {args.out}/finc_modes.png")


def _stig(args: argparse.Namespace) -> None:
    from wgunet.evaluate import apply_stig, train_stig

    if args.stig_command == "train":
        refiner = train_stig(args.generated, args.real, args.out, size=args.size, resume=args.resume,
                             steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                             lambda_gan=args.lambda_gan, lambda_identity=args.lambda_identity)
        print(f"refiner: {refiner}\napply it:  python eval.py stig apply --model {refiner} --input IMAGES --out DIR")
        return
    report = apply_stig(args.model, args.input, args.out, reference=args.reference, size=args.size,
                        features=args.features, teacher=args.teacher, overwrite=args.overwrite)
    for stage in ("before", "after"):
        if stage in report:
            r = report[stage]
            print(f"{stage:6s} LFD {r['lfd']['value']:.4f}  high-frequency ratio {r['high_frequency_ratio']['value']:.3f}"
                  f"  LSD {r['log_spectral_distance_db']['value']:.2f} dB  FID {r['fid']:.3f} [{r['features']}]")
    print(f"refined images: {args.out} (grid.png, samples.npz)")


def _report(args: argparse.Namespace) -> None:
    from wgunet.evaluate import format_scores
    from wgunet.report import build_report

    metrics = build_report(args.student, args.teacher, args.reference, args.num, args.out, scheduler=args.scheduler,
                           steps=args.steps, seed=args.seed, batch_size=args.batch_size, device=args.device,
                           features=args.features, finc_features=args.finc_features, stig_refiner=args.stig_refiner,
                           stig_steps=args.stig_steps, probe_timesteps=args.timesteps,
                           bootstrap=args.bootstrap)
    print(format_scores(metrics))
    print(f"report: {args.out}/report.html\nmetrics: {args.out}/metrics.json")


COMMANDS = {"spectrum": _spectrum, "probe": _probe, "finc": _finc, "stig": _stig, "report": _report}

if __name__ == "__main__":
    sys.exit(main())
