import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from wgunet.evaluation.fid import psnr
from wgunet.evaluation.image_sets import load_image_set
from wgunet.evaluation.ladder import circular_blur
from wgunet.evaluation.spectral import image_statistics, normalized_radius, spectral_scores
from wgunet.evaluation.stig import StigConfig, StigError, load_refiner, paper_config, refine, train_refiner
from wgunet.evaluation.stig.networks import NestedUNet, PatchNCE, Refiner, Translator
from wgunet.evaluation.stig.spectrum import from_spectrum, low_frequency_mask, to_spectrum
from wgunet.evaluation.stig.training import Batch, generator_losses, lsgan_real
from wgunet.model.macs import count_parameters
from wgunet.training.runs import RunError


def test_the_magnitude_and_phase_round_trip_is_exact():
    images = torch.rand(4, 3, 32, 32)
    log_magnitude, phase = to_spectrum(images)
    assert (from_spectrum(log_magnitude, phase) - images).abs().max() < 1e-5
    # an untrained refiner is the identity (its last layer starts at zero)
    translator = Translator()
    assert (from_spectrum(translator(log_magnitude), phase) - images).abs().max() < 1e-5
    uint8 = (images * 255).round().to(torch.uint8)
    assert torch.equal(refine(translator, uint8), uint8)
    # whatever a translator learns, DC (each channel's mean brightness) passes through
    torch.nn.init.normal_(translator.decoder[-1].weight, std=0.1)
    refined = translator(log_magnitude)
    dc = normalized_radius(32, 32) == 0
    assert torch.equal(refined[..., dc], log_magnitude[..., dc]) and not torch.equal(refined, log_magnitude)


def test_stigs_own_terms_reach_the_translator():
    """The profile discriminator scores the reduced spectrum (so a 90-degree rotation of a square spectrum, which
    keeps every ring, keeps its score) and its gradient reaches the translator; the SSIM terms are computed in the
    image domain; PatchNCE's keys are detached as in CUT (no gradient through the input side)."""
    config = StigConfig(channels=8, discriminator_channels=8)
    refiner = Refiner(config, 3, 16)
    spectrum = to_spectrum(torch.rand(2, 3, 16, 16))[0]
    profile = refiner.profile_discriminator
    assert profile.linear.in_features == 3 * 12  # 3 channels x ceil(16 / sqrt 2) rings
    assert torch.allclose(profile(spectrum), profile(spectrum.rot90(1, (-2, -1)).roll((1, 0), (-2, -1))), atol=1e-5)
    lsgan_real(profile(refiner.translator(spectrum))).backward()
    assert refiner.translator.decoder[-1].weight.grad.abs().sum() > 0

    images = load_image_set("patches:heldout", 16).images
    fake, real = Batch.of(circular_blur(images[:4])), Batch.of(images[4:8])
    terms, _ = generator_losses(refiner, config, fake, real, low_frequency_mask(16, 0.15), torch.Generator())
    assert {"profile", "ssim_real", "ssim_generated"} <= set(terms) and torch.isfinite(terms["loss"])
    assert terms["ssim_real"] < 1e-4  # an untrained refiner is the identity: SSIM of an image with itself
    off = StigConfig(channels=8, discriminator_channels=8, lambda_profile=0, lambda_ssim_real=0, lambda_ssim_generated=0)
    assert not {"profile", "ssim_real", "ssim_generated"} & set(generator_losses(
        Refiner(off, 3, 16), off, fake, real, low_frequency_mask(16, 0.15), torch.Generator())[0])

    for detach in (True, False):
        source = [torch.randn(2, 8, 4, 4, requires_grad=True)]
        nce = PatchNCE([8], detach_keys=detach)
        nce(source, [torch.randn(2, 8, 4, 4, requires_grad=True)], 8, torch.Generator()).backward()
        assert (source[0].grad is None) == detach


def test_the_paper_preset_has_the_published_sizes_trains_and_resumes(tmp_path):
    """STIG's UNet++ translator (24.8 M) and PatchGAN (1.56 M) within 5%; a few steps at the paper's batch 1,
    stopped and resumed, repeat the uninterrupted losses; the saved refiner is a UNet++ and refines images."""
    config = paper_config(steps=3, checkpoint_every=1)
    refiner = Refiner(config, 3, 32)
    assert count_parameters(refiner.translator) == pytest.approx(24.8e6, rel=0.05)
    assert count_parameters(refiner.discriminator) == pytest.approx(1.56e6, rel=0.05)
    images = load_image_set("patches:heldout", 32).images[:8]
    folder = train_refiner(images[:4], images[4:], tmp_path / "a", config)
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # the same run, stopped after step 2 (the lr decays from 20%,
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step-000003")  # so a shorter run would not be the same run)
    shutil.rmtree(tmp_path / "b" / "refiner")
    train_refiner(images[:4], images[4:], tmp_path / "b", config, resume=True)
    losses = [[json.loads(row)["loss"] for row in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
              for run in ("a", "b")]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5) and len(losses[0]) == 3
    translator = load_refiner(folder)
    assert isinstance(translator, NestedUNet)
    refined = refine(translator, images[:2])
    assert refined.shape == (2, 3, 32, 32) and refined.dtype == torch.uint8


