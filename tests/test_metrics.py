from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from wgunet.evaluation.features import (
    MetricError,
    TeacherFeatures,
    feature_extractor,
    teacher_features,
    weights_fingerprint,
)
from wgunet.evaluation.fid import FidKid, ReferenceStatistics


class MeanColour(nn.Module):
    """A tiny local feature extractor: per-channel means and standard deviations."""

    num_features = 6
    images_seen = 0

    def forward(self, images):
        self.images_seen += len(images)
        x = images.float() / 255
        return torch.cat([x.mean(dim=(-2, -1)), x.std(dim=(-2, -1))], dim=1)


def images(n, low, high, seed):
    return torch.randint(low, high, (n, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_fid_and_kid_run_the_torchmetrics_path_with_a_local_module():
    reference, extractor = images(64, 0, 256, 0), MeanColour()
    same = FidKid(reference, extractor)(images(64, 0, 256, 1))
    assert extractor.images_seen == 128  # each image once: FID, its bootstrap and KID share the features
    scorer = FidKid(reference, MeanColour())
    shifted = scorer(images(64, 60, 256, 2))
    assert same.fid.value < 0.01 < shifted.fid.value and shifted.kid_mean > same.kid_mean
    assert shifted.fid.ci95[0] <= shifted.fid.value <= shifted.fid.ci95[1]
    assert 0 <= same.fid.ci95[0] <= same.fid.ci95[1] < 0.01 < shifted.fid.ci95[0]  # they separate
    assert same.features == "MeanColour"
    assert scorer(images(64, 60, 256, 2)).kid_mean == shifted.kid_mean  # KID's subsets come from the seed


@pytest.mark.slow
def test_offline_fid_grows_along_every_degradation_and_ranks_noise_last():
    """Teacher features (the offline default): held-out patches split in two, one half the reference, the other
    degraded step by step; FID and KID must grow with every step, and RGB noise must score far worse than any
    model's samples."""
    from wgunet.evaluation.image_sets import load_image_set
    from wgunet.evaluation.ladder import degradation_ladders, rgb_noise
    from wgunet.sampling.samplers import load_pipeline, sample_images

    real = load_image_set("patches:heldout", 32).images
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(0))
    reference, clean = real[order[:384]], real[order[384:576]]
    module = feature_extractor("auto", teacher_features("assets/teacher"))
    assert "teacher mid-block" in module.label and "NOT comparable to published FID" in module.label
    scorer = FidKid(reference, module, bootstrap=0)
    for name, ladder in degradation_ladders(clean).items():
        scores = [scorer(images) for _, images in ladder]
        fids, kids = [s.fid.value for s in scores], [s.kid_mean for s in scores]
        assert fids == sorted(fids) and fids[-1] > 3 * fids[0], (name, fids)
        assert kids == sorted(kids), (name, kids)
    teacher = load_pipeline("assets/teacher", "ddim")
    samples = torch.from_numpy(sample_images(teacher, list(range(96)), 0, 10)).permute(0, 3, 1, 2)
    assert scorer(rgb_noise(clean.shape)).fid.value > 2.5 * scorer(samples).fid.value


SHIPPED_TEACHER_FEATURES = "278ac547cff4"


def test_teacher_features_name_their_network_and_the_shipped_one_is_pinned():
    """FID in teacher features means "in this network's features": the label carries the weights' fingerprint, the
    same for an fp16 or fp32 load, another for any changed weight. The docs' teacher-feature FIDs were all measured
    in the shipped teacher's network; replacing assets/teacher changes the default offline FID's features, so this
    pin (and the fingerprint stated in docs/evaluation.md) must change with it, with a CHANGELOG.md entry."""
    from wgunet.training.teacher import load_teacher

    module = feature_extractor("teacher", teacher_features("assets/teacher"))
    assert module.fingerprint == SHIPPED_TEACHER_FEATURES and f"weights {SHIPPED_TEACHER_FEATURES}" in module.label
    retrained = load_teacher("assets/teacher", torch.float16)
    assert weights_fingerprint(retrained.model) == SHIPPED_TEACHER_FEATURES
    with torch.no_grad():
        retrained.model.conv_out.bias[0] += 1e-3
    assert weights_fingerprint(retrained.model) != SHIPPED_TEACHER_FEATURES
    # FID statistics saved in the shipped teacher's features are refused by a run in another teacher's
    shipped = ReferenceStatistics(np.zeros(4), np.eye(4), module.label, 10)
    with pytest.raises(MetricError, match="made with 'teacher mid-block .* weights 278ac547cff4"):
        FidKid(shipped, TeacherFeatures(*retrained, "assets/teacher"))
    assert SHIPPED_TEACHER_FEATURES in Path("docs/evaluation.md").read_text()


def test_missing_extractors_say_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(MetricError, match="torch-fidelity|Inception weights not found: put weights-inception"):
        feature_extractor("inception")
    with pytest.raises(MetricError, match="unknown feature extractor 'randconv'"):
        feature_extractor("randconv")
    auto = feature_extractor("auto", teacher_features("assets/teacher")).label
    assert "teacher mid-block" in auto or "dinov2" in auto
    with pytest.raises(MetricError, match="teacher features need a teacher"):
        feature_extractor("teacher")
    with pytest.raises(MetricError, match="at least 2 images"):
        FidKid(images(4, 0, 256, 0), MeanColour())(images(1, 0, 256, 0))


def test_fid_against_saved_statistics_is_fid_against_the_images(tmp_path):
    """Statistics of the reference set give the same FID as the reference images (KID needs the images, so it is
    left out), a set scored against its own statistics gives ~0, and statistics from other features are refused."""
    from wgunet.evaluation.fid import read_fid_reference
    from wgunet.evaluation.outputs import write_fid_reference

    reference, generated = images(64, 0, 256, 0), images(64, 60, 256, 2)
    extractor = MeanColour()
    statistics = ReferenceStatistics.of(extractor(reference), "MeanColour")
    write_fid_reference(tmp_path / "stats.npz", statistics)
    saved = read_fid_reference(tmp_path / "stats.npz")
    assert saved.features == "MeanColour" and saved.num == 64 and torch.equal(saved.mu, statistics.mu)
    from_images, from_statistics = FidKid(reference, extractor)(generated), FidKid(saved, extractor)(generated)
    assert from_statistics.fid.value == pytest.approx(from_images.fid.value, rel=1e-4)
    assert from_statistics.kid_mean is None and from_statistics.fid.ci95[0] <= from_statistics.fid.ci95[1]
    assert FidKid(saved, extractor)(reference).fid.value == pytest.approx(0, abs=1e-6)
    np.savez(tmp_path / "published.npz", mu=statistics.mu.numpy(), sigma=statistics.sigma.numpy())  # EDM's keys
    assert FidKid(read_fid_reference(tmp_path / "published.npz"), extractor)(generated).fid.value == pytest.approx(
        from_images.fid.value, rel=1e-4)
    other = ReferenceStatistics(statistics.mu, statistics.sigma, "inception (...)", 64)
    with pytest.raises(MetricError, match="made with 'inception"):
        FidKid(other, extractor)
    np.savez(tmp_path / "wide.npz", mu=np.zeros(8), sigma=np.eye(8))
    with pytest.raises(MetricError, match="have 8 features and 'MeanColour' gives 6"):
        FidKid(read_fid_reference(tmp_path / "wide.npz"), extractor)(generated)
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(MetricError, match="is not FID reference statistics"):
        read_fid_reference(tmp_path / "bad.npz")


SPLIT_FEATURES = """
import json
import sys
from pathlib import Path
import torch
from wgunet.evaluation.features import compute_features
from wgunet.common.processes import processes
from test_metrics import MeanColour, images

state, extractor = processes(), MeanColour()
split = compute_features(images(9, 0, 256, 0), extractor, batch_size=2, state=state)
whole = compute_features(images(9, 0, 256, 0), MeanColour(), batch_size=2)
row = {"process": state.process_index, "seen": extractor.images_seen, "same": torch.equal(split, whole)}
(Path(sys.argv[1]) / f"{state.process_index}.json").write_text(json.dumps(row))
from wgunet.common.cli import leave_process_group
leave_process_group()  # as the entry points do
"""


@pytest.mark.slow
def test_two_processes_split_the_feature_extraction_and_both_get_every_row(tmp_path):
    import json

    from launch import launch

    script = tmp_path / "split.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n" + SPLIT_FEATURES)
    result = launch(str(script), 2, str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads((tmp_path / f"{process}.json").read_text()) for process in (0, 1)]
    # batches of 2 at 0, 2, 4, 6, 8: process 0 embeds 0, 4, 8 (5 images), process 1 embeds 2, 6 (4 images)
    assert rows == [{"process": 0, "seen": 5, "same": True}, {"process": 1, "seen": 4, "same": True}]


