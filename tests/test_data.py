import numpy as np
import pytest
import torch
from PIL import Image

from wgunet.training.config import DataConfig
from wgunet.training.data import DataError, build_dataset, photograph_patches


def save(path, size, color=(255, 0, 0), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else 128).save(path)


def test_image_folder_is_recursive_resized_cropped_and_scaled(tmp_path):
    save(tmp_path / "a.png", (64, 40), (255, 0, 0))
    save(tmp_path / "sub" / "b.jpg", (20, 30), (0, 0, 255))
    save(tmp_path / "sub" / "deeper" / "c.webp", (32, 32))
    save(tmp_path / "gray.png", (16, 16), mode="L")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    data = build_dataset(DataConfig(source=str(tmp_path), sample_size=16))
    assert len(data) == 4 and data.names[0] == "a.png"
    images = torch.stack([data[i] for i in range(4)])
    assert images.shape == (4, 3, 16, 16) and images.min() >= -1 and images.max() <= 1
    assert torch.allclose(images[0, 0], torch.ones(16, 16)) and torch.allclose(images[0, 1], -torch.ones(16, 16))


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_dataset(DataConfig(source=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images in .*PNG, JPEG or WebP"):
        build_dataset(DataConfig(source=str(tmp_path / "empty")))
    save(tmp_path / "bad" / "ok.png", (8, 8))
    (tmp_path / "bad" / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match="broken.png' is not a readable image.*remove or replace it"):
        build_dataset(DataConfig(source=str(tmp_path / "bad")))


def test_patches_are_deterministic_and_the_split_is_disjoint():
    a = photograph_patches(16, "train", per_image=4, seed=1)
    b = photograph_patches(16, "train", per_image=4, seed=1)
    c = photograph_patches(16, "train", per_image=4, seed=2)
    held = photograph_patches(16, "heldout", per_image=4, seed=1)
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.images.dtype == torch.uint8 and a.images.shape[1:] == (3, 16, 16)
    train_set = {bytes(x.numpy()) for x in a.images}
    assert not any(bytes(x.numpy()) in train_set for x in held.images)
    assert {n.split("-")[0] for n in a.names} >= {"astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field"}
    with pytest.raises(DataError, match="splits patches:train and patches:heldout, not patches:test"):
        photograph_patches(16, "test")


def test_patches_have_a_natural_power_law_spectrum():
    images = photograph_patches(32, "train", per_image=16).images.float().mean(1)
    power = torch.fft.fftshift(torch.fft.fft2(images - images.mean((-2, -1), keepdim=True)).abs().pow(2), dim=(-2, -1))
    power = power.mean(0)
    y, x = torch.meshgrid(torch.arange(32) - 16, torch.arange(32) - 16, indexing="ij")
    radius = (x**2 + y**2).sqrt().round().long()
    radial = torch.stack([power[radius == r].mean() for r in range(2, 15)])
    slope = np.polyfit(np.log(np.arange(2, 15)), np.log(radial.numpy()), 1)[0]
    assert -3.2 < slope < -1.2  # natural images: power ~ 1/f^2


def test_hugging_face_dataset_with_detected_image_column():
    datasets = pytest.importorskip("datasets")
    images = [Image.new("RGB", (24, 24), (i * 40, 0, 0)) for i in range(3)]
    table = datasets.Dataset.from_dict({"label": [0, 1, 2], "img": images}).cast_column("img", datasets.Image())
    data = build_dataset(DataConfig(sample_size=8), dataset=table)
    assert data.column == "img" and len(data) == 3 and data[2].shape == (3, 8, 8)
    assert data[2][0, 0, 0].item() == pytest.approx(80 / 127.5 - 1)
    with pytest.raises(DataError, match="image column 'picture' not in the dataset"):
        build_dataset(DataConfig(image_column="picture"), dataset=table)
    with pytest.raises(DataError, match="no image column among \\['label'\\]: set data.image_column"):
        build_dataset(DataConfig(), dataset=datasets.Dataset.from_dict({"label": [0]}))


SCAN_IN_TWO_PROCESSES = """
import json, os, sys
import wgunet.training.data as data

scans = []
real_scan = data.ImageFolder._scan
data.ImageFolder._scan = lambda self, decode_all: scans.append(1) or real_scan(self, decode_all)
folder = data.ImageFolder(sys.argv[1], 8)
with open(os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.json"), "w") as handle:
    json.dump({"scans": len(scans), "names": folder.names}, handle)
from wgunet.common.cli import leave_process_group
leave_process_group()  # as the entry points do (wgunet.common.cli.run_cli)
"""


@pytest.mark.slow
def test_an_image_folder_is_listed_and_checked_by_one_process_of_several(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from launch import free_port

    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "scan.py").write_text(SCAN_IN_TWO_PROCESSES)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
               str(tmp_path / "scan.py"), str(tmp_path), str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["scans"] for r in ranks] == [1, 0] and ranks[0]["names"] == ranks[1]["names"] == ["0.png", "1.png", "2.png"]


def test_loader_workers_are_none_for_images_in_memory_and_the_cores_otherwise(tmp_path, monkeypatch):
    from wgunet.training.data import ImageFolder, loader_workers

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert loader_workers(DataConfig(), photograph_patches(8, per_image=1)) == 0
    assert loader_workers(DataConfig(), ImageFolder(tmp_path, 8)) == 8
    assert loader_workers(DataConfig(), ImageFolder(tmp_path, 8), processes_on_machine=4) == 3
    assert loader_workers(DataConfig(num_workers=2), ImageFolder(tmp_path, 8)) == 2


def test_own_images_smaller_than_the_sample_size_are_refused_unless_upscale_and_the_run_says_what_it_does(
        tmp_path, tiny_teacher, capsys):
    from wgunet.training.config import ConfigError, load_config
    from wgunet.training.data import DataError, ImageFolder
    from wgunet.training.loop import train

    rng = np.random.default_rng(0)
    for i, side in enumerate((48, 64, 16)):
        Image.fromarray(rng.integers(0, 255, (side, side + 8, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    with pytest.raises(DataError, match=r"1 of the 3 images .* smaller than data.sample_size=32 \('2.png' is 24x16\).*"
                       "data.upscale=true"):
        ImageFolder(tmp_path, 32)
    folder = ImageFolder(tmp_path, 32, upscale=True)
    assert folder.describe().endswith("3 images in " + str(tmp_path) + ", from 24x16 to 72x64: shorter side resized to "
                                      "32 (bicubic, antialiased; 1 enlarged), then the centre 32x32")
    assert folder[0].shape == (3, 32, 32)
    (tmp_path / "2.png").unlink()
    base = [f"data.source={tmp_path}", "data.sample_size=16", f"teacher={tiny_teacher}", "batch_size=2", "max_steps=1",
            f"output_dir={tmp_path / 'run'}", "student={block_out_channels: [16, 32], norm_num_groups: 8}"]
    with pytest.raises(ConfigError, match=r"set eval.reference=FOLDER .*eval.reference=patches:heldout .*eval_every=0"):
        load_config(None, base)
    train(load_config(None, base + ["eval_every=0", "log_with=none"]))
    assert f"distill: 1 process on cpu, mixed precision no; data: 2 images in {tmp_path}, from 56x48 to 72x64" in \
        capsys.readouterr().err


def test_a_folder_is_decoded_in_full_once_and_then_only_its_new_or_changed_files(tmp_path, monkeypatch):
    import os

    import wgunet.training.data as data

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 10, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    decoded = []
    real_decode = data.decoded_size
    monkeypatch.setattr(data, "decoded_size", lambda path: decoded.append(path.name) or real_decode(path))
    assert data.ImageFolder(folder, 8).sizes == [(10, 8)] * 4 and sorted(decoded) == ["0.png", "1.png", "2.png", "3.png"]
    decoded.clear()
    assert data.ImageFolder(folder, 8).sizes == [(10, 8)] * 4 and decoded == []  # on record, unchanged
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(folder / "4.png")
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(folder / "1.png")
    assert data.ImageFolder(folder, 8).sizes == [(10, 8), (9, 9), (10, 8), (10, 8), (12, 12)]
    assert sorted(decoded) == ["1.png", "4.png"]
    decoded.clear()
    data.ImageFolder(folder, 8, verify="all")
    assert len(decoded) == 5
    # a file damaged since its check (same size in bytes, new time) is decoded again and named
    damaged = (folder / "2.png").read_bytes()
    (folder / "2.png").write_bytes(damaged[:40] + bytes(len(damaged) - 40))
    os.utime(folder / "2.png", ns=(1, 1))
    with pytest.raises(data.DataError, match="2.png"):
        data.ImageFolder(folder, 8)
    data.verification_record(folder).write_text("{not json")  # a damaged record: everything decoded again
    (folder / "2.png").unlink()
    decoded.clear()
    assert len(data.ImageFolder(folder, 8)) == 4 and len(decoded) == 4
