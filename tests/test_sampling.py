import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, DPMSolverMultistepScheduler
from launch import launch
from PIL import Image

from wgunet import WGUNet
from wgunet.common.files import FileFormatError
from wgunet.evaluation.image_sets import FolderError
from wgunet.sampling.loading import CheckpointError
from wgunet.sampling.samplers import SamplingError, run_sampling


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
    with pytest.raises(FolderError, match="already holds 4 images: pass --resume"):
        run_sampling(str(student), 6, partial, scheduler="ddpm", steps=4)
    with pytest.raises(FolderError, match="sampled with other settings \\(steps\\)"):
        run_sampling(str(student), 6, partial, scheduler="ddpm", steps=5, resume=True)
    record = run_sampling(str(student), 6, partial, scheduler="ddpm", steps=4, batch_size=1, resume=True)
    assert record["sampled_now"] == 2 and (partial / "000001.png").stat().st_mtime_ns == before
    assert np.array_equal(np.load(partial / "samples.npz")["images"], np.load(tmp_path / "full" / "samples.npz")["images"])
    stamps = {p.name: p.stat().st_mtime_ns for p in partial.iterdir() if not p.name.startswith(".lock")}
    assert run_sampling(str(student), 6, partial, scheduler="ddpm", steps=4, resume=True)["sampled_now"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in partial.iterdir() if not p.name.startswith(".lock")} == stamps  # left as it is
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
    result = subprocess.run([sys.executable, "sample.py", "google/ddpm-cifar10-32", "--num-images", "2", "--steps", "2",
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
    with pytest.raises(FileFormatError, match="config.json' is not valid JSON"):
        run_sampling(str(corrupt), 1, tmp_path / "out")
    result = subprocess.run([sys.executable, "sample.py", str(corrupt), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_every_sampler_is_configured_as_the_model_was_trained():
    from wgunet.sampling.samplers import SCHEDULERS, sampler_config

    # a config made in memory lists its defaulted keys in _use_default_values, which from_config would replace
    trained = dict(DDPMScheduler(prediction_type="v_prediction", steps_offset=1).config)
    for name in ("ddpm", "ddim", "dpm++"):
        config = SCHEDULERS[name].from_config(sampler_config(name, trained)).config
        assert (config["prediction_type"], config["timestep_spacing"], config["steps_offset"]) == ("v_prediction",
                                                                                                   "leading", 1)
    # x0 clipping to +-1 becomes DPM-Solver++'s thresholding with s = 1, which is the same clamp
    dpm = DPMSolverMultistepScheduler.from_config(sampler_config("dpm++", trained))
    assert trained["clip_sample"] and dpm.config.thresholding and dpm.config.sample_max_value == 1.0
    x0 = torch.linspace(-3, 3, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4)
    assert torch.equal(dpm._threshold_sample(x0), x0.clamp(-1, 1))
    assert not sampler_config("dpm++", {**trained, "clip_sample": False}).get("thresholding")
    with pytest.raises(SamplingError, match="use --scheduler ddim or ddpm"):
        sampler_config("dpm++", {**trained, "clip_sample_range": 2.0})


def image_statistics(images: np.ndarray) -> dict:
    """Pixel std, spread of the per-image mean colour, share of saturated pixels, mean reduced spectrum ([-1, 1])."""
    from wgunet.evaluation.spectral import reduced_spectrum

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    return {"std": x.std().item(), "spread": x.mean((2, 3)).std().item(), "saturated": (x.abs() > 0.99).float().mean().item(),
            "spectrum": reduced_spectrum(x)[1].mean(0)}


@pytest.mark.slow
def test_every_sampler_gives_the_shipped_teacher_images_like_ddim_50s(tmp_path):
    """Against DDIM-50 on the same 16 seeds. Before sampler_config, DPM-Solver++ gave flat saturated tiles (std 0.86,
    60% of pixels saturated) and DDIM, without use_clipped_model_output, grey ones (std 0.21, mean-colour spread 0.04)."""
    from wgunet.evaluation.image_sets import load_image_set

    real = image_statistics(load_image_set("patches:heldout", 32).images.permute(0, 2, 3, 1).numpy())
    stats = {}
    for scheduler, steps in (("ddim", 50), ("dpm++", 20), ("ddpm", 100)):
        run_sampling("assets/teacher", 16, tmp_path / scheduler, scheduler=scheduler, steps=steps)
        stats[scheduler] = image_statistics(pngs(tmp_path / scheduler))
    reference = stats["ddim"]
    assert reference["std"] == pytest.approx(real["std"], rel=0.25)  # DDIM-50 itself looks like the real patches
    assert reference["spread"] == pytest.approx(real["spread"], rel=0.35)
    # tolerances: deterministic samplers solve the same ODE (DPM-Solver++ 20 vs DDIM 50: 1.0 dB); the ancestral
    # sampler at 100 steps leaves the high band ~5 dB lower (measured 6.8 dB mean), a property of that sampler
    for scheduler, spectrum_db in (("dpm++", 2.0), ("ddpm", 8.0)):
        s = stats[scheduler]
        assert s["std"] == pytest.approx(reference["std"], rel=0.15), scheduler
        assert s["spread"] == pytest.approx(reference["spread"], rel=0.15), scheduler
        assert s["saturated"] < 2 * reference["saturated"] + 0.02, scheduler
        assert (10 * torch.log10(s["spectrum"] / reference["spectrum"])).abs().mean() < spectrum_db, scheduler


def test_overwrite_deletes_only_what_sampling_wrote_and_resume_rebuilds_broken_derived_files(student, tmp_path):
    run_sampling(str(student), 4, tmp_path, scheduler="ddim", steps=2)
    Image.new("RGB", (4, 4)).save(tmp_path / "123_holiday.png")  # a user's file that only looks like ours
    (tmp_path / "notes.txt").write_text("mine")
    expected = np.load(tmp_path / "samples.npz")["images"]
    (tmp_path / "samples.npz").write_bytes(b"")  # as a kill during a non-atomic write left it
    (tmp_path / "grid.png").write_bytes(b"\x89PNG")
    run_sampling(str(student), 4, tmp_path, scheduler="ddim", steps=2, resume=True)
    assert np.array_equal(np.load(tmp_path / "samples.npz")["images"], expected)
    assert Image.open(tmp_path / "grid.png").size == (2 * 18 + 2, 2 * 18 + 2)
    run_sampling(str(student), 2, tmp_path, scheduler="ddim", steps=3, overwrite=True)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["000000.png", "000001.png", "123_holiday.png", "grid.png"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.slow
def test_two_processes_draw_the_images_one_process_draws_and_resume_with_another_count(student, tmp_path):
    # --num-images: torchrun takes --num for its own --numa-binding ("ambiguous option")
    settings = ["--num-images", "7", "--steps", "3", "--batch-size", "2"]
    run_sampling(str(student), 7, tmp_path / "one", steps=3, batch_size=2)
    result = launch("sample.py", 2, str(student), *settings, "--out", str(tmp_path / "two"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("new images in") == 1 and result.stdout.count("grid:") == 1  # the main process reports
    names = sorted(p.name for p in (tmp_path / "one").glob("*.png"))
    assert names == sorted(p.name for p in (tmp_path / "two").glob("*.png"))
    assert all((tmp_path / "one" / n).read_bytes() == (tmp_path / "two" / n).read_bytes() for n in names)  # grid too
    assert np.array_equal(np.load(tmp_path / "one" / "samples.npz")["images"],
                          np.load(tmp_path / "two" / "samples.npz")["images"])
    # a run interrupted under one process count resumes under another
    for name in ("000001.png", "000004.png", "000005.png", "samples.npz"):
        (tmp_path / "one" / name).unlink()
    result = launch("sample.py", 2, str(student), *settings, "--out", str(tmp_path / "one"), "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert all((tmp_path / "one" / n).read_bytes() == (tmp_path / "two" / n).read_bytes() for n in names)
    # an error found by the main process stops every process, printed once
    result = launch("sample.py", 2, str(student), *settings, "--out", str(tmp_path / "one"))
    assert result.returncode != 0 and result.stderr.count("already holds 7 images") == 1, result.stderr[-3000:]


def test_accelerate_launch_that_starts_one_of_several_processes_is_refused_with_the_command_that_works(student, tmp_path):
    """Without GPUs or a multi-CPU configuration, accelerate launch --num_processes 2 runs the script once."""
    launcher = Path(sys.executable).parent / "accelerate"
    if not launcher.exists() or torch.accelerator.is_available():
        pytest.skip("needs Accelerate's launcher on a machine without GPUs")
    result = subprocess.run([str(launcher), "launch", "--num_processes", "2", "sample.py", str(student), "--num-images", "2",
                             "--steps", "2", "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "started 1 process of the 2 asked for" in result.stderr
    assert "torchrun --nproc_per_node 2 sample.py" in result.stderr and not (tmp_path / "out").exists()



def test_a_resumed_run_draws_its_missing_images_in_the_uninterrupted_runs_batches(student, tmp_path, monkeypatch):
    """Batch k is images k*B ... k*B+B-1 whatever was drawn before: on a GPU, whose kernels may round differently
    for other batches, a resumed run then makes the uninterrupted run's images."""
    import wgunet.sampling.samplers as sampling

    drawn, real = [], sampling.sample_images
    monkeypatch.setattr(sampling, "sample_images", lambda p, indices, *a: drawn.append(list(indices)) or real(p, indices, *a))
    run_sampling(str(student), 10, tmp_path, scheduler="ddim", steps=2, batch_size=4)
    assert drawn == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    kept = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("0*.png")}
    for name in ("000005.png", "000009.png", "samples.npz"):
        (tmp_path / name).unlink()
    drawn.clear()
    assert run_sampling(str(student), 10, tmp_path, scheduler="ddim", steps=2, batch_size=4, resume=True)["sampled_now"] == 2
    assert drawn == [[4, 5, 6, 7], [8, 9]]
    untouched = {k: v for k, v in kept.items() if k not in ("000005.png", "000009.png")}
    assert {name: (tmp_path / name).stat().st_mtime_ns for name in untouched} == untouched  # only the missing written


def test_dtype_auto_is_bfloat16_on_a_gpu_that_has_it_and_float32_elsewhere(monkeypatch):
    from wgunet.common.devices import pick_dtype

    assert pick_dtype("auto", torch.device("cpu")) == "float32"
    assert pick_dtype("float16", torch.device("cpu")) == "float16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_dtype("auto", torch.device("cuda")) == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert pick_dtype("auto", torch.device("cuda")) == "float32"


@pytest.mark.parametrize("avx512_bf16, amx, warned", [(False, False, True), (True, False, False), (False, True, False)])
def test_bfloat16_on_a_cpu_that_emulates_it_is_warned_once(monkeypatch, tmp_path, capsys, avx512_bf16, amx, warned):
    from wgunet.common.devices import emulated_bfloat16_warning

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert emulated_bfloat16_warning(torch.device("cuda")) is None  # GPUs compute in bf16
    run_sampling("assets/teacher", 1, tmp_path / "bf16", steps=1, dtype="bfloat16")
    run_sampling("assets/teacher", 1, tmp_path / "fp32", steps=1, dtype="float32")
    lines = [line for line in capsys.readouterr().err.splitlines() if "emulated" in line]
    assert lines == (["warning: this CPU has no AVX-512 BF16 or AMX, so bfloat16 is emulated and many times slower "
                      "than float32 here; use float32 (mixed_precision=no, --dtype float32)"] if warned else [])


def test_bfloat16_sampling_makes_the_shipped_teachers_images_of_float32(tmp_path):
    """The model under bf16 autocast, the sampler in float32: from the same 8 seeds, DDIM 10, each image is float32's
    to within 5 of 255 on average (measured: 1.1 to 3.0), pixel std and mean-colour spread within 3% and the reduced
    spectrum within 0.5 dB on average (measured: 0.6%, 0.6%, 0.16 dB). Few images: a CPU without AVX-512 BF16 or AMX
    emulates bf16, about 18x slower than float32."""
    images = {}
    for dtype in ("float32", "bfloat16"):
        record = run_sampling("assets/teacher", 8, tmp_path / dtype, scheduler="ddim", steps=10, dtype=dtype)
        assert record["dtype"] == dtype
        images[dtype] = pngs(tmp_path / dtype)
    per_image = np.abs(images["float32"].astype(float) - images["bfloat16"]).reshape(8, -1).mean(axis=1)
    assert per_image.max() < 5
    full, half = image_statistics(images["float32"]), image_statistics(images["bfloat16"])
    assert half["std"] == pytest.approx(full["std"], rel=0.03) and half["spread"] == pytest.approx(full["spread"], rel=0.03)
    assert half["saturated"] == pytest.approx(full["saturated"], abs=0.01)
    assert (10 * torch.log10(half["spectrum"] / full["spectrum"])).abs().mean() < 0.5


@pytest.mark.parametrize("name, message", [("cuda", "this machine has no accelerator"),
                                           ("cuda:1", "this machine has no accelerator"),
                                           ("gpu", "not a device name")])
def test_a_device_the_machine_lacks_is_named(name, message):
    from wgunet.common.devices import DeviceError, pick_device

    if torch.accelerator.is_available():
        pytest.skip("this machine has an accelerator")
    with pytest.raises(DeviceError, match=message):
        pick_device(name)


def test_a_folder_records_the_weights_that_drew_it_and_a_resume_with_other_weights_is_refused(student, tmp_path):
    model = shutil.copytree(student, tmp_path / "model")
    run_sampling(str(model), 3, tmp_path / "out", steps=2)
    record = json.loads((tmp_path / "out" / "sampling.json").read_text())
    assert len(record["weights"]) == 16
    assert run_sampling(str(model), 4, tmp_path / "out", steps=2, resume=True)["sampled_now"] == 1  # same weights
    retrained = WGUNet.from_pretrained(model / "unet")
    with torch.no_grad():
        next(retrained.parameters()).add_(1)
    retrained.save_pretrained(model / "unet")
    with pytest.raises(FolderError, match="were drawn by other weights than .* holds now"):
        run_sampling(str(model), 5, tmp_path / "out", steps=2, resume=True)
