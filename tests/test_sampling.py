import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler
from PIL import Image

from wgunet import WGUNet
from wgunet.checkpoints import CheckpointError
from wgunet.sampling import SamplingError, run_sampling


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    torch.manual_seed(0)
    model = WGUNet(sample_size=16, block_out_channels=(16, 32), attention_resolutions=(8,), attention_head_dim=16,
                   norm_num_groups=8)
    folder = tmp_path_factory.mktemp("student") / "model"
    DDPMPipeline(unet=model, scheduler=DDPMScheduler(num_train_timesteps=50)).save_pretrained(folder)
    return folder


def pngs(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("[0-9]*.png"))])


def test_outputs_pngs_grid_and_npz(student, tmp_path):
    record = run_sampling(str(student), 5, tmp_path, scheduler="ddim", steps=3)
    images = pngs(tmp_path)
    assert images.shape == (5, 16, 16, 3) and images.dtype == np.uint8
    assert np.array_equal(np.load(tmp_path / "samples.npz")["images"], images)
    assert Image.open(tmp_path / "grid.png").size == (3 * 18 + 2, 2 * 18 + 2)
    assert record["images_per_second"] > 0 and json.loads((tmp_path / "sampling.json").read_text())["steps"] == 3
    assert not list(tmp_path.glob("*.tmp")) and not (tmp_path / ".samples.npy").exists()


@pytest.mark.parametrize("scheduler", ["ddpm", "ddim", "dpm++"])
def test_the_same_seed_gives_the_same_images_at_any_batch_size(student, tmp_path, scheduler):
    run_sampling(str(student), 5, tmp_path / "a", scheduler=scheduler, steps=4, batch_size=5, seed=3)
    run_sampling(str(student), 5, tmp_path / "b", scheduler=scheduler, steps=4, batch_size=2, seed=3)
    run_sampling(str(student), 5, tmp_path / "c", scheduler=scheduler, steps=4, batch_size=5, seed=4)
    a, b, c = pngs(tmp_path / "a"), pngs(tmp_path / "b"), pngs(tmp_path / "c")
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # float rounding at the uint8 boundary at most
    assert (a == b).mean() > 0.999
    assert (a != c).mean() > 0.5


def test_resume_finishes_an_interrupted_run_with_the_same_images(student, tmp_path):
    run_sampling(str(student), 6, tmp_path / "full", scheduler="ddpm", steps=4, batch_size=4)
    partial = tmp_path / "partial"
    shutil.copytree(tmp_path / "full", partial)
    for name in ("000004.png", "000005.png", "samples.npz", "grid.png"):
        (partial / name).unlink()
    before = (partial / "000001.png").stat().st_mtime_ns
    with pytest.raises(SamplingError, match="already holds 4 images: pass --resume"):
        run_sampling(str(student), 6, partial, scheduler="ddpm", steps=4)
    with pytest.raises(SamplingError, match="sampled with other settings \\(steps\\)"):
        run_sampling(str(student), 6, partial, scheduler="ddpm", steps=5, resume=True)
    record = run_sampling(str(student), 6, partial, scheduler="ddpm", steps=4, batch_size=1, resume=True)
    assert record["sampled_now"] == 2 and (partial / "000001.png").stat().st_mtime_ns == before
    assert np.array_equal(np.load(partial / "samples.npz")["images"], np.load(tmp_path / "full" / "samples.npz")["images"])
    stamps = {p.name: p.stat().st_mtime_ns for p in partial.iterdir()}
    assert run_sampling(str(student), 6, partial, scheduler="ddpm", steps=4, resume=True)["sampled_now"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in partial.iterdir()} == stamps  # a finished run is left as it is
    run_sampling(str(student), 3, partial, scheduler="ddpm", steps=4, resume=True)
    assert np.load(partial / "samples.npz")["images"].shape[0] == 3  # fewer asked: the array follows
    run_sampling(str(student), 2, partial, scheduler="ddim", steps=2, overwrite=True)
    assert len(pngs(partial)) == 2


def test_every_kind_of_checkpoint_loads(student, tiny_teacher, tmp_path):
    # a training run folder (its model/), a diffusers pipeline folder, a bare model folder
    run = tmp_path / "run"
    shutil.copytree(student, run / "model")
    bare = tmp_path / "bare"
    DDPMPipeline.from_pretrained(tiny_teacher).unet.save_pretrained(bare)
    for checkpoint in (run, tiny_teacher, bare):
        out = tmp_path / f"out-{checkpoint.name}"
        run_sampling(str(checkpoint), 2, out, steps=2)
        assert pngs(out).shape == (2, 16, 16, 3)


def test_a_hub_id_goes_through_the_hub_code_path(tiny_teacher, tmp_path):
    # A Hugging Face cache laid out as `huggingface-cli download` leaves it; offline, from_pretrained reads it.
    revision = "0" * 40
    repo = tmp_path / "hub" / "models--google--ddpm-cifar10-32"
    shutil.copytree(tiny_teacher, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "sample.py", "google/ddpm-cifar10-32", "--num", "2", "--steps", "2",
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "images/s" in result.stdout and pngs(tmp_path / "out").shape == (2, 16, 16, 3)


def test_bad_checkpoints_get_one_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        run_sampling(str(tmp_path / "missing"), 1, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither a diffusers model folder"):
        run_sampling(str(tmp_path / "empty"), 1, tmp_path / "out")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text('{"_class_name": "WGUNet", "sample_size": 16}')
    (corrupt / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="could not load the WGUNet"):
        run_sampling(str(corrupt), 1, tmp_path / "out")
    (corrupt / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        run_sampling(str(corrupt), 1, tmp_path / "out")
    result = subprocess.run([sys.executable, "sample.py", str(corrupt), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
