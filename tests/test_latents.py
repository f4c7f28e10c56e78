"""Latent teachers (wgunet.model.autoencoder): tiny VQModel and AutoencoderKL pipelines made here, distilled, resumed,
exported, sampled and evaluated."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_STUDENT
from diffusers import AutoencoderKL, DDPMScheduler, LDMPipeline, UNet2DModel, VQModel
from test_portable import fake_hub, without_wgunet

from wgunet.model.autoencoder import REFERENCE, AutoencoderError
from wgunet.sampling.loading import CheckpointError, load_model
from wgunet.sampling.samplers import run_sampling
from wgunet.training.card import load_snippet
from wgunet.training.config import load_config
from wgunet.training.loop import TrainingError, train

CODER = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
             up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
             norm_num_groups=4, sample_size=16)


def make_ldm(folder: Path, kind: str) -> Path:
    """A random latent pipeline: 16px RGB, 8px latents (factor 2); ``vq``: LDMPipeline layout, ``kl``: vae/."""
    torch.manual_seed(0)
    if kind == "vq":
        coder = VQModel(**CODER, latent_channels=3, num_vq_embeddings=64, vq_embed_dim=3)
    else:
        coder = AutoencoderKL(**CODER, latent_channels=4, scaling_factor=0.5)
    channels = coder.config.latent_channels
    unet = UNet2DModel(sample_size=8, in_channels=channels, out_channels=channels, block_out_channels=(16, 32),
                       layers_per_block=1, norm_num_groups=8, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), attention_head_dim=8)
    scheduler = DDPMScheduler(num_train_timesteps=100, clip_sample=False)  # latents are not clipped to [-1, 1]
    pretrain(unet, coder, scheduler)
    if kind == "vq":
        LDMPipeline(vqvae=coder, unet=unet, scheduler=scheduler).save_pretrained(folder)
        return folder
    unet.save_pretrained(folder / "unet")
    scheduler.save_pretrained(folder / "scheduler")
    coder.save_pretrained(folder / "vae")
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "SomeLatentPipeline", "unet": ["diffusers", "UNet2DModel"], "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "DDPMScheduler"]}))
    return folder


def pretrain(unet: UNet2DModel, coder, scheduler: DDPMScheduler, steps: int = 150) -> None:
    """A few DDPM steps on the encoded training patches, so that the teacher predicts roughly what the student's
    DDPM term asks for (a random teacher pulls the distillation terms against it)."""
    from wgunet.evaluation.image_sets import photograph_patches
    from wgunet.model.autoencoder import Autoencoder

    encoder = Autoencoder(coder, coder.config.scaling_factor, "", "")
    images = photograph_patches(16, "train", 4, 0).images.float() / 127.5 - 1
    latents = encoder.encode(images)
    optimizer = torch.optim.Adam(unet.parameters(), 2e-3)
    for _ in range(steps):
        x0 = latents[torch.randint(len(latents), (16,))]
        noise, t = torch.randn_like(x0), torch.randint(0, 100, (16,))
        loss = torch.nn.functional.mse_loss(unet(scheduler.add_noise(x0, noise, t), t).sample, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    unet.eval()


@pytest.fixture(scope="session")
def ldms(tmp_path_factory):
    root = tmp_path_factory.mktemp("ldm")
    return {kind: make_ldm(root / kind, kind) for kind in ("vq", "kl")}


def latent_run(teacher: Path, out: Path, *extra: str) -> list[str]:
    return [f"teacher={teacher}", f"student={TINY_STUDENT}", "data.sample_size=16", "data.patches_per_image=4",
            "batch_size=8", "max_steps=6", "checkpoint_every=3", "keep_checkpoints=5", "log_every=1",
            "warmup_steps=2", "eval_every=0", f"output_dir={out}", *extra]


def losses(run: Path) -> list[dict]:
    rows = [row for line in (run / "metrics.jsonl").read_text().splitlines() if "loss" in (row := json.loads(line))]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # wall time differs between runs


@pytest.mark.parametrize("kind", ["vq", "kl"])
def test_a_latent_teacher_loads_with_its_autoencoder(ldms, kind):
    checkpoint = load_model(ldms[kind])
    coder = checkpoint.autoencoder
    assert coder is not None and coder.factor == 2 and checkpoint.image_size == 16
    assert coder.channels == checkpoint.model.config.in_channels
    # the scaling its pipeline uses: the written scaling_factor (diffusers saves VQModel's default 0.18215)
    assert coder.scale == (0.18215 if kind == "vq" else 0.5)
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    latents = coder.encode(images)
    assert latents.shape == (2, coder.channels, 8, 8) and latents.dtype == torch.float32
    assert coder.decode(latents).shape == (2, 3, 16, 16)


def test_a_vq_config_without_scaling_factor_uses_the_latents_unscaled(ldms, tmp_path):
    """As CompVis/ldm-celebahq-256's vqvae config (written before diffusers had scaling_factor)."""
    folder = shutil.copytree(ldms["vq"], tmp_path / "hub")
    config = json.loads((folder / "vqvae" / "config.json").read_text())
    del config["scaling_factor"]
    (folder / "vqvae" / "config.json").write_text(json.dumps(config))
    assert load_model(folder).autoencoder.scale == 1.0


