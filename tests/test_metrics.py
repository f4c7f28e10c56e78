import pytest
import torch
from torch import nn

from wgunet.metrics import MetricError, RandomConvFeatures, feature_extractor, fid_kid


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
    same = fid_kid(images(64, 0, 256, 1), reference, extractor)
    assert extractor.images_seen == 128  # each image once: FID, its bootstrap and KID share the features
    shifted = fid_kid(images(64, 60, 256, 2), reference, MeanColour())
    assert same["fid"] < 0.01 < shifted["fid"] and shifted["kid_mean"] > same["kid_mean"]
    assert shifted["fid_ci95"][0] <= shifted["fid"] <= shifted["fid_ci95"][1]
    assert 0 <= same["fid_ci95"][0] <= same["fid_ci95"][1] < 0.01 < shifted["fid_ci95"][0]  # they separate
    assert same["features"] == "MeanColour"


def test_the_offline_extractor_is_labelled_not_comparable():
    module, label = feature_extractor("randconv")
    assert isinstance(module, RandomConvFeatures) and "NOT comparable" in label
    scores = fid_kid(images(8, 0, 256, 0), images(8, 100, 256, 1), "randconv")
    assert scores["fid"] > 0 and "NOT comparable" in scores["features"]
    again = fid_kid(images(8, 0, 256, 0), images(8, 100, 256, 1), "randconv")
    assert again["fid"] == pytest.approx(scores["fid"])  # seeded weights: the same score every time


def test_missing_extractors_say_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(MetricError, match="torch-fidelity|Inception weights not found: put weights-inception"):
        feature_extractor("inception")
    with pytest.raises(MetricError, match="unknown feature extractor 'clip'"):
        feature_extractor("clip")
    assert "randconv" in feature_extractor("auto")[1] or "dinov2" in feature_extractor("auto")[1]
    with pytest.raises(MetricError, match="at least 2 images"):
        fid_kid(images(1, 0, 256, 0), images(4, 0, 256, 0), MeanColour())
