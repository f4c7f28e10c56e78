import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from PIL import Image

from wgunet import WGUNet
from wgunet.evaluation.image_sets import load_image_set
from wgunet.evaluation.probe import spectral_probe
from wgunet.training.data import DataError


def test_image_sets_from_npz_folder_and_builtin(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "s.npz", images=array)
    image_set = load_image_set(tmp_path / "s.npz")
    images = image_set.images
    assert image_set.names[0] == "000000.png" and image_set.source == str(tmp_path / "s.npz")
    assert images.shape == (5, 3, 8, 8) and torch.equal(images.permute(0, 2, 3, 1), torch.from_numpy(array))
    for i, image in enumerate(array):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    folder = load_image_set(tmp_path)
    assert torch.equal(folder.images, images) and folder.names[0] == "0.png"
    held = load_image_set("patches:heldout", size=16).first(7)
    assert held.images.shape == (7, 3, 16, 16) and held.images.dtype == torch.uint8 and held.size == (16, 16)
    with pytest.raises(DataError, match="splits patches:train and patches:heldout"):
        load_image_set("patches:test", size=16)
    with pytest.raises(DataError, match="with its split: patches:train"):
        load_image_set("patches", size=16)


def test_image_set_errors(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Image.new("RGB", (16, 8)).save(tmp_path / "b.png")
    with pytest.raises(DataError, match="different sizes.*one size"):
        load_image_set(tmp_path)
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(DataError, match="is not an .npz archive"):
        load_image_set(tmp_path / "bad.npz")
    np.savez(tmp_path / "float.npz", images=np.full((2, 8, 8, 3), 2.0, np.float32))
    with pytest.raises(DataError, match=r"images are uint8, or floats in \[0, 1\] or \[-1, 1\]"):
        load_image_set(tmp_path / "float.npz")
    np.savez(tmp_path / "rgba.npz", np.zeros((2, 8, 8, 4), np.uint8))
    with pytest.raises(DataError, match="no RGB .3. or grey .1. channel axis"):
        load_image_set(tmp_path / "rgba.npz")
    np.save(tmp_path / "array.npy", np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="is a file, not an image set: pass a folder of images, an .npz"):
        load_image_set(tmp_path / "array.npy")


def test_npz_archives_in_the_layouts_other_tools_write_load_as_the_same_images(tmp_path):
    """ADM's evaluation suite writes arr_0 (N, H, W, C) uint8; some tools NCHW, or floats in [0, 1] or [-1, 1]."""
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "ours.npz", images=images)
    with open(tmp_path / "adm.NPZ", "wb") as handle:  # (numpy would add .npz to the name)
        np.savez(handle, images)  # saved positionally: arr_0
    np.savez(tmp_path / "nchw.npz", arr_0=images.transpose(0, 3, 1, 2))
    np.savez(tmp_path / "unit.npz", arr_0=images.astype(np.float32) / 255)
    np.savez(tmp_path / "signed.npz", arr_0=images.astype(np.float64) / 127.5 - 1)
    expected = load_image_set(tmp_path / "ours.npz").images
    for name, found in (("adm.NPZ", "arr_0, NHWC uint8"), ("nchw.npz", "arr_0, NCHW uint8"),
                        ("unit.npz", "arr_0, NHWC float32 in [0, 1]"), ("signed.npz", "arr_0, NHWC float64 in [-1, 1]")):
        loaded = load_image_set(tmp_path / name)
        assert torch.equal(loaded.images, expected) and loaded.source.endswith(f"({found})"), name


def test_probe_wiener_filter_recovers_fewer_radii_as_noise_grows():
    reference = load_image_set("patches:heldout", size=16).first(64).images
    model = WGUNet(sample_size=16, block_out_channels=(8, 16), norm_num_groups=8, attention_head_dim=8).eval()
    result = spectral_probe({"random student": (model, DDPMScheduler())}, reference, timesteps=(20, 200, 600, 950))
    wiener = result.models["optimal linear (Wiener)"]
    cutoffs = [c or 0.0 for c in wiener.cutoff]  # None: not even the lowest ring is half recovered
    assert cutoffs == sorted(cutoffs, reverse=True) and cutoffs[0] > cutoffs[-1]
    assert np.mean(wiener.recovered[0][:3]) > 0.8  # almost no noise: low radii come back
    student = result.models["random student"]
    assert len(student.recovered) == 4 and len(student.power[0]) == len(result.radius)
    assert np.mean(student.recovered[0]) < np.mean(wiener.recovered[0])  # an untrained model recovers less


