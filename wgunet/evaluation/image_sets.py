"""Image sets for evaluation, the pixel-range conventions, and the sample-folder format in both directions.

An ``ImageSet`` is uint8 images (N, 3, H, W) with their names and where they came from, loaded once per command
from a folder of images, an ``.npz``, a sample folder (sample.py, STIG apply) or a built-in set (``patches:heldout``).

A sample folder holds ``000000.png``, ``000001.png``, ... (each written atomically), ``sampling.json`` (the
settings and how many images the tool has planned there), ``samples.npz`` (all images, N x H x W x C uint8) and
``grid.png``. The PNGs are the folder's state: the other two are rebuilt from them.
"""

from __future__ import annotations

import functools
import io
import json
import math
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from wgunet.common.errors import UserError
from wgunet.common.files import remove_scratch, scratch_path, write_file, write_json
from wgunet.training.data import (
    DataError,
    HFImages,
    ImageFolder,
    builtin_set,
    load_saved_dataset,
    photograph_patches,
    read_rgb,
    saved_dataset,
)

GRID_IMAGES = 64
IMAGE_NAME = re.compile(r"^\d{6}\.png$")


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8 (N, 3, H, W)
    names: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.images.shape[-2:])

    def first(self, limit: int | None) -> ImageSet:
        """The first ``limit`` images (all with None)."""
        return ImageSet(self.images[:limit].contiguous(), self.names[:limit], self.source)


@dataclass
class ImageSource:
    """An image set read in batches: never held whole unless it already is (the built-in patches). ``read(start,
    stop)`` gives uint8 (B, 3, H, W); folders are decoded per batch, .npz arrays read in slices where stored plain."""

    source: str
    names: list[str]
    size: tuple[int, int]
    read: Callable[[int, int], torch.Tensor]

    def __len__(self) -> int:
        return len(self.names)

    def batches(self, batch_size: int) -> Iterator[tuple[int, torch.Tensor]]:
        """(index of the first image, images) batch after batch."""
        for start in range(0, len(self), batch_size):
            yield start, self.read(start, min(len(self), start + batch_size))

    def take(self, indices: list[int] | torch.Tensor) -> torch.Tensor:
        """The images at ``indices`` (any order, repeats allowed): random access for training on a set."""
        return torch.cat([self.read(i, i + 1) for i in map(int, indices)])

    def load(self) -> ImageSet:
        """Every image in memory."""
        return ImageSet(self.read(0, len(self)).contiguous(), self.names, self.source)

    def first(self, limit: int | None) -> ImageSource:
        """The first ``limit`` images (all with None)."""
        return ImageSource(self.source, self.names[:limit], self.size, self.read)


def as_source(images: ImageSet | ImageSource | torch.Tensor) -> ImageSource:
    """A set in memory (or uint8 (N, C, H, W) images), seen as one read in batches; a source as it is."""
    if isinstance(images, ImageSource):
        return images
    if isinstance(images, torch.Tensor):
        images = ImageSet(images, [image_name(i) for i in range(len(images))], "images in memory")
    return ImageSource(images.source, images.names, images.size, lambda a, b: images.images[a:b])


def load_image_set(source: str | Path, size: int | None = None) -> ImageSet:
    """Every image of ``source`` in memory (``open_image_set``'s images, decoded once)."""
    return open_image_set(source, size).load()


def open_image_set(source: str | Path, size: int | None = None) -> ImageSource:
    """An image set, to read in batches:

    - ``patches:heldout`` / ``patches:train``: the built-in photographs, cut at ``size`` (the size of the other
      set or model in the command);
    - an ``.npz`` with an ``images`` or ``arr_0`` array, or a sample folder that holds one;
    - a folder of PNG / JPEG / WebP images (class subfolders included), all of one size (not resized: that would
      change their spectra);
    - a Hugging Face dataset saved with ``save_to_disk`` (of a DatasetDict, its test or validation split).
    """
    text, label = str(source), str(source)
    if Path(text).is_dir() and (Path(text) / "samples.npz").is_file():
        text = str(Path(text) / "samples.npz")  # a sample folder: its array
    split = builtin_set(text)
    if split is not None:
        if size is None:
            raise DataError(f"{text!r} is cut at the size of the images it is compared with; none was given")
        patches = photograph_patches(size, split)
        return _source(label, patches.names, lambda a, b: patches.images[a:b])
    if text.lower().endswith(".npz"):
        array, read, found = _npz_reader(text)
        label = f"{label} ({found})" if found != "images, NHWC uint8" else label
        return _source(label, [image_name(i) for i in range(len(array))], read)
    if saved_dataset(text):
        split = _evaluation_split(text)
        dataset = HFImages(load_saved_dataset(text, split or "train"), 0)
        rows = dataset.dataset

        def decoded(a: int, b: int) -> torch.Tensor:
            return _stack_one_size([np.asarray(image.convert("RGB")) for image in rows[a:b][dataset.column]], text)

        return _source(f"{label} (split {split})" if split else label, [f"{i:06d}" for i in range(len(rows))], decoded)
    if Path(text).is_file():
        raise DataError(f"{text!r} is a file, not an image set: pass a folder of images, an .npz (an 'images' or "
                        "'arr_0' array), a sample folder, a dataset saved with save_to_disk or patches:heldout")
    folder = ImageFolder(text, 0, decode_all=False)  # each file is decoded when its batch is read
    return _source(label, folder.names,
                   lambda a, b: _stack_one_size([np.asarray(read_rgb(path)) for path in folder.files[a:b]], text))


