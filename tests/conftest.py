import os
import tempfile

import pytest
import torch

# the user's cache stays untouched (image folders' verification records): one fresh cache per test run
os.environ["WGUNET_CACHE"] = tempfile.mkdtemp(prefix="wgunet-test-cache-")

if os.environ.get("PYTEST_XDIST_WORKER"):  # make test runs 2 workers on 2 cores: one thread each, subprocesses too
    # (two OpenMP pools of 2 threads on 2 cores spin against each other: the suite took longer than on one worker)
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory):
    """A small random UNet2DModel saved as a diffusers pipeline folder (unet/ + scheduler/), v-prediction."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                       attention_head_dim=8)
    scheduler = DDPMScheduler(num_train_timesteps=100, prediction_type="v_prediction")
    folder = tmp_path_factory.mktemp("teacher") / "pipeline"
    DDPMPipeline(unet=unet, scheduler=scheduler).save_pretrained(folder)
    return folder


TINY_STUDENT = dict(block_out_channels=[16, 32], layers_per_block=1, attention_resolutions=[8],
                    attention_head_dim=16, norm_num_groups=8, gate_hidden=8)


@pytest.fixture
def tiny_run(tiny_teacher, tmp_path):
    """Overrides for a distillation run of a few seconds on 16x16 patches."""
    return [f"teacher={tiny_teacher}", f"student={TINY_STUDENT}", "data.sample_size=16", "data.patches_per_image=4",
            "batch_size=8", "max_steps=6", "checkpoint_every=3", "keep_checkpoints=5", "log_every=1",
            "warmup_steps=2", "eval_every=0", f"output_dir={tmp_path / 'run'}"]