def test_bad_latent_layouts_get_one_clear_error(ldms, tmp_path):
    odd = shutil.copytree(ldms["kl"], tmp_path / "odd")
    index = json.loads((odd / "model_index.json").read_text())
    (odd / "model_index.json").write_text(json.dumps({**index, "vae": ["diffusers", "ConsistencyDecoderVAE"]}))
    with pytest.raises(AutoencoderError, match="holding a 'ConsistencyDecoderVAE'; supported autoencoders: VQModel, "):
        load_model(odd)
    mixed = shutil.copytree(ldms["kl"], tmp_path / "mixed")
    shutil.rmtree(mixed / "vae")
    shutil.copytree(ldms["vq"] / "vqvae", mixed / "vae")  # 3-channel latents for a 4-channel UNet
    (mixed / "model_index.json").write_text(json.dumps({**index, "vae": ["diffusers", "VQModel"]}))
    with pytest.raises(CheckpointError, match="takes 4 channels and its autoencoder makes 3-channel latents"):
        load_model(mixed)
    with pytest.raises(CheckpointError, match="takes 4-channel input, not RGB, and its folder has no autoencoder"):
        load_model(shutil.copytree(ldms["kl"] / "unet", tmp_path / "unet_alone"))


def test_latent_sizes_are_checked_against_the_pixel_size(ldms, tmp_path):
    with pytest.raises(TrainingError, match=r"works at 16px \(8px latents, x2 by its autoencoder\).*sample_size=16"):
        train(load_config(None, latent_run(ldms["vq"], tmp_path / "a", "data.sample_size=8")))
    student = {**TINY_STUDENT, "sample_size": 16}
    with pytest.raises(TrainingError, match="latent model: leave student.sample_size out"):
        train(load_config(None, latent_run(ldms["vq"], tmp_path / "b", f"student={student}")))


@pytest.mark.parametrize("kind", ["vq", "kl"])
def test_latent_distillation_learns_resumes_exports_and_samples(ldms, kind, tmp_path):
    run = tmp_path / "run"
    config = load_config(None, latent_run(ldms[kind], run, "max_steps=100", "checkpoint_every=50", "lr=2e-3"))
    exported = train(config)
    rows = losses(run)
    for term in ("ddpm", "spatial", "freq"):  # each term falls over the run: first 5 steps vs last 5
        first, last = (np.mean([r[term] for r in part]) for part in (rows[:5], rows[-5:]))
        assert last < 0.8 * first, (term, first, last)
    # the checkpoints name the autoencoder; the export holds one copy of it
    component = "vqvae" if kind == "vq" else "vae"
    checkpoint_model = run / "checkpoints" / "step-000050" / "model"
    assert (checkpoint_model / REFERENCE).is_file() and not (checkpoint_model / component).exists()
    assert (exported / component / "config.json").is_file() and not (exported / REFERENCE).exists()
    teacher_weights = next((ldms[kind] / component).glob("*.safetensors")).read_bytes()
    assert next((exported / component).glob("*.safetensors")).read_bytes() == teacher_weights  # copied, not re-saved
    student = load_model(exported)
    assert student.autoencoder is not None and student.image_size == 16
    assert student.model.config.in_channels == student.autoencoder.channels
    record = run_sampling(str(exported), 4, tmp_path / "samples", steps=2)  # DDIM, sample.py's default
    assert record["sample_size"] == 16
    drawn = np.load(tmp_path / "samples" / "samples.npz")["images"]
    assert drawn.shape == (4, 16, 16, 3)
    card = (exported / "README.md").read_text()
    assert "latent space of the teacher's autoencoder" in card
    # the card's snippet loads the export where wgunet cannot be imported and draws sample.py's images: diffusers'
    # own LDMPipeline for VQ, the pipeline module the export carries for KL
    snippet = load_snippet(str(exported), remote_code=True, latent=True)
    assert snippet in card.replace("THIS_FOLDER_OR_HUB_ID", str(exported))
    out = without_wgunet(snippet.replace("=50", "=2"), f"""
        import numpy as np
        np.save({str(tmp_path / 'snippet.npy')!r}, (images * 255).round().astype(np.uint8))
        print(type(pipeline).__name__, type(pipeline.unet).__name__)
        """, cwd=tmp_path)
    assert ("LDMPipeline WGUNet" if kind == "vq" else "WGUNetLatentPipeline WGUNet") in out
    assert np.array_equal(np.load(tmp_path / "snippet.npy"), drawn)
    if kind == "kl":  # by Hub id, through the branch of DiffusionPipeline.download that checks custom components
        out = without_wgunet(fake_hub(exported, "someone/kl-student", tmp_path / "hub"),
                             load_snippet("someone/kl-student", remote_code=True, latent=True).replace("=50", "=2"),
                             "print(type(pipeline).__name__, images.shape)", cwd=tmp_path)
        assert "WGUNetLatentPipeline (4, 16, 16, 3)" in out


