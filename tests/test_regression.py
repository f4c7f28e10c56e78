"""The evaluation's numbers pinned: `eval.py spectrum` and `eval.py finc` on sets made here give these point
estimates to 1e-5 (KID with its subsets drawn from the seed; FINC's mode sizes by the excess-count rule of
finc.mode_sizes)."""

import json
import runpy
import sys

import pytest
import torch
from PIL import Image
from shapes import make_shapes, uniform_mix

from wgunet.evaluation.ladder import blurred, noised

SPECTRUM = {  # name: (log_spectral_distance_db, lfd, high_frequency_ratio, band_error_low, _mid, _high, fid, kid_mean)
    "blurred": (27.271820068359375, 0.0024889700580388308, 0.0001556945644551888, 0.4085497260093689,
                2.750185251235962, 3.712953567504883, 0.02551332116127014, -0.00013851166295353323),
    "noised": (1.7273083925247192, 0.0013606823049485683, 1.4259958267211914, 0.07631167024374008,
               0.04037710651755333, 0.22594675421714783, 0.021231090649962425, -0.0005651807878166437),
}
SCORES = ("log_spectral_distance_db", "lfd_mean_magnitude", "high_frequency_ratio", "band_error_low", "band_error_mid",
          "band_error_high")
FINC = {"sigma": 3.785407781600952, "noise_floor": 0.09034482727586654,
        "test_modes": [(0.21140849590301514, 43, ["094.png", "025.png", "027.png"])],
        "reference_modes": [(0.18093454837799072, 47, ["082.png", "015.png", "092.png"])]}
# sizes: the excess-count rule of finc.mode_sizes (eigenvalue x n, the rule before it, gave 25 and 22)


def save(images, folder):
    folder.mkdir(parents=True)
    for i, image in enumerate(images.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    return folder


def run(*argv):
    sys.argv = ["eval.py", *map(str, argv)]
    with pytest.raises(SystemExit) as done:
        runpy.run_path("eval.py", run_name="__main__")
    assert done.value.code == 0


def close(a, b):
    return a == pytest.approx(b, rel=1e-5, abs=1e-7)


def test_spectrum_numbers_are_unchanged(tiny_teacher, tmp_path):
    shapes = lambda n, seed: torch.from_numpy(make_shapes(n, seed=seed)[0])  # noqa: E731
    reference = save(shapes(80, 0), tmp_path / "reference")
    sets = {"blurred": save(blurred(shapes(64, 1), 1.2), tmp_path / "blurred"),
            "noised": save(noised(shapes(64, 2), 0.1), tmp_path / "noised")}
    run("spectrum", *[f"--generated={n}={p}" for n, p in sets.items()], "--reference", reference, "--features",
        "teacher", "--teacher", tiny_teacher, "--bootstrap", 20, "--out", tmp_path / "out")
    result = json.loads((tmp_path / "out" / "metrics.json").read_text())
    for name, pinned in SPECTRUM.items():
        measured = result["sets"][name]
        values = [measured["scores"][k]["value"] for k in SCORES]
        values += [measured["fid_kid"]["fid"]["value"], measured["fid_kid"]["kid_mean"]]
        assert all(close(v, p) for v, p in zip(values, pinned)), (name, values, pinned)


def test_finc_numbers_are_unchanged(tmp_path):
    mixes = {"test": (uniform_mix() | {("triangle", "red"): 6.0}, 3),
             "reference": (uniform_mix() | {("square", "blue"): 6.0}, 4)}
    folders = {role: save(torch.from_numpy(make_shapes(120, mix, seed=seed)[0]), tmp_path / role)
               for role, (mix, seed) in mixes.items()}
    run("finc", "--test", folders["test"], "--reference", folders["reference"], "--features", "pixels", "--r", 500,
        "--out", tmp_path / "out")
    result = json.loads((tmp_path / "out" / "finc.json").read_text())
    assert close(result["sigma"], FINC["sigma"]) and close(result["noise_floor"]["test"], FINC["noise_floor"])
    assert result["noise_floor"]["reference"] == result["noise_floor"]["test"]  # rho = 1: one noise matrix
    for key in ("test_modes", "reference_modes"):
        measured = [(m["eigenvalue"], m["size"], m["top"][:3]) for m in result[key]]
        assert len(measured) == len(FINC[key])
        for (value, size, top), (pinned, pinned_size, pinned_top) in zip(measured, FINC[key]):
            assert close(value, pinned) and size == pinned_size and top == pinned_top