def _source(label: str, names: list[str], read: Callable[[int, int], torch.Tensor]) -> ImageSource:
    """The set, its size read off its first image; grey images read as RGB; every batch checked for that size."""
    if not names:
        raise DataError(f"{label!r} holds no images")
    first = read(0, 1)
    size = tuple(first.shape[-2:])

    def checked(a: int, b: int) -> torch.Tensor:
        images = read(a, b)
        if tuple(images.shape[-2:]) != size:
            raise DataError(f"images in {label!r} have different sizes ({size[0]}x{size[1]} and "
                            f"{images.shape[-2]}x{images.shape[-1]}): evaluation needs one size (resize them first, "
                            "or sample again)")
        return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images

    return ImageSource(label, names, size, checked)


def _stack_one_size(arrays: list[np.ndarray], source: str) -> torch.Tensor:
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise DataError(f"images in {source!r} have different sizes {[s[:2] for s in shapes][:4]}: "
                        "evaluation needs one size (resize them first, or sample again)")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


def _evaluation_split(folder: str) -> str | None:
    """A saved DatasetDict's held-out split (test, else validation, else its only one); None for a Dataset."""
    if not (Path(folder) / "dataset_dict.json").is_file():
        return None
    splits = json.loads((Path(folder) / "dataset_dict.json").read_text()).get("splits", [])
    found = next((s for s in ("test", "validation") if s in splits), splits[0] if len(splits) == 1 else None)
    if found is None:
        raise DataError(f"{folder!r} holds the splits {', '.join(splits)} and none is test or validation: save the "
                        "evaluation split alone (dataset[split].save_to_disk(...))")
    return found


