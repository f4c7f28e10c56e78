"""No pickle, nothing lost: planted pickles never run, damaged state falls back, two writers are refused."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from wgunet.common.files import FolderBusy, folder_lock
from wgunet.training.config import load_config
from wgunet.training.loop import train
from wgunet.training.runs import list_checkpoints


class Payload:
    """Unpickling this creates a marker file: proof that someone unpickled it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def plant(folder: Path, marker: Path) -> list[Path]:
    """A malicious pickle under every file name the folder holds, and under the names Accelerate and torch use."""
    names = {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}
    names |= {Path(n) for n in ("custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl", "custom_checkpoint_2.pkl",
                                "random_states_0.pkl", "optimizer.bin", "scheduler.bin", "sampler.bin",
                                "pytorch_model.bin", "model/unet/diffusion_pytorch_model.bin", "state.pt")}
    for name in names:
        if name.suffix in (".pkl", ".bin", ".pt"):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(pickle.dumps(Payload(marker)))
    return sorted(names)


def test_the_payload_works_when_unpickled(tmp_path):
    pickle.loads(pickle.dumps(Payload(tmp_path / "marker")))
    assert (tmp_path / "marker").read_text() == "pwned"  # so its absence below means nothing unpickled it


@pytest.mark.slow
def test_planted_pickles_never_run_on_resume_sample_or_eval(tiny_run, tmp_path):
    config = load_config(None, tiny_run)
    train(config)
    run, marker = Path(config.output_dir), tmp_path / "marker"
    for checkpoint in list_checkpoints(run):
        plant(checkpoint, marker)
    plant(run / "model", marker)
    resumed = subprocess.run([sys.executable, "train.py", str(run / "config.yaml"), "max_steps=8", "--resume"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    sampled = subprocess.run([sys.executable, "sample.py", str(run), "--num", "2", "--steps", "2", "--out",
                              str(tmp_path / "samples")], capture_output=True, text=True)
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    probe = subprocess.run([sys.executable, "eval.py", "probe", str(run / "model"), "--timesteps", "10",
                            "--probe-images", "8", "--out", str(tmp_path / "probe")], capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert not marker.exists()


def test_resume_skips_a_damaged_newest_checkpoint_and_a_cut_log_line(tiny_run, capsys):
    config = load_config(None, tiny_run)
    train(config)
    run = Path(config.output_dir)
    newest = list_checkpoints(run)[-1]
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated, as a full disk or a bad copy leaves it
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text() + '{"step": 7, "ddpm"')
    (run / "model").rename(run / "old_model")  # so --resume trains again from the checkpoint before
    train(load_config(None, tiny_run), resume=True)
    assert "skipping checkpoint step-000006" in capsys.readouterr().err
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]


def test_checkpoints_sort_by_step_number_not_text(tmp_path):
    for step in (999_999, 1_000_000, 20):
        (tmp_path / "checkpoints" / f"step-{step:06d}").mkdir(parents=True)
    (tmp_path / "checkpoints" / ".step-2000000.tmp").mkdir()  # unfinished: never listed
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000020", "step-999999", "step-1000000"]


def test_a_second_writer_of_one_folder_is_refused_and_a_dead_ones_lock_is_free(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom wgunet.common.files import folder_lock\n"
                               f"with folder_lock({str(tmp_path)!r}, 'training'):\n    print('held', flush=True)\n"
                               "    time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(FolderBusy, match=f"in use by training pid {holder.pid} on .*another output folder"):
        with folder_lock(tmp_path, "sampling"):
            pass
    holder.kill()  # as kill -9: no clean-up runs
    holder.wait()
    with folder_lock(tmp_path, "sampling"):
        assert "sampling pid" in (tmp_path / ".lock.holder").read_text()


def test_training_images_are_decoded_before_the_first_step(tmp_path):
    import numpy as np
    from PIL import Image

    from wgunet.training.data import DataError, ImageFolder, read_rgb

    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])  # verify() passes this one
    with pytest.raises(DataError, match="truncated.jpg' is not a readable image"):
        ImageFolder(tmp_path, 32)
    truncated.unlink()
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(deep)  # 16-bit grey, 61% of full scale
    assert Image.open(deep).mode.startswith("I")
    assert np.asarray(read_rgb(deep))[0, 0].tolist() == [156, 156, 156]  # 40000 * 255 / 65535, not clipped to 255
    assert len(ImageFolder(tmp_path, 32, upscale=True)) == 2


def test_an_image_over_the_pixel_limit_says_how_to_allow_it(tmp_path, monkeypatch):
    from PIL import Image

    from wgunet.training.data import DataError, read_rgb

    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(DataError, match="over PIL's pixel limit.*WGUNET_MAX_IMAGE_PIXELS"):
        read_rgb(tmp_path / "big.png")


