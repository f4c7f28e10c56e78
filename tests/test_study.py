"""bench/study.py on a tiny grid: every part runs, and a study cut short goes on where it stopped."""

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from conftest import TINY_STUDENT  # noqa: E402
from study import LOSSES, WEIGHTINGS, Study, run_study  # noqa: E402
from test_training import TINY_UNET2D  # noqa: E402


def tiny_study(teacher: Path, out: Path) -> Study:
    overrides = (f"teacher={teacher}", f"student={TINY_STUDENT}", "data.sample_size=16", "data.patches_per_image=4",
                 "batch_size=8", "warmup_steps=1")
    return Study(out, seeds=(0, 1), budget=4, budgets=(2, 4), samplers=(("ddim", 2), ("dpm++", 3)), num_images=6,
                 config=None, overrides=overrides, bootstrap=5, probe_timesteps=(10, 90), scored_with=("ddim", 3),
                 architectures={"WG-UNet": [], "UNet2DModel": ["student_class=UNet2DModel", f"student={TINY_UNET2D}"]})


@pytest.mark.slow
def test_a_killed_study_goes_on_where_it_stopped_and_ends_as_an_uninterrupted_one(tiny_teacher, tmp_path):
    whole = run_study(tiny_study(tiny_teacher, tmp_path / "whole"))
    keys = {row["key"] for row in whole}
    # 2 seeds x (2 architectures x 3 loss variants + 2 extra budget runs): each scored with ddim 3 and probed; the
    # budget-4 runs also with every sampler; the teacher with every sampler
    runs = 2 * (2 * len(LOSSES) + 2)
    assert len({k.split("/")[0] for k in keys} - {"teacher"}) == runs
    assert len([k for k in keys if k.endswith("/probe")]) == runs + 1  # and the teacher's
    assert {k for k in keys if k.startswith("teacher/")} == {"teacher/ddim-2", "teacher/dpm++-3", "teacher/probe"}
    assert all(row["scores"]["high_frequency_ratio"]["value"] > 0 for row in whole if "scores" in row)
    assert (tmp_path / "whole" / "steps.png").is_file() and (tmp_path / "whole" / "budget.png").is_file()
    # a kill: one run lost its export and last checkpoint; a sample set was cut half-way (its row never written)
    cut = tmp_path / "whole"
    summary = (cut / "summary.md").read_text()
    run = next((cut / "runs").iterdir())
    shutil.rmtree(run / "model")
    shutil.rmtree(sorted((run / "checkpoints").iterdir())[-1])
    rows = [json.loads(line) for line in (cut / "results.jsonl").read_text().splitlines()]
    lost = next(row for row in reversed(rows) if "scores" in row)
    (cut / "results.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows if row is not lost))
    for png in sorted((cut / "samples" / lost["key"]).glob("*.png"))[3:]:
        png.unlink()
    for derived in ("grid.png", "samples.npz"):
        (cut / "samples" / lost["key"] / derived).unlink(missing_ok=True)
    again = run_study(tiny_study(tiny_teacher, cut))
    by_key = {row["key"]: row for row in again}
    assert by_key.keys() == keys
    untimed = lambda row: {k: v for k, v in row.items() if k != "seconds"}  # noqa: E731
    for row in whole:  # the same numbers: runs resume exactly, sample folders fill in the same images
        assert untimed(by_key[row["key"]]) == untimed(row), row["key"]
    assert (cut / "summary.md").read_text() == summary
    # each row says how long it took; their sum is the study's wall time across the kill
    wall = json.loads((cut / "wall_time.json").read_text())
    assert all(row["seconds"] >= 0 for row in again) and wall["timed_rows"] == len(again) and wall["untimed_rows"] == 0
    assert wall["seconds_of_timed_rows"] == pytest.approx(sum(row["seconds"] for row in again), abs=0.1 * len(again))
    assert 0 < wall["seconds_this_invocation"] < wall["seconds_of_timed_rows"]  # the resume redid only what was lost


@pytest.mark.slow
def test_the_weighting_part_trains_each_frequency_weighting_and_focal_at_the_longest_budget(tiny_teacher, tmp_path):
    import dataclasses

    study = dataclasses.replace(tiny_study(tiny_teacher, tmp_path / "weighting"), budgets=(2, 6))
    rows = run_study(study, ("weighting",))
    focal, uniform = WEIGHTINGS
    runs = {(row["losses"], row["budget"], row["seed"]) for row in rows}
    assert runs == {(w, b, s) for s in (0, 1) for w, b in ((focal, 4), (uniform, 4), (focal, 6))}
    assert len([row for row in rows if "scores" in row]) == 6 and len([row for row in rows if "probe_cutoff" in row]) == 6
    configs = {run.name: (run / "config.yaml").read_text() for run in (tmp_path / "weighting" / "runs").iterdir()}
    assert all(("freq_weight: focal" in text) == ("focal" in name) for name, text in configs.items())
    assert all(("freq_weight: uniform" in text) == ("uniform" in name) for name, text in configs.items())
    summary = (tmp_path / "weighting" / "summary.md").read_text()
    assert focal in summary and uniform in summary


def test_summary_only_on_a_folder_without_results_says_so(tmp_path):
    import subprocess

    result = subprocess.run([sys.executable, "bench/study.py", "--out", str(tmp_path / "none"), "--summary-only"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "holds no study results" in result.stderr and "without --summary-only first" in result.stderr
    assert not (tmp_path / "none").exists()  # nothing written where nothing was run


def test_the_sweep_plot_draws_each_reference_level_in_its_sets_colour():
    import io

    import numpy as np
    from PIL import Image

    from wgunet.evaluation.plots import SWEPT_SCORES, plot_sweep, set_colour

    curves = {key: {"student": {250: [4.0, 5.0], 1000: [2.0, 3.0]}} for key in SWEPT_SCORES}
    assert set_colour("teacher") == "#1f77b4" and set_colour("student") == "#ff7f0e"  # blue level, orange curve

    def teacher_pixels(png: bytes) -> int:  # blue-dominant pixels (the 1-px line is antialiased into white)
        r, g, b = np.moveaxis(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int), -1, 0)
        return int(((b - r > 60) & (b - g > 20)).sum())

    plain = plot_sweep(curves, "training steps")
    levelled = plot_sweep(curves, "training steps", {"teacher (ddim 50)": {key: 2.5 for key in SWEPT_SCORES}})
    assert teacher_pixels(plain) == 0 and teacher_pixels(levelled) > 100
