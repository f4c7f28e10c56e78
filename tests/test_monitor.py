"""Evaluation during training (eval_every): fixed-noise grids, scores in metrics.jsonl, FID against statistics."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wgunet.evaluation.features import MetricError, compute_features, teacher_features
from wgunet.evaluation.fid import ReferenceStatistics
from wgunet.evaluation.image_sets import load_image_set, make_grid
from wgunet.evaluation.outputs import write_fid_reference
from wgunet.evaluation.report import build_report
from wgunet.sampling.samplers import run_sampling
from wgunet.training.config import ConfigError, load_config
from wgunet.training.loop import train

EVAL = ["eval.num_images=8", "eval.steps=2", "eval.bootstrap=20"]


def grid_of_sampled(model: Path, num: int, out: Path) -> np.ndarray:
    """What sample.py draws from ``model`` with the evaluation's sampler and seed, as a grid."""
    run_sampling(str(model), num, out, scheduler="ddim", steps=2, seed=0)
    return make_grid(load_image_set(out).images.permute(0, 2, 3, 1).numpy())


def test_eval_every_scores_the_ema_model_on_the_same_noise_each_time_and_the_report_shows_them(tiny_run,
                                                                                                 tiny_teacher, tmp_path):
    config = load_config(None, tiny_run + ["eval_every=3", *EVAL])
    model = train(config)
    run = Path(config.output_dir)
    assert sorted(p.name for p in (run / "evals").iterdir()) == ["step-3", "step-6"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/high_frequency_ratio" in r]
    assert [r["step"] for r in evals] == [3, 6]
    assert all(np.isfinite(r[k]) for r in evals for k in r)
    saved = json.loads((run / "evals" / "step-6" / "scores.json").read_text())
    assert saved["num_images"] == 8 and saved["sampler"] == "ddim x2" and saved["fid"] is None
    assert saved["scores"]["high_frequency_ratio"]["value"] == pytest.approx(evals[1]["eval/high_frequency_ratio"])
    # the step-6 grid is the exported EMA model's images for seeds (0, i): the same noise sample.py uses
    final = np.asarray(Image.open(run / "evals" / "step-6" / "grid.png"))
    assert np.array_equal(final, grid_of_sampled(model, 8, tmp_path / "samples"))
    assert not np.array_equal(final, np.asarray(Image.open(run / "evals" / "step-3" / "grid.png")))
    card = (model / "README.md").read_text()
    assert "Scored during training at step 6" in card and "| high-frequency ratio (1 is ideal) |" in card
    # the report of the export shows the run's evaluations: a plot of scores against step and the grids
    build_report(str(model), str(tiny_teacher), "patches:heldout", 6, tmp_path / "report", steps=2,
                 probe_timesteps=(10,), probe_images=8, bootstrap=5, features="teacher", finc_features="pixels")
    assert [e["step"] for e in json.loads((tmp_path / "report" / "metrics.json").read_text())["training"]] == [3, 6]
    assert (tmp_path / "report" / "training.png").stat().st_size > 5_000
    page = (tmp_path / "report" / "report.html").read_text()
    assert 'id="training"' in page and 'alt="step 3: high-frequency ratio' in page and 'alt="step 6:' in page


def test_fid_during_training_uses_reference_statistics_and_refuses_other_features(tiny_run, tiny_teacher, tmp_path):
    real = load_image_set("patches:heldout", 16)
    extractor = teacher_features(str(tiny_teacher))()
    write_fid_reference(tmp_path / "stats.npz", ReferenceStatistics.of(compute_features(real.images, extractor),
                                                                       extractor.label))
    config = load_config(None, tiny_run + ["eval_every=6", *EVAL, f"eval.fid_ref={tmp_path / 'stats.npz'}",
                                           "eval.features=teacher"])
    train(config)
    saved = json.loads((Path(config.output_dir) / "evals" / "step-6" / "scores.json").read_text())
    assert saved["fid"]["features"] == extractor.label and saved["fid"]["fid"]["value"] > 0
    rows = [json.loads(line) for line in (Path(config.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert [r["eval/fid"] for r in rows if "eval/fid" in r] == [pytest.approx(saved["fid"]["fid"]["value"])]
    # statistics made with other features are refused when the run starts, before any training
    write_fid_reference(tmp_path / "other.npz", ReferenceStatistics.of(compute_features(real.images, extractor),
                                                                       "inception (another extractor)"))
    other = load_config(None, tiny_run + ["eval_every=6", f"eval.fid_ref={tmp_path / 'other.npz'}",
                                          "eval.features=teacher", f"output_dir={tmp_path / 'other'}"])
    with pytest.raises(MetricError, match="made with 'inception"):
        train(other)
    assert not (tmp_path / "other" / "checkpoints").exists()


def test_an_eval_reference_of_another_size_is_refused_at_start(tiny_run, tmp_path):
    folder = tmp_path / "real"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / f"{i}.png")
    with pytest.raises(ConfigError, match="8x8 images and the model makes 16x16"):
        train(load_config(None, tiny_run + ["eval_every=3", f"eval.reference={folder}"]))