def test_resume_with_other_settings_names_each_change(tiny_run):
    from wgunet.training.runs import RunError

    train(load_config(None, tiny_run))
    wider = [o for o in tiny_run if not o.startswith("student=")] + [
        "student={block_out_channels: [16, 48], layers_per_block: 1, attention_resolutions: [8], "
        "attention_head_dim: 16, norm_num_groups: 8, gate_hidden: 8}", "max_steps=9"]
    with pytest.raises(RunError, match=r"other settings \(student.block_out_channels: \[16, 32\] -> \[16, 48\]\): "
                       "resume with the same ones"):
        train(load_config(None, wider), resume=True)
    train(load_config(None, tiny_run + ["max_steps=8", "lr=0.0005"]), resume=True)  # these may change


def test_a_resume_redraws_damaged_images_and_removes_what_a_killed_run_left(tmp_path, capsys):
    """A 0-byte PNG and one of another size (ours, on record) are redrawn; the scratch array of a run killed while
    it wrote samples.npz is gone once the command runs again."""
    from diffusers import DDPMPipeline, DDPMScheduler

    from wgunet import WGUNet
    from wgunet.sampling.samplers import run_sampling

    model = tmp_path / "model"
    DDPMPipeline(unet=WGUNet(sample_size=16, block_out_channels=(16, 32), attention_resolutions=(8,),
                             attention_head_dim=16, norm_num_groups=8),
                 scheduler=DDPMScheduler(num_train_timesteps=20)).save_pretrained(model)
    out = tmp_path / "samples"
    run_sampling(str(model), 4, out, steps=2)
    reference = {p.name: p.read_bytes() for p in out.glob("0*.png")}
    (out / "000001.png").write_bytes(b"")
    Image.new("RGB", (8, 8)).save(out / "000002.png")
    (out / ".samples.npy.99999.tmp").write_bytes(b"\0" * 4096)
    record = run_sampling(str(model), 4, out, steps=2, resume=True)
    assert record["sampled_now"] == 2 and "redrawing 2 damaged images" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.glob("0*.png")} == reference
    assert not list(out.glob(".*.tmp"))


def test_a_full_disk_while_writing_weights_is_one_line(capsys):
    """safetensors reports its I/O errors in its own type; the entry points name them like any OS error."""
    from safetensors import SafetensorError

    from wgunet.common.cli import run_cli

    def full_disk():
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    assert run_cli(full_disk) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "Files already finished are kept" in err


def test_errors_name_the_users_path_not_the_hidden_scratch_name(tmp_path, capsys):
    from wgunet.common.cli import run_cli

    def denied():
        raise PermissionError(13, "Permission denied", str(tmp_path / "run" / ".model.4242.tmp" / "unet" / "w.safetensors"))

    assert run_cli(denied) == 2
    assert f"Permission denied: {tmp_path / 'run' / 'model' / 'unet' / 'w.safetensors'}." in capsys.readouterr().err


def test_a_tiny_train_sample_and_evaluation_run_where_fcntl_does_not_exist(tiny_run, tmp_path):
    """As on Windows: nothing of the package imports fcntl (folder locks go through filelock)."""
    script = f"""
import sys
sys.modules["fcntl"] = None  # `import fcntl` fails from here on
from wgunet.training.config import load_config
from wgunet.sampling.samplers import run_sampling
from wgunet.evaluation.commands import spectrum
model = __import__("wgunet.training.loop", fromlist=["train"]).train(load_config(None, {tiny_run!r}))
run_sampling(str(model), 4, {str(tmp_path / 'samples')!r}, steps=2)
result = spectrum({{"student": {str(tmp_path / 'samples')!r}}}, "patches:heldout", __import__("pathlib").Path({str(tmp_path / 'eval')!r}),
                  features="teacher", teacher="assets/teacher", num_images=None, bootstrap=5, fid=False)
print("scored", sorted(result.sets))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "scored ['student']" in result.stdout


@pytest.mark.parametrize("engine", ["FSDP", "DEEPSPEED"])
def test_an_accelerate_config_with_sharded_training_is_refused_before_any_work(tiny_run, monkeypatch, engine):
    """The checkpoints hold whole models and optimizer states: sharding engines would need their own."""
    from wgunet.common.processes import LaunchError
    from wgunet.training.config import load_config
    from wgunet.training.loop import train

    monkeypatch.setenv(f"ACCELERATE_USE_{engine}", "true")
    with pytest.raises(LaunchError, match=f"{engine.lower()}.*plain DDP"):
        train(load_config(None, tiny_run))
    assert not (Path(tiny_run[-1].split("=", 1)[1]) / "checkpoints").exists()