def test_a_resumed_latent_run_repeats_the_uninterrupted_one(ldms, tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train(load_config(None, latent_run(ldms["kl"], whole)))
    shutil.copytree(whole, cut)
    shutil.rmtree(cut / "checkpoints" / "step-000006")
    shutil.rmtree(cut / "model")
    train(load_config(None, latent_run(ldms["kl"], cut)), resume=True)
    assert losses(cut) == losses(whole)


def test_the_image_frequency_reference_trains_too(ldms, tmp_path):
    """loss.freq_reference=image weights L_freq by the clean RGB image's spectrum instead of the latent's."""
    latent, image = tmp_path / "latent", tmp_path / "image"
    train(load_config(None, latent_run(ldms["vq"], latent, "max_steps=3")))
    train(load_config(None, latent_run(ldms["vq"], image, "max_steps=3", "loss.freq_reference=image")))
    a, b = losses(latent), losses(image)
    assert a[0]["ddpm"] == b[0]["ddpm"] and a[0]["freq"] != b[0]["freq"]  # same batch, another weight


@pytest.mark.slow
def test_a_report_on_latent_models_decodes_and_says_so(ldms, tmp_path):
    run = tmp_path / "run"
    exported = train(load_config(None, latent_run(ldms["vq"], run)))
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, "eval.py", "report", str(exported), "--teacher", str(ldms["vq"]),
                             "--num-images", "8", "--steps", "2", "--timesteps", "10", "--probe-images", "8",
                             "--bootstrap", "5", "--features", "teacher", "--finc-features", "teacher", "--out", str(out)],
                            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["spectrum"]["sets"]) == {"student", "teacher"}
    assert metrics["model_sizes"]["autoencoder"]["decode_GMACs"] > 0
    page = (out / "report.html").read_text()
    assert "x_t is made from the encoded reference in the latent space" in page and "autoencoder (latent models" in page


def test_the_ldm_celebahq_config_builds_its_models_without_weights():
    """configs/ldm-celebahq256.yaml against the published architecture (no download): a ~10x MAC reduction."""
    from wgunet import WGUNet
    from wgunet.model.autoencoder import Autoencoder
    from wgunet.model.macs import count_parameters, macs_per_image
    from wgunet.training.loop import build_student
    from wgunet.training.teacher import autoencoder_architecture, teacher_architecture

    config = load_config("configs/ldm-celebahq256.yaml")
    teacher = teacher_architecture(config.teacher)
    coder = Autoencoder(autoencoder_architecture(config.teacher), 1.0, config.teacher, "vqvae")
    assert count_parameters(teacher) == 274_056_163  # the LDM paper's 274 M for CelebA-HQ LDM-4
    assert teacher.config.sample_size * coder.factor == config.data.sample_size == 256
    assert coder.channels == teacher.config.in_channels == 3
    student = build_student(config.student_class, config.student, teacher)  # as training builds it
    assert isinstance(student, WGUNet) and student.config.sample_size == 64
    assert 9 <= macs_per_image(teacher) / macs_per_image(student) <= 11
