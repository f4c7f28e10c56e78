from pathlib import Path

import pytest

from wgunet.training.config import ConfigError, load_config, to_dict


def test_default_config_loads_with_typed_values():
    config = load_config("configs/default.yaml")
    assert config.mode == "distill" and config.loss.lambda_freq == 0.1 and config.loss.alpha == -1.0
    assert config.adam_betas == (0.9, 0.999) and isinstance(config.lr, float)


def test_overrides_are_parsed_as_yaml_and_nested():
    config = load_config("configs/default.yaml", ["max_steps=7", "loss.lambda_freq=0", "student.block_out_channels=[16,32]"])
    assert config.max_steps == 7 and config.loss.lambda_freq == 0.0
    assert config.student["block_out_channels"] == [16, 32]


@pytest.mark.parametrize("override,message", [
    ("max_step=5", "unknown config key 'max_step' \\(did you mean 'max_steps'\\?\\)"),
    ("loss.lamda_freq=1", "unknown config key 'loss.lamda_freq' \\(did you mean 'lambda_freq'\\?\\)"),
    ("student.block_out_channel=[8]", "unknown config key 'student.block_out_channel' \\(did you mean 'block_out_channels'\\?\\)"),
    ("unet.layers_per_blok=1", "did you mean 'layers_per_block'"),
    ("max_steps=abc", "max_steps must be int"),
    ("mode=teach", "mode must be 'distill' or 'teacher'"),
    ("loss.features=[down,middle]", "loss.features may hold"),
    ("max_steps", "not of the form key=value"),
    ("max_steps=0", "max_steps must be a positive number of steps, got 0"),
    ("max_steps=-3", "max_steps must be a positive"),
    ("batch_size=0", "batch_size must be a positive number of images, got 0"),
    ("gradient_accumulation_steps=0", "gradient_accumulation_steps must be at least 1"),
    ("lr=0", "lr must be positive, got 0.0"),
    ("lr=-1e-3", "lr must be positive"),
    ("warmup_steps=-1", "warmup_steps must be >= 0"),
    ("ema_decay=1", "ema_decay must be in \\[0, 1\\), got 1.0"),
    ("ema_decay=-0.1", "ema_decay must be in \\[0, 1\\)"),
    ("checkpoint_every=0", "checkpoint_every must be a positive"),
    ("keep_checkpoints=0", "keep_checkpoints must be >= 1"),
    ("keep_checkpoints=-1", "keep_checkpoints must be >= 1"),
    ("log_every=0", "log_every must be a positive"),
    ("adam_betas=[0.9]", "adam_betas must be two numbers in \\[0, 1\\)"),
    ("adam_betas=[0.9,1.5]", "adam_betas must be two numbers"),
    ("grad_clip=-1", "grad_clip must be >= 0"),
    ("weight_decay=-0.1", "weight_decay must be >= 0"),
    ("teacher_dtype=float64", "teacher_dtype must be one of auto, float32, float16, bfloat16, got 'float64'"),
    ("mixed_precision=fp8", "mixed_precision must be one of no, fp16, bf16, got 'fp8'"),
    ("loss.lambda_spatial=-0.1", "loss.lambda_spatial must be >= 0"),
    ("loss.lambda_freq=-1", "loss.lambda_freq must be >= 0"),
    ("loss.lambda_ddpm=-1", "loss.lambda_ddpm must be >= 0"),
    ("loss.eps=0", "loss.eps must be positive"),
    ("data.sample_size=0", "data.sample_size must be a positive"),
    ("data.num_workers=-2", "data.num_workers must be >= 0"),
    ("data.patches_per_image=0", "data.patches_per_image must be positive"),
    ("student.sample_size=64", "student.sample_size 64 differs from data.sample_size 32"),
    ("batch_size=1.5", "batch_size must be int"),
])
def test_bad_keys_and_values_name_the_problem(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("configs/default.yaml", [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "typo.yaml").write_text("data:\n  sample_sise: 32\n")
    with pytest.raises(ConfigError, match="'data.sample_sise' \\(did you mean 'sample_size'"):
        load_config(tmp_path / "typo.yaml")


def test_round_trip_through_a_dict(tmp_path):
    import yaml

    config = load_config("configs/default.yaml", ["seed=3"])
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(to_dict(config)))
    assert load_config(tmp_path / "c.yaml") == config


@pytest.mark.parametrize("path,teacher_name,size,min_ratio", [
    ("configs/cifar10.yaml", "google/ddpm-cifar10-32", 32, 4),
    ("configs/celebahq256.yaml", "google/ddpm-ema-celebahq-256", 256, 4),
])
def test_published_teacher_configs_build_their_models_without_weights(path, teacher_name, size, min_ratio):
    from wgunet import WGUNet
    from wgunet.model.macs import count_parameters
    from wgunet.training.teacher import TEACHER_ARCHITECTURES

    config = load_config(path)
    assert config.teacher == teacher_name
    student = WGUNet(**config.student)
    assert student.config.sample_size == size == TEACHER_ARCHITECTURES[teacher_name]["sample_size"]
    assert config.data.sample_size == size
    # the student is much smaller than its teacher (parameters stand in for MACs: no forward at 256x256 here)
    from wgunet.training.teacher import teacher_architecture
    assert count_parameters(teacher_architecture(teacher_name)) > min_ratio * count_parameters(student)


def test_the_default_student_has_at_least_4x_fewer_macs_than_the_shipped_teacher():
    from diffusers import UNet2DModel

    from wgunet import WGUNet
    from wgunet.model.macs import count_parameters, macs_per_image

    config = load_config("configs/teacher.yaml")
    teacher = UNet2DModel(**config.unet)
    assert config.mode == "teacher" and count_parameters(teacher) == 6_338_499
    student = WGUNet(**load_config("configs/default.yaml").student)
    assert macs_per_image(teacher) >= 4 * macs_per_image(student)


def test_yes_no_on_off_are_strings_as_in_yaml_1_2(tmp_path):
    """PyYAML's YAML 1.1 reads `no` as False, which made `mixed_precision=no` an error; only true/false are booleans."""
    (tmp_path / "c.yaml").write_text("mixed_precision: no\ndata:\n  hflip: false\n")
    config = load_config(tmp_path / "c.yaml", ["hub_model_id=on"])
    assert config.mixed_precision == "no" and config.hub_model_id == "on" and config.data.hflip is False
    assert load_config(None, ["mixed_precision=no"]).mixed_precision == "no"


def test_every_config_key_the_readme_and_docs_tables_name_exists_with_the_default_they_state():
    """The README's settings table and docs/training.md's loss table name real keys; the defaults they state hold."""
    import re

    from wgunet.training.config import TrainConfig, to_dict

    def flat(values: dict, prefix: str = "") -> dict:  # dotted keys; student, unet and scheduler hold model arguments
        out = {}
        for key, value in values.items():
            nested = isinstance(value, dict) and key not in ("student", "unet", "scheduler")
            out.update(flat(value, f"{prefix}{key}.") if nested else {f"{prefix}{key}": value})
        return out

    keys = flat(to_dict(TrainConfig()))
    settings = Path("README.md").read_text().split("| key | meaning |")[1].split("\n\n")[0]
    named = {k for row in settings.splitlines()[2:] for k in re.findall(r"`([^`]+)`", row.split("|")[1])}
    assert len(named) > 10 and all(k in keys for k in named), sorted(k for k in named if k not in keys)
    loss = Path("docs/training.md").read_text().split("`loss.freq_weight` | `w_i`")[1].split("\n\n")[0]
    assert "`inverse_magnitude` (default)" in loss and keys["loss.freq_weight"] == "inverse_magnitude"
    assert all(k in keys for k in re.findall(r"`(loss\.\w+)`", loss))
    for key, value in re.findall(r"`(loss\.\w+)` \((-?\d+)\)", loss):
        assert keys[key] == float(value), key
