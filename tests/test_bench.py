"""The benchmarks whose numbers the README quotes still run (at toy sizes: what they measure is not checked here,
only that the scripts work against the package as it is)."""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from teacher import Measures, chance_of_data  # noqa: E402


def run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_sampling_benchmark_times_every_model_with_the_samplers_sample_py_builds():
    out = run("bench/sampling.py", "--batch-sizes", "2", "--steps", "2", "--rounds", "1")
    for model in ("student (configs/default.yaml)", "shipped teacher", "google/ddpm-cifar10-32 architecture"):
        assert model in out
    assert "of peak" in out and "GMAC/s here" in out


def test_train_step_benchmark_reports_the_overhead_and_the_folded_blocks():
    out = run("bench/train_step.py", "--batch-size", "2", "--rounds", "1", "--precision", "no")
    assert "overhead" in out and "four-band formulation (reference)" in out


def test_gpu_check_runs_every_kind_of_row_at_toy_sizes(tmp_path):
    """--smoke on the CPU: sampling, training (rates from the logged wall times) and the seed rows reach the table."""
    out = run("bench/gpu_check.py", "--smoke", "--out", str(tmp_path))
    table = (tmp_path / "table.md").read_text()
    for row in ("sample student, batch 4, DDIM 2, bfloat16, eager", "train batch 4, bf16, eager",
                "resumed vs uninterrupted (batch 4): max |pixel difference| | 0 |"):
        assert row in table and row in out


def test_folder_verification_benchmark_checks_a_folder_twice(tmp_path):
    out = run("bench/verify_folder.py", "--num-images", "3", "--pixels", "8", "--work", str(tmp_path))
    assert "| first (all decoded) | 3 |" in out and "| again (none changed) | 3 |" in out


def test_teacher_comparison_scores_the_sets_and_draws_the_grids(tmp_path):
    """The shipped teacher against itself, 3 DDIM 5 images each (the full chain skipped: the same code with the
    DDPM scheduler): the table's rows, the training patches' own scores over random draws, the verdict, and the
    side-by-side grids of real, shipped and candidate."""
    out = run("bench/teacher.py", "--new", "assets/teacher", "--num-images", "3", "--chain-images", "0",
              "--ddim-steps", "5", "--bootstrap", "0", "--draws", "2", "--work", str(tmp_path))
    assert "| candidate (assets/teacher) | DDIM 5 | 3 |" in out and "| real held-out patches | - | 1088 |" in out
    assert "| training patches (median of 2 draws) | DDIM 5 | 3 |" in out
    # A candidate identical to the shipped teacher is not better: its HF ratio, LSD and FID tie, and a tie misses.
    verdict = next(line for line in out.splitlines() if line.startswith("candidate: passes"))
    assert all(f"DDIM 5: {measure}" in verdict for measure in ("HF ratio", "LSD", "FID (frozen teacher features)"))
    assert "weights 278ac547cff4" in out and (tmp_path / "grids.png").stat().st_size > 10_000
    assert "training patches, draw by draw: " in out and " of 2 draws pass every measure" in out
    # Another seed is a fresh confirmation: new noise in folders of its own, the default seeds' images kept.
    run("bench/teacher.py", "--new", "assets/teacher", "--num-images", "3", "--chain-images", "0", "--ddim-steps", "5",
        "--bootstrap", "0", "--draws", "2", "--seed", "1", "--work", str(tmp_path))
    first, fresh = (tmp_path / f"assets-teacher-ddim5{seeded}" / "000000.png" for seeded in ("", "-seed1"))
    assert first.read_bytes() != fresh.read_bytes() and (tmp_path / "grids-seed1.png").is_file()


def test_the_chance_of_data_counts_the_draws_that_pass_every_measure_of_both_samplers():
    """Three draws against a shipped teacher with HF ratio 0.9, LSD 2 dB, FID 10: draw 0 passes everything, draw 1
    misses the full chain's LSD (a tie), draw 2 the DDIM colour spread (12% over): one draw of three passes all."""
    shipped = Measures(1.0, 1.0, 0.9, 2.0, [10.0])
    good = Measures(1.05, 0.95, 1.05, 1.5, [8.0])
    each_draw = {"full chain": [good, Measures(1.0, 1.0, 1.0, 2.0, [8.0]), good],
                 "DDIM 50": [good, good, Measures(1.0, 1.12, 1.0, 1.0, [5.0])]}
    line = chance_of_data(each_draw, {"full chain": shipped, "DDIM 50": shipped}, ["FID"])
    assert "1 of 3 draws pass every measure" in line
    assert "full chain: pixel std 3, colour spread 3, HF ratio 3, LSD 2, FID 3" in line
    assert "DDIM 50: pixel std 3, colour spread 2, HF ratio 3, LSD 3, FID 3" in line
