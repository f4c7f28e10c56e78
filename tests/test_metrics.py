from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from wgunet.features import MetricError, feature_extractor, teacher_features

from wgunet.metrics import FidKid


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
    from wgunet.images import load_image_set
    from wgunet.ladder import degradation_ladders, rgb_noise
    from wgunet.sampling import load_pipeline, sample_images

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
    from wgunet.metrics import read_fid_reference
    from wgunet.metrics import ReferenceStatistics
    from wgunet.outputs import write_fid_reference

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
from wgunet.features import compute_features
from wgunet.processes import processes
from test_metrics import MeanColour, images

state, extractor = processes(), MeanColour()
split = compute_features(images(9, 0, 256, 0), extractor, batch_size=2, state=state)
whole = compute_features(images(9, 0, 256, 0), MeanColour(), batch_size=2)
row = {"process": state.process_index, "seen": extractor.images_seen, "same": torch.equal(split, whole)}
(Path(sys.argv[1]) / f"{state.process_index}.json").write_text(json.dumps(row))
from wgunet.cli import leave_process_group
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