def test_every_interval_holds_its_estimate_where_the_resampled_scores_all_lie_above_it():
    """Two sets of 20 uniform-noise images, one distribution: a resampled set repeats images, so its FID, LSD and
    LFDs lie above the estimate; the interval is moved onto the estimate, and the bias says by how much."""
    from wgunet.evaluation.spectral import image_statistics, spectral_scores

    a, b = images(20, 0, 256, 10), images(20, 0, 256, 11)
    scores = dict(spectral_scores(image_statistics(a), image_statistics(b), bootstrap=200).items())
    scores["fid"] = FidKid(a, MeanColour(), bootstrap=100)(b).fid
    for name, estimate in scores.items():
        assert estimate.ci95[0] <= estimate.value <= estimate.ci95[1], (name, estimate)
    assert scores["fid"].bias > 0 and scores["lfd_stig"].bias > 0 and scores["log_spectral_distance_db"].bias > 0


@pytest.mark.parametrize("std", [0.1, 0.12])
def test_the_high_frequency_ratios_interval_covers_the_known_ratio_and_the_bias_of_a_distance_is_estimated(std):
    """White-noise images (std 0.1 vs ``std``): the true power ratio at every radius is (std / 0.1)^2, the true
    log-spectral distance 10 log10 of it. Over 40 pairs of 32-image sets the high-frequency ratio's interval holds
    the true ratio about 95% of the time (measured 95%, 95%); for the distance, estimate less bootstrap bias lies
    closer to the truth than the estimate (one distribution: 0.65 dB estimated vs 0.26 dB bias: the bootstrap
    finds about 40% of the bias of a distance whose truth is 0)."""
    from wgunet.evaluation.spectral import image_statistics, spectral_scores

    generator = torch.Generator().manual_seed(0)
    noise = lambda n, s: 0.5 + s * torch.randn(n, 3, 16, 16, generator=generator)  # noqa: E731  [0, 1] floats
    ratio, hits, estimates, corrected = (std / 0.1) ** 2, 0, [], []
    for trial in range(40):
        scores = spectral_scores(image_statistics(noise(32, std)), image_statistics(noise(32, 0.1)), 100, seed=trial)
        low, high = scores.high_frequency_ratio.ci95
        hits += low <= ratio <= high
        distance = scores.log_spectral_distance_db
        estimates.append(distance.value)
        corrected.append(distance.value - distance.bias)
    assert hits >= 34  # 85% of 40
    truth = 10 * np.log10(ratio)
    assert abs(np.mean(corrected) - truth) < abs(np.mean(estimates) - truth)