class StoredArray:
    """An .npy array stored uncompressed inside a file (numpy.savez's archives), read slice by slice from the
    file: neither loaded whole nor memory-mapped, whose touched pages would count as the process's memory."""

    def __init__(self, path: str, offset: int, shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, dtype
        self.ndim = len(shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0])
        row = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        with open(self.path, "rb") as handle:
            handle.seek(self.offset + start * row)
            data = np.fromfile(handle, self.dtype, (stop - start) * row // self.dtype.itemsize)
        return data.reshape(stop - start, *self.shape[1:])


def _npz_member(path: str, key: str) -> np.ndarray | StoredArray:
    """The array ``key`` of an .npz: read in slices when stored uncompressed in C order (numpy.savez), else whole."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as handle:
                handle.seek(info.header_offset + 26)  # the local header: then the name's and the extra's lengths
                name_length, extra_length = np.frombuffer(handle.read(4), "<u2")
                handle.seek(info.header_offset + 30 + int(name_length) + int(extra_length))
                version = np.lib.format.read_magic(handle)
                header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = header(handle)
                offset = handle.tell()
            if not dtype.hasobject and not fortran and len(shape) >= 1:
                return StoredArray(path, offset, shape, dtype)
    with np.load(path, allow_pickle=False) as loaded:
        return loaded[key]


def _npz_reader(path: str) -> tuple[np.ndarray, Callable[[int, int], torch.Tensor], str]:
    """(the array, a reader of uint8 NCHW batches, what was found) of an .npz: this project's ``images`` or the
    ``arr_0`` of ADM's evaluation suite and the tools that follow it; NHWC or NCHW; uint8, or float in [0, 1] or
    [-1, 1] (its range read batch by batch, each checked)."""
    if not Path(path).is_file():
        raise DataError(f"{path!r} does not exist")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path!r} is not an .npz archive (no zip file inside): image archives hold an 'images' or "
                        "'arr_0' array (N, H, W, C), as numpy.savez writes them")
    try:
        with zipfile.ZipFile(path) as archive:
            keys = [name[:-4] for name in archive.namelist() if name.endswith(".npy")]
        key = next((k for k in ("images", "arr_0") if k in keys), None)
        if key is None:
            raise DataError(f"{path!r} has no 'images' or 'arr_0' array (it holds {', '.join(keys) or 'none'})")
        array = _npz_member(path, key)
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise DataError(f"{path!r} is not a readable .npz ({type(error).__name__}: {error}): image archives hold an "
                        "'images' or 'arr_0' array (N, H, W, C)") from None
    if array.ndim != 4:
        raise DataError(f"{path!r}: {key!r} must be a stack of images (N, H, W, C) or (N, C, H, W), got shape {array.shape}")
    layout = "NHWC" if array.shape[-1] in (1, 3) else "NCHW" if array.shape[1] in (1, 3) else None
    if layout is None:
        raise DataError(f"{path!r}: {key!r} of shape {array.shape} has no RGB (3) or grey (1) channel axis, first or "
                        "last (RGBA or two-channel images: convert them to RGB first)")
    floating = np.issubdtype(array.dtype, np.floating)
    if array.dtype != np.uint8 and not floating:
        raise DataError(f"{path!r}: {key!r} is {array.dtype}: images are uint8, or floats in [0, 1] or [-1, 1]")
    signed = floating and bool(array[0 : min(len(array), 256)].min() < 0)  # the range, from the first images

    def read(a: int, b: int) -> torch.Tensor:
        chunk = torch.from_numpy(np.ascontiguousarray(array[a:b]))
        chunk = chunk.permute(0, 3, 1, 2) if layout == "NHWC" else chunk
        if not floating:
            return chunk
        low, high = float(chunk.min()), float(chunk.max())
        if not (np.isfinite([low, high]).all() and low >= (-1 if signed else 0) and high <= 1):
            raise DataError(f"{path!r}: {key!r} is {array.dtype} from {low} to {high} in images {a}-{b - 1}: images "
                            "are uint8, or floats in [0, 1] or [-1, 1]")
        scaled = (chunk.double() + 1) * 127.5 if signed else chunk.double() * 255
        return scaled.round().clamp(0, 255).to(torch.uint8)

    found = "uint8" if not floating else f"{array.dtype} in [{-1 if signed else 0}, 1]"
    return array, read, f"{key}, {layout} {found}"


def same_size(sets: dict[str, ImageSet], reference: ImageSet) -> None:
    """Spectra and FID compare sets of one image size; a mismatch is named."""
    for name, image_set in sets.items():
        if image_set.size != reference.size:
            raise DataError(f"{image_set.source!r} holds {image_set.size} images and the reference {reference.source!r} "
                            f"{reference.size}: spectra compare sets of one size (sample at the reference's size, "
                            "or pass a reference of this size)")


# ---- the sample-folder format ----------------------------------------------------------------------------------
class FolderError(UserError):
    """A sample folder that cannot be written as asked; the message names the problem and the fix."""


def image_name(index: int) -> str:
    return f"{index:06d}.png"


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 (H, W, C) image encoded as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(image: np.ndarray, path: Path) -> None:
    """An image as PNG, atomically: an interrupted write never leaves a truncated image behind."""
    data = png_bytes(image)
    write_file(path, lambda handle: handle.write(data))


def make_grid(images: np.ndarray, pad: int = 2) -> np.ndarray:
    """A square-ish grid of (N, H, W, C) uint8 images on a white background."""
    n, h, w = images.shape[:3]
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, *images.shape[3:]), 255, np.uint8)
    for i, image in enumerate(images):
        y, x = divmod(i, columns)
        grid[pad + y * (h + pad) : (y + 1) * (h + pad), pad + x * (w + pad) : (x + 1) * (w + pad)] = image
    return grid


def prepare_image_folder(out: Path, num: int, record: dict, resume: bool, overwrite: bool,
                         resumable: bool = True) -> list[int]:
    """The indices still to draw; refuses to mix runs, to overwrite images silently, or to touch a user's files.

    ``sampling.json`` records the settings and how many images this tool has planned in the folder
    (``images_written``: names 000000.png up to it). It is written before any image, so every PNG of ours is on
    record even if a kill comes between, and --overwrite deletes only those names and the derived files.
    """
    settings = out / "sampling.json"
    remove_scratch(out)
    existing = sorted(p.name for p in out.iterdir() if IMAGE_NAME.match(p.name)) if out.is_dir() else []
    before = _read_record(settings)
    if existing and not (resume or overwrite):
        choices = "--resume to continue that run, --overwrite to replace it" if resumable else "--overwrite to replace them"
        raise FolderError(f"{str(out)!r} already holds {len(existing)} images: pass {choices}, or another --out")
    ours = {image_name(i) for i in range(before.get("images_written", 0))}
    if before and "images_written" not in before:  # a record from before the manifest: its images are ours
        ours = set(existing)
    if overwrite:
        for name in sorted(ours) + ["grid.png", "samples.npz", "sampling.json"]:
            (out / name).unlink(missing_ok=True)
        existing, before, ours = [n for n in existing if n not in ours], {}, set()
    derived = [n for n in ("grid.png", "samples.npz") if (out / n).exists()]
    if derived and not before:  # no record: not written by this tool
        raise FolderError(f"{str(out)!r} holds {', '.join(derived)} that sample.py did not write there: move them, "
                          "or use another --out")
    foreign = [n for n in existing if n not in ours]
    if foreign:
        raise FolderError(f"{str(out)!r} holds images that sample.py did not write there ({', '.join(foreign[:3])}"
                          f"{' ...' if len(foreign) > 3 else ''}): move them, or use another --out")
    if existing:
        # a record from before the weights were fingerprinted cannot say which drew its images
        changed = [k for k in record if before.get(k) != record[k] and (k != "weights" or "weights" in before)]
        if "weights" in changed:
            raise FolderError(f"the images in {str(out)!r} were drawn by other weights than {record.get('checkpoint')!r} "
                              "holds now (retrained or replaced): sample into another folder, or --overwrite them "
                              "(eval.py report: delete that folder to sample again)")
        if changed:
            raise FolderError(f"{str(out)!r} was sampled with other settings ({', '.join(changed)}): "
                              "resume with the same ones, or use --overwrite or another --out")
    stored = {**record, "images_written": max([num, before.get("images_written", 0)]
                                              + [int(n[:6]) + 1 for n in existing])}
    if before != stored:
        write_json(settings, stored)
    damaged = [n for n in existing if not _intact(out / n, record.get("sample_size"))]
    if damaged:  # ours (on record), so redrawn: empty, undecodable or of another size than the run draws
        print(f"warning: redrawing {len(damaged)} damaged images in {out} ({', '.join(damaged[:3])}"
              f"{' ...' if len(damaged) > 3 else ''})", file=sys.stderr)
        for name in damaged:
            (out / name).unlink()
        for name in ("samples.npz", "grid.png"):
            (out / name).unlink(missing_ok=True)
    done = set(existing) - set(damaged)
    return [i for i in range(num) if image_name(i) not in done]


def _intact(path: Path, size: int | None) -> bool:
    """A PNG whose header opens and, when ``size`` is known, declares size x size pixels (a cheap check: the header)."""
    try:
        with Image.open(path) as image:
            return size is None or image.size == (size, size)
    except (OSError, SyntaxError, ValueError):
        return False


def _read_record(path: Path) -> dict:
    """The folder's ``sampling.json``; an unreadable one (a kill mid-write, before writes were atomic) is empty."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}


def derived_files_match(out: Path, num: int) -> bool:
    """``samples.npz`` holds ``num`` images and ``grid.png`` decodes."""
    try:
        if len(_npz_member(str(out / "samples.npz"), "images")) != num:  # its header, not its images
            return False
        with Image.open(out / "grid.png") as grid:
            grid.verify()
        return True
    except (OSError, EOFError, KeyError, ValueError, SyntaxError, zipfile.BadZipFile):
        return False


def finish_image_folder(out: Path, num: int) -> None:
    """``grid.png`` of the first images and ``samples.npz`` (uint8, N x H x W x C), streamed through a memmap."""
    paths = [out / image_name(i) for i in range(num)]

    def read(path: Path) -> np.ndarray:
        with Image.open(path) as image:
            return np.atleast_3d(np.asarray(image))

    first = read(paths[0])
    scratch = scratch_path(out / "samples.npy")
    images = np.lib.format.open_memmap(scratch, mode="w+", dtype=np.uint8, shape=(num, *first.shape))
    try:
        for i, path in enumerate(paths):
            images[i] = read(path)
        write_file(out / "samples.npz", functools.partial(_save_npz, images=images))
        grid = png_bytes(make_grid(np.asarray(images[:GRID_IMAGES])))
        write_file(out / "grid.png", lambda handle: handle.write(grid))
    finally:
        del images
        scratch.unlink(missing_ok=True)


def _save_npz(handle, images: np.ndarray) -> None:
    np.savez(handle, images=images)


def write_image_folder(images: ImageSet | ImageSource, out: Path, record: dict, overwrite: bool,
                       batch_size: int = 64) -> None:
    """A whole set as a sample folder (PNGs, sampling.json, samples.npz, grid.png), read batch by batch; not
    resumable."""
    source = as_source(images)
    todo = set(prepare_image_folder(out, len(source), record, False, overwrite, resumable=False))
    for start, batch in tqdm(source.batches(batch_size), total=math.ceil(len(source) / batch_size), unit="batch",
                             desc=f"writing {out}", leave=False, disable=len(source) <= batch_size):
        for index, image in enumerate(batch.permute(0, 2, 3, 1).numpy(), start):
            if index in todo:
                write_png(image, out / image_name(index))
    finish_image_folder(out, len(source))