@pytest.mark.slow
def test_a_trained_refiner_restores_low_passed_real_images(tmp_path):
    images = load_image_set("patches:heldout", 32).images
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    originals, real = images[order[:512]], images[order[512:]]
    blurred = circular_blur(originals)
    # 400 steps, not the default 1000, to keep the suite within 10 minutes (this test was 5.5 of its 11)
    folder = train_refiner(blurred, real, tmp_path, StigConfig(steps=400, checkpoint_every=200))
    refined = refine(load_refiner(folder), blurred)
    # Adversarial training is seed-sensitive; this test pins seed 0. At 400 steps (`python bench/stig_restoration.py
    # --steps 400`, seeds 0-4) the high-band gap falls by 21-83% (21% at seed 0), the mean-magnitude LFD by 87-90%,
    # STIG's LFD from 13.59 to 10.22-10.98 and PSNR rises from 29.4 to 32.4-33.3 dB; the bounds below leave margin
    # for the thread count, which changes the run.
    # measured against the real images that were low-passed: what the refiner should give back
    target = image_statistics(originals)
    before = spectral_scores(image_statistics(blurred), target, bootstrap=10)
    after = spectral_scores(image_statistics(refined), target, bootstrap=10)
    assert after.lfd_mean_magnitude.value <= 0.3 * before.lfd_mean_magnitude.value
    assert after.lfd_stig.value <= before.lfd_stig.value - 2.0
    gap_before = abs(1 - before.high_frequency_ratio.value)
    gap_after = abs(1 - after.high_frequency_ratio.value)
    assert gap_after <= 0.9 * gap_before
    assert psnr(refined, originals) >= psnr(blurred, originals)


def test_training_checkpoints_resume_and_errors(tmp_path):
    images = load_image_set("patches:heldout", 16).images[:40]
    config = StigConfig(steps=4, checkpoint_every=2, batch_size=4, channels=8, discriminator_channels=8)
    train_refiner(images[:20], images[20:], tmp_path / "a", config)
    # stop after step 2, then resume: the same losses as the run that went through
    rows = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    partial = tmp_path / "b"
    train_refiner(images[:20], images[20:], partial, StigConfig(**{**config.__dict__, "steps": 2}))
    with pytest.raises(RunError, match="already holds a STIG run: pass --resume"):
        train_refiner(images[:20], images[20:], partial, config)
    train_refiner(images[:20], images[20:], partial, config, resume=True)
    resumed = (partial / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["loss"] for r in resumed] == pytest.approx([json.loads(r)["loss"] for r in rows], rel=1e-5)
    assert sorted(p.name for p in (partial / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
    with pytest.raises(RunError, match=r"other settings \(channels: 8 -> 16\).*only steps, checkpoint_every, lr"):
        train_refiner(images[:20], images[20:], partial, StigConfig(**{**config.__dict__, "channels": 16}), resume=True)
    with pytest.raises(StigError, match="not a STIG refiner"):
        load_refiner(tmp_path)
    saved = json.loads((partial / "refiner" / "config.json").read_text())
    (partial / "refiner" / "config.json").write_text(json.dumps({k: v for k, v in saved.items() if k != "spectrum"}))
    with pytest.raises(StigError, match="another spectrum representation"):
        load_refiner(partial)  # a refiner from before the log(|F| + floor) input would refine wrongly
    with pytest.raises(StigError, match="differ in shape"):
        train_refiner(images[:4], load_image_set("patches:heldout", 32).images[:4], tmp_path / "c", config)


@pytest.mark.slow
def test_eval_stig_train_and_apply_end_to_end(tmp_path):
    images = load_image_set("patches:heldout", 16).images[:48]
    np.savez(tmp_path / "fake.npz", images=circular_blur(images[:24]).permute(0, 2, 3, 1).numpy())
    np.savez(tmp_path / "real.npz", images=images[24:].permute(0, 2, 3, 1).numpy())
    run = [sys.executable, "eval.py", "stig"]
    result = subprocess.run(run + ["train", "--generated", str(tmp_path / "fake.npz"), "--reference",
                                   str(tmp_path / "real.npz"), "--steps", "3", "--batch-size", "4", "--out",
                                   str(tmp_path / "stig")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    apply = run + ["apply", "--model", str(tmp_path / "stig"), "--input", str(tmp_path / "fake.npz"), "--reference",
                   str(tmp_path / "real.npz"), "--features", "teacher", "--out", str(tmp_path / "refined")]
    result = subprocess.run(apply, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "before" in result.stdout and "after" in result.stdout
    report = json.loads((tmp_path / "refined" / "stig_metrics.json").read_text())
    assert {"lfd_stig", "lfd_mean_magnitude", "high_frequency_ratio"} <= set(report["sets"]["after"]["scores"])
    assert report["sets"]["before"]["num"] == 24 and report["sets"]["after"]["fid_kid"]["fid"]["value"] >= 0
    assert np.load(tmp_path / "refined" / "samples.npz")["images"].shape == (24, 16, 16, 3)
    result = subprocess.run(apply, capture_output=True, text=True)
    assert result.returncode == 2 and "already holds 24 images: pass --overwrite" in result.stderr
