import subprocess
import sys

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel

from wgunet import WGUNet
from wgunet.sampling.loading import CheckpointError
from wgunet.training.config import load_config
from wgunet.training.teacher import FeatureTaps, load_teacher, pair_by_resolution, teacher_architecture


def taps_of(unet: UNet2DModel, size: int) -> dict[str, tuple[int, ...]]:
    taps = FeatureTaps(unet)
    with torch.no_grad():
        unet(torch.zeros(1, 3, size, size), 10)
    features = {k: tuple(v.shape[1:]) for k, v in taps.pop().items()}
    taps.remove()
    with torch.no_grad():
        unet(torch.zeros(1, 3, size, size), 10)
    assert taps.pop() == {}, "removed hooks must not record"
    return features


def test_taps_on_the_ddpm_cifar10_architecture():
    teacher = teacher_architecture("google/ddpm-cifar10-32")
    assert sum(p.numel() for p in teacher.parameters()) == 35_746_307  # google/ddpm-cifar10-32's parameter count
    features = taps_of(teacher, 32)
    assert features == {
        "down.0": (128, 16, 16), "down.1": (256, 8, 8), "down.2": (256, 4, 4), "down.3": (256, 4, 4), "mid": (256, 4, 4),
        "up.0": (256, 8, 8), "up.1": (256, 16, 16), "up.2": (256, 32, 32), "up.3": (128, 32, 32)}
    student = WGUNet(**load_config("configs/default.yaml").student)
    student_features = student(torch.zeros(1, 3, 32, 32), 10, return_features=True).features
    teacher_features = {k: torch.zeros(1, *v) for k, v in features.items()}
    pairs = pair_by_resolution(student_features, teacher_features)
    # one pair per (stage, resolution) both models have; the deepest feature of each model at it
    assert pairs == [("down.0", "down.0"), ("down.2", "down.1"), ("up.0", "up.1"), ("up.2", "up.3")]


def test_taps_on_the_celebahq_block_layout_with_small_widths():
    teacher = teacher_architecture("google/ddpm-ema-celebahq-256", sample_size=64,
                                   block_out_channels=(8, 8, 16, 16, 32, 32), norm_num_groups=8)
    assert [type(b).__name__ for b in teacher.down_blocks][4] == "AttnDownBlock2D"
    features = taps_of(teacher, 64)
    assert [features[f"down.{i}"][1] for i in range(6)] == [32, 16, 8, 4, 2, 2]
    assert [features[f"up.{i}"][1] for i in range(6)] == [4, 8, 16, 32, 64, 64]
    assert features["mid"] == (32, 2, 2)


def test_load_teacher_from_pipeline_and_bare_folders(tiny_teacher, tmp_path):
    unet, scheduler, autoencoder = load_teacher(str(tiny_teacher), torch.float16)
    assert unet.dtype == torch.float16 and not unet.training and autoencoder is None  # a pixel model
    assert not any(p.requires_grad for p in unet.parameters())
    assert scheduler.config.prediction_type == "v_prediction" and scheduler.config.num_train_timesteps == 100
    bare = tmp_path / "bare"
    unet.save_pretrained(bare)
    loaded, default_schedule, _ = load_teacher(str(bare))
    assert loaded.dtype == torch.float32
    assert torch.equal(loaded.conv_in.weight.half(), unet.conv_in.weight)
    assert default_schedule.config.num_train_timesteps == DDPMScheduler().config.num_train_timesteps