def test_probe_cutoff_is_none_when_not_even_the_lowest_ring_is_half_recovered():
    from wgunet.evaluation.probe import ProbeCurves, ProbeResult, cutoff_radius, format_cutoff, probe_table

    radius = torch.tensor([0.1, 0.2, 0.3, 0.4])
    assert cutoff_radius(radius, torch.tensor([0.9, 0.7, 0.4, 0.6])) == pytest.approx(0.3)
    assert cutoff_radius(radius, torch.tensor([0.9, 0.7, 0.6, 0.6])) == 1.0
    assert cutoff_radius(radius, torch.tensor([0.4, 0.7, 0.6, 0.6])) is None
    table = probe_table(ProbeResult([0.1], [10, 900], {"m": ProbeCurves([], [], [0.3, None])}))
    assert table.splitlines()[-1] == "| 900 | none |" and format_cutoff(0.25) == "0.25"


@pytest.mark.slow
def test_sample_then_eval_spectrum_and_probe_end_to_end(tiny_teacher, tmp_path):
    for name in ("a", "b"):
        subprocess.run([sys.executable, "sample.py", str(tiny_teacher), "--num-images", "12", "--steps", "2", "--seed",
                        str(len(name)), "--out", str(tmp_path / name)], check=True, capture_output=True)
    result = subprocess.run([sys.executable, "eval.py", "spectrum", "--generated", f"teacher={tmp_path / 'a'}",
                             "--generated", str(tmp_path / "b" / "samples.npz"), "--reference", "patches:heldout",
                             "--num-images", "40", "--bootstrap", "20", "--features", "teacher",
                             "--out", str(tmp_path / "eval")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["sets"]) == {"teacher", "b"} and metrics["num_reference"] == 40
    assert len(metrics["sets"]["teacher"]["spectrum"]) == len(metrics["radius"]) == len(metrics["real_spectrum"])
    assert metrics["sets"]["b"]["num"] == 12  # a set smaller than --num-images is used whole
    score = metrics["sets"]["teacher"]["scores"]["high_frequency_ratio"]
    assert score["ci95"][0] <= score["value"] <= score["ci95"][1]
    assert "NOT comparable" in metrics["sets"]["b"]["fid_kid"]["features"]
    assert (tmp_path / "eval" / "spectra.png").stat().st_size > 10_000
    result = subprocess.run([sys.executable, "eval.py", "probe", f"teacher={tiny_teacher}", "--probe-images",
                             "16", "--timesteps", "10,90", "--out", str(tmp_path / "probe")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| 10 |" in (tmp_path / "probe" / "probe.md").read_text() and (tmp_path / "probe" / "probe.png").is_file()
    result = subprocess.run([sys.executable, "eval.py", "spectrum", "--generated", str(tmp_path / "missing"),
                             "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_the_built_in_splits_compared_with_each_other_are_cut_at_32_px(tmp_path):
    """No set read from files gives a size: the training patches against the held-out ones, at the shipped teacher's
    32 px. The held-out right-most fifth of each photograph is smoother: the training split carries more power."""
    result = subprocess.run([sys.executable, "eval.py", "spectrum", "--generated", "train=patches:train", "--features",
                             "none", "--bootstrap", "0", "--out", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    scores = metrics["sets"]["train"]["scores"]
    assert scores["high_frequency_ratio"]["value"] > 1 and scores["log_spectral_distance_db"]["value"] > 1


def test_eval_fid_ref_then_spectrum_with_it(tiny_teacher, tmp_path, monkeypatch, capsys):
    """`eval.py fid-ref` writes the statistics; `eval.py spectrum --fid-ref` gives the FID of the images path."""
    import runpy

    generator = np.random.default_rng(0)
    for name, low in (("real", 0), ("fake", 60)):
        np.savez(tmp_path / f"{name}.npz", images=generator.integers(low, 256, (24, 16, 16, 3), dtype=np.uint8))

    def run(*argv):
        monkeypatch.setattr(sys, "argv", ["eval.py", *map(str, argv)])
        with pytest.raises(SystemExit) as done:
            runpy.run_path("eval.py", run_name="__main__")
        assert done.value.code == 0, capsys.readouterr().err[-1500:]

    common = ["--features", "teacher", "--teacher", tiny_teacher]
    run("fid-ref", tmp_path / "real.npz", *common, "--out", tmp_path / "stats.npz")
    assert "24 images" in capsys.readouterr().out
    scored = {}
    for flags in ([], ["--fid-ref", tmp_path / "stats.npz"]):
        run("spectrum", "--generated", f"fake={tmp_path / 'fake.npz'}", "--reference", tmp_path / "real.npz", *common,
            "--bootstrap", 5, *flags, "--out", tmp_path / "out")
        scored[bool(flags)] = json.loads((tmp_path / "out" / "metrics.json").read_text())["sets"]["fake"]["fid_kid"]
    assert scored[True]["fid"]["value"] == pytest.approx(scored[False]["fid"]["value"], rel=1e-4)
    assert scored[True]["kid_mean"] is None and scored[False]["kid_mean"] is not None


def test_a_saved_hugging_face_dataset_and_an_imagefolder_layout_are_image_sets_and_training_data(tmp_path):
    """save_to_disk folders (a Dataset, a DatasetDict's test split) and class subfolders, for evaluation and
    training alike."""
    datasets = pytest.importorskip("datasets")
    from wgunet.training.config import DataConfig
    from wgunet.training.data import build_dataset

    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)) for _ in range(6)]
    dataset = datasets.Dataset.from_dict({"image": pictures, "label": list(range(6))}, features=datasets.Features(
        {"image": datasets.Image(), "label": datasets.Value("int64")}))
    dataset.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": dataset.select(range(4)), "test": dataset.select(range(4, 6))}).save_to_disk(
        str(tmp_path / "splits"))
    for i, picture in enumerate(pictures):
        (tmp_path / "classes" / f"class_{i % 2}").mkdir(parents=True, exist_ok=True)
        picture.save(tmp_path / "classes" / f"class_{i % 2}" / f"{i}.png")
    expected = torch.from_numpy(np.stack([np.asarray(p) for p in pictures])).permute(0, 3, 1, 2)
    assert torch.equal(load_image_set(tmp_path / "saved").images, expected)
    held_out = load_image_set(tmp_path / "splits")
    assert torch.equal(held_out.images, expected[4:]) and held_out.source.endswith("(split test)")
    assert sorted(load_image_set(tmp_path / "classes").names)[0] == "class_0/0.png" and len(load_image_set(tmp_path / "classes")) == 6
    assert len(build_dataset(DataConfig(source=str(tmp_path / "saved"), sample_size=16))) == 6
    assert len(build_dataset(DataConfig(source=str(tmp_path / "splits"), sample_size=16))) == 4  # data.split: train
    assert len(build_dataset(DataConfig(source=str(tmp_path / "classes"), sample_size=16))) == 6


def test_streamed_scores_equal_the_in_memory_computation_and_npz_arrays_are_read_in_slices(tmp_path):
    """score_sets reads sets in batches (here 700 images of 64 px in batches of 512 and a reference of 300 in one)
    and accumulates the bootstrap's weighted sums; the scores equal spectral_scores on the whole sets in memory."""
    from wgunet.evaluation.image_sets import open_image_set
    from wgunet.evaluation.scores import score_sets
    from wgunet.evaluation.spectral import image_statistics, spectral_scores

    rng = np.random.default_rng(0)
    generated = rng.integers(0, 256, (700, 64, 64, 3), dtype=np.uint8)
    generated[:, :, ::2] //= 2  # a spectral difference to score
    real = rng.integers(0, 256, (300, 64, 64, 3), dtype=np.uint8)
    np.savez(tmp_path / "generated.npz", images=generated)
    np.savez(tmp_path / "real.npz", arr_0=real)
    source = open_image_set(tmp_path / "generated.npz")
    streamed = score_sets({"g": source}, open_image_set(tmp_path / "real.npz"), None, bootstrap=30)
    whole = spectral_scores(image_statistics(torch.from_numpy(generated).permute(0, 3, 1, 2)),
                            image_statistics(torch.from_numpy(real).permute(0, 3, 1, 2)), bootstrap=30)
    for name, estimate in whole.items():
        got = getattr(streamed.sets["g"].scores, name)
        assert got.value == pytest.approx(estimate.value, rel=1e-5), name
        assert got.ci95 == pytest.approx(estimate.ci95, rel=1e-4) and got.bias == pytest.approx(estimate.bias, rel=1e-3, abs=1e-7)

    from wgunet.evaluation.image_sets import StoredArray, _npz_member

    assert isinstance(_npz_member(str(tmp_path / "generated.npz"), "images"), StoredArray)  # read by slices


def test_features_stig_training_refinement_and_mode_images_read_a_set_in_batches(tmp_path):
    """FID/FINC features, STIG training (each step's images by index), refinement into a folder and FINC's top
    images read a set through ImageSource.read a batch at a time, and give what the whole set in memory gives."""
    from wgunet.evaluation.features import compute_features
    from wgunet.evaluation.image_sets import ImageSource, as_source, open_image_set, write_image_folder
    from wgunet.evaluation.scores import compare_modes
    from wgunet.evaluation.stig import StigConfig, load_refiner, refine, train_refiner

    images = load_image_set("patches:heldout", 16).images[:40]
    largest = []

    def watched(held: torch.Tensor, name: str) -> ImageSource:
        def read(a: int, b: int) -> torch.Tensor:
            largest.append(b - a)
            return held[a:b]
        return ImageSource(name, as_source(held).names, tuple(held.shape[-2:]), read)

    def mean_colour(x: torch.Tensor) -> torch.Tensor:
        return x.float().mean((2, 3))

    assert torch.equal(compute_features(watched(images, "a"), mean_colour, batch_size=8),
                       compute_features(images, mean_colour, batch_size=40))
    assert max(largest) == 8
    config = StigConfig(steps=3, batch_size=4, channels=8, checkpoint_every=3)
    from_source = train_refiner(watched(images[:20], "g"), watched(images[20:], "r"), tmp_path / "s", config)
    assert max(largest) == 8  # STIG reads one image per index
    in_memory = train_refiner(images[:20], images[20:], tmp_path / "m", config)
    translator = load_refiner(from_source)
    assert torch.equal(refine(translator, images), refine(load_refiner(in_memory), images))

    largest.clear()
    refined = ImageSource("refined", as_source(images).names, (16, 16), lambda a, b: refine(translator, images[a:b]))
    write_image_folder(watched(images, "w"), tmp_path / "plain", {}, overwrite=False, batch_size=16)
    assert max(largest) == 16
    write_image_folder(refined, tmp_path / "refined", {}, overwrite=False, batch_size=16)
    assert torch.equal(open_image_set(tmp_path / "refined").load().images, refine(translator, images))

    from test_finc import clusters

    test = torch.randint(0, 256, (300, 3, 4, 4), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    comparison = compare_modes(watched(test, "t"), test[:200], clusters([100, 100, 100], 0), clusters([100, 100], 1),
                               "clusters", sigma=2.0, r=500, top_k=3)  # the third cluster: a mode of the test set
    largest.clear()
    rows = comparison.mode_rows(images_per_row=3)
    assert len(comparison.result.test_modes) and set(largest) == {1}
    for (_, picked), modes in zip(rows, comparison.result.test_modes.top):
        assert np.array_equal(picked, test[modes[:3]].permute(0, 2, 3, 1).numpy())
