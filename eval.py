"""Evaluate generated images and checkpoints: python eval.py {spectrum,probe} ...

  spectrum  reduced spectra, spectral scores (log-spectral distance, LFD, high-frequency ratio, per-band
            errors, 95% bootstrap intervals) and FID/KID of generated sets against a reference set
  probe     per-timestep spectral-bias probe of checkpoints against the optimal linear denoiser

Image sets are a folder of same-size images, an .npz from sample.py, or patches:heldout (built-in).
Name a set with name=path, e.g. --generated teacher=runs/teacher_samples.
"""

import argparse
import sys

from wgunet.cli import run_cli


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    spectrum = commands.add_parser("spectrum", help="reduced spectra, spectral scores and FID/KID of image sets")
    spectrum.add_argument("--generated", "--generated2", action="append", required=True, metavar="[NAME=]DIR_OR_NPZ",
                          help="a generated set; repeat for several (teacher, student, ...)")
    spectrum.add_argument("--reference", default="patches:heldout",
                          help="the real set: DIR_OR_NPZ or patches:heldout (default)")
    spectrum.add_argument("--out", required=True, help="folder for metrics.json and spectra.png")
    spectrum.add_argument("--features", default="auto",
                          help="FID/KID features: auto (best available), inception, dinov2, randconv (offline, "
                          "not comparable to published FID)")
    spectrum.add_argument("--no-fid", action="store_true", help="skip FID/KID")
    spectrum.add_argument("--size", type=int, default=32, help="image size of the built-in reference (default 32)")
    spectrum.add_argument("--limit", type=int, default=None, help="use at most this many images per set")
    spectrum.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the intervals")

    probe = commands.add_parser("probe", help="which radii each checkpoint recovers from x_t, per timestep")
    probe.add_argument("checkpoints", nargs="+", metavar="[NAME=]CHECKPOINT", help="model folders, runs or Hub ids")
    probe.add_argument("--reference", default="patches:heldout", help="clean images: DIR_OR_NPZ or patches:heldout")
    probe.add_argument("--out", required=True, help="folder for probe.json, probe.md and probe.png")
    probe.add_argument("--timesteps", default="50,150,300,500,700,900", help="comma-separated timesteps")
    probe.add_argument("--num", type=int, default=256, help="reference images used")
    probe.add_argument("--size", type=int, default=32, help="image size of the built-in reference")
    probe.add_argument("--seed", type=int, default=0, help="seed of the noise added to the reference images")
    args = parser.parse_args()
    return run_cli(lambda: COMMANDS[args.command](args))


def _spectrum(args: argparse.Namespace) -> None:
    from wgunet.evaluate import evaluate_spectrum, format_scores, named_sources

    metrics = evaluate_spectrum(named_sources(args.generated), args.reference, args.out, features=args.features,
                                size=args.size, limit=args.limit, bootstrap=args.bootstrap, fid=not args.no_fid)
    print(format_scores(metrics))
    print(f"metrics: {args.out}/metrics.json\nplot: {args.out}/spectra.png")


def _probe(args: argparse.Namespace) -> None:
    from wgunet.evaluate import named_sources, run_probe
    from wgunet.probe import probe_table

    timesteps = tuple(int(t) for t in args.timesteps.split(","))
    result = run_probe(named_sources(args.checkpoints), args.reference, args.out, size=args.size, limit=args.num,
                       timesteps=timesteps, seed=args.seed)
    print("cut-off radius (recovered >= 1/2 below it):\n" + probe_table(result))
    print(f"table: {args.out}/probe.md\nplot: {args.out}/probe.png\ndata: {args.out}/probe.json")


COMMANDS = {"spectrum": _spectrum, "probe": _probe}

if __name__ == "__main__":
    sys.exit(main())