def test_load_teacher_errors_name_the_problem(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="neither a diffusers model folder"):
        load_teacher(str(tmp_path))
    (tmp_path / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="could not load the UNet2DModel"):
        load_teacher(str(tmp_path))
    WGUNet(sample_size=16, block_out_channels=(8, 16), norm_num_groups=8, attention_head_dim=8).save_pretrained(
        tmp_path / "student")
    with pytest.raises(CheckpointError, match="the teacher must be a diffusers UNet2DModel.*holds a WGUNet"):
        load_teacher(str(tmp_path / "student"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="neither a folder under .* nor a Hub repository that could be fetched") as error:
        load_teacher("assets/teacher_moved")  # a local path from elsewhere, or a Hub id: no download of a path advised
    assert "download" not in str(error.value)


def test_the_shipped_teacher_is_small_loads_and_matches_its_config(tmp_path):
    from pathlib import Path

    from wgunet.training.teacher import export_teacher

    files = [p for p in Path("assets/teacher").rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 20 * 2**20
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in files)  # safetensors only
    unet, scheduler, _ = load_teacher("assets/teacher")
    assert unet.dtype == torch.float32  # stored in fp16, upcast on load
    config = load_config("configs/teacher.yaml")
    assert list(unet.config.block_out_channels) == config.unet["block_out_channels"]
    assert scheduler.config.num_train_timesteps == 1000 and scheduler.config.prediction_type == "epsilon"
    export_teacher(["assets/teacher"], str(tmp_path / "again"))
    again = load_teacher(str(tmp_path / "again")).model
    assert all(torch.equal(a, b) for a, b in zip(unet.state_dict().values(), again.state_dict().values()))


def test_export_of_several_teachers_stores_the_mean_of_their_weights_and_refuses_another_architecture(tiny_teacher,
                                                                                                     tmp_path):
    from diffusers import DDPMPipeline

    from wgunet.training.teacher import export_teacher

    first = load_teacher(str(tiny_teacher))
    shifted = {key: value + 1.0 for key, value in first.model.state_dict().items()}
    second = UNet2DModel.from_config(first.model.config)
    second.load_state_dict(shifted)
    DDPMPipeline(unet=second, scheduler=first.scheduler).save_pretrained(tmp_path / "second")
    export_teacher([str(tiny_teacher), str(tmp_path / "second")], str(tmp_path / "mean"), dtype=torch.float32)
    mean = load_teacher(str(tmp_path / "mean")).model.state_dict()
    assert all(torch.allclose(mean[key], value + 0.5) for key, value in first.model.state_dict().items())

    other_schedule = DDPMScheduler(num_train_timesteps=100, prediction_type="epsilon")
    DDPMPipeline(unet=second, scheduler=other_schedule).save_pretrained(tmp_path / "epsilon")
    wider = UNet2DModel.from_config({**first.model.config, "block_out_channels": (16, 48)})
    DDPMPipeline(unet=wider, scheduler=first.scheduler).save_pretrained(tmp_path / "wider")
    for folder, difference in (("epsilon", "scheduler.prediction_type v_prediction .*: epsilon"),
                               ("wider", r"unet.block_out_channels \[16, 32\] .*: \[16, 48\]")):
        with pytest.raises(CheckpointError, match=f"cannot be averaged with .*{difference}"):
            export_teacher([str(tiny_teacher), str(tmp_path / folder)], str(tmp_path / f"mean-{folder}"))
        assert not (tmp_path / f"mean-{folder}").exists()
    command = [sys.executable, "-m", "wgunet.training.teacher", "export", str(tiny_teacher), str(tmp_path / "wider"),
               str(tmp_path / "mean-cli")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "cannot be averaged" in result.stderr


TINY_TEACHER_RUN = ["mode=teacher", "data.sample_size=16", "scheduler={num_train_timesteps: 100, prediction_type: v_prediction}",
                    "unet={block_out_channels: [16, 32], layers_per_block: 1, norm_num_groups: 8, attention_head_dim: 8, "
                    "down_block_types: [DownBlock2D, AttnDownBlock2D], up_block_types: [AttnUpBlock2D, UpBlock2D]}"]


def test_a_teacher_run_starts_from_init_from_weights_and_refuses_another_architecture(tiny_teacher):
    from wgunet.common.errors import UserError
    from wgunet.training.loop import build_models

    start = load_teacher(str(tiny_teacher)).model.state_dict()
    fine_tuned = build_models(load_config(None, TINY_TEACHER_RUN + [f"init_from={tiny_teacher}"])).trainable
    assert fine_tuned.state_dict().keys() == start.keys()
    assert all(torch.equal(value, start[key]) for key, value in fine_tuned.state_dict().items())
    assert all(p.requires_grad for p in fine_tuned.parameters())
    scratch = build_models(load_config(None, TINY_TEACHER_RUN)).trainable
    assert not torch.equal(scratch.conv_in.weight, fine_tuned.conv_in.weight)

    with pytest.raises(CheckpointError, match=r"unet.layers_per_block 2 \(init_from: 1\)"):
        build_models(load_config(None, TINY_TEACHER_RUN + [f"init_from={tiny_teacher}", "unet.layers_per_block=2"]))
    with pytest.raises(CheckpointError, match=r"scheduler.prediction_type epsilon \(init_from: v_prediction\)"):
        build_models(load_config(None, TINY_TEACHER_RUN + [f"init_from={tiny_teacher}", "scheduler.prediction_type=epsilon"]))
    with pytest.raises(UserError, match="init_from applies to mode=teacher"):
        load_config(None, [f"init_from={tiny_teacher}"])
