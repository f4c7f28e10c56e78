"""Training and reference images as (3, S, S) float tensors in [-1, 1].

Sources (``DataConfig.source``; the same names wherever a tool takes an image set):
- ``patches:train`` / ``patches:heldout``: crops of the colour photographs that ship inside scikit-image, cut at several scales.
  Natural photographs have the ~1/f^2 power spectra this project is about. The right-most 20% of
  each photograph is held out, so the ``heldout`` split shares no pixel with ``train``.
- an image folder: PNG, JPEG or WebP, searched recursively; each decoded once to check it (and again only when
  the file changes); the shorter side
  resized to the sample size (images smaller than it refused unless ``upscale``), then the centre square.
- a Hugging Face ``datasets`` name, a folder saved with ``save_to_disk`` (or a ``datasets.Dataset``), with the
  image column detected.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from wgunet.common.errors import UserError
from wgunet.common.files import FileFormatError, read_json, write_json
from wgunet.common.pixels import to_signed
from wgunet.common.processes import on_main, processes
from wgunet.training.config import DataConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina", "immunohistochemistry")
PATCH_SCALES = (1, 2, 4)  # each photograph is also cut after 2x and 4x area downsampling
HELDOUT_FRACTION = 0.2
BUILTIN_SIZE = 32  # the shipped teacher's size: built-in sets compared with no other images are cut at it


class DataError(UserError, ValueError):
    """Unusable input data; the message names the file or folder and the fix."""


# PIL refuses images over ~89 M pixels (decompression bombs); a user who trusts bigger files raises the limit here.
if os.environ.get("WGUNET_MAX_IMAGE_PIXELS"):
    Image.MAX_IMAGE_PIXELS = int(os.environ["WGUNET_MAX_IMAGE_PIXELS"])
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")


def read_rgb(path: str | Path) -> Image.Image:
    """A fully decoded 8-bit RGB image; a truncated, unreadable or oversized file raises DataError naming it.

    16-bit greyscale (PIL modes I;16 and I) is scaled to 8 bits (x 255/65535); PIL's own convert would clip every
    value above 255 to white.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                if image.mode in SIXTEEN_BIT_MODES:
                    scaled = np.asarray(image, dtype=np.float64) * (255 / 65535)
                    return Image.fromarray(scaled.round().clip(0, 255).astype(np.uint8)).convert("RGB")
                return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DataError(f"{str(path)!r} is over PIL's pixel limit ({error}): resize it, or if you trust the file set "
                        "WGUNET_MAX_IMAGE_PIXELS to a larger number of pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{str(path)!r} is not a readable image ({error}): remove or replace it") from None


def to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` (bicubic, antialiased), center-crop, RGB, scale to [-1, 1]."""
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    if scale != 1:
        image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return to_signed(torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1))


class TensorImages(Dataset):
    """Images held in memory as uint8 (N, 3, S, S)."""

    def __init__(self, images: torch.Tensor, names: list[str] | None = None):
        self.images = images
        self.names = names or [f"{i:06d}" for i in range(len(images))]

    def describe(self) -> str:
        return f"{len(self.images)} images of {self.images.shape[-1]}x{self.images.shape[-2]}, held in memory"

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_signed(self.images[index])


@functools.lru_cache(maxsize=4)
def photograph_patches(size: int = 32, split: str = "train", per_image: int = 256, seed: int = 0) -> TensorImages:
    """Deterministic crops of scikit-image's photographs; ``split`` is "train" or "heldout".

    Cached: an evaluation reads the held-out set several times, and the crops never change. Callers must not
    modify the returned images in place.
    """
    import skimage.data

    if split not in ("train", "heldout"):
        raise DataError(f"the built-in set has splits patches:train and patches:heldout, not patches:{split}")
    generator = np.random.default_rng(seed)
    crops, names = [], []
    for name in PHOTOGRAPHS:
        photo = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        cut = round(photo.width * (1 - HELDOUT_FRACTION))
        region = photo.crop((0, 0, cut, photo.height) if split == "train" else (cut, 0, photo.width, photo.height))
        count = per_image if split == "train" else max(1, per_image // 4)
        for scale in PATCH_SCALES:
            scaled = region if scale == 1 else region.reduce(scale)
            pixels = np.asarray(scaled)
            if min(pixels.shape[:2]) < size:
                continue
            ys = generator.integers(0, pixels.shape[0] - size + 1, count)
            xs = generator.integers(0, pixels.shape[1] - size + 1, count)
            for i, (y, x) in enumerate(zip(ys, xs)):
                crops.append(pixels[y : y + size, x : x + size])
                names.append(f"{name}-s{scale}-{i:04d}")
    images = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    return TensorImages(images, names)


def decoded_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image decoded in full and let go (verify() alone misses truncated data)."""
    return read_rgb(path).size


def verification_record(root: Path) -> Path:
    """Where the sizes of a folder's decoded images are kept, one JSON file per folder in wgunet's cache
    (``$WGUNET_CACHE``, else ``$XDG_CACHE_HOME/wgunet`` or ``~/.cache/wgunet``), so that a folder is decoded in
    full once, not at every run."""
    cache = os.environ.get("WGUNET_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wgunet"
    return Path(cache) / "verified" / f"{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:20]}.json"


def verified_sizes(root: Path, files: list[Path], verify: str) -> list[tuple[int, int]]:
    """(width, height) of each file, decoded in parallel (one image held per thread) unless ``verify`` is
    "changed" and the folder's record holds the file with its present size in bytes and modification time."""
    record_path, names = verification_record(root), [str(f.relative_to(root)) for f in files]
    stamps = [[f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    known: dict[str, list[int]] = {}
    if verify == "changed" and record_path.is_file():
        try:
            known = read_json(record_path)
        except FileFormatError:
            known = {}  # a damaged record is only a lost shortcut
    todo = [i for i, (name, stamp) in enumerate(zip(names, stamps)) if known.get(name, [])[:2] != stamp]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        decoded = list(tqdm(pool.map(decoded_size, [files[i] for i in todo]), total=len(todo),
                            desc=f"checking {root}", unit="img", disable=len(todo) < 1000, leave=False))
    for i, size in zip(todo, decoded):
        known[names[i]] = [*stamps[i], *size]
    try:
        write_json(record_path, {name: known[name] for name in names})
    except OSError:
        pass  # a read-only cache: the next run decodes again
    return [tuple(known[name][2:]) for name in names]


class ImageFolder(Dataset):
    """Every PNG / JPEG / WebP under ``root`` (recursive), each decoded once to check it and its size (in
    parallel, one image held per thread; ``verify="changed"``: only files new or changed since the folder's last
    check, ``verification_record``): smaller than ``size`` is refused unless ``upscale``. Each item: the shorter
    side resized to ``size`` (bicubic, antialiased), then the centre square."""

    def __init__(self, root: str | Path, size: int, decode_all: bool = True, upscale: bool = False,
                 verify: str = "changed"):
        self.root, self.size, self.upscale, self.verify = Path(root), size, upscale, verify
        # listed and checked by one process, however many train (the others receive the list)
        self.files, self.sizes = on_main(processes(), lambda: self._scan(decode_all))
        self.names = [str(p.relative_to(self.root)) for p in self.files]

    def _scan(self, decode_all: bool) -> tuple[list[Path], list[tuple[int, int]]]:
        if not self.root.is_dir():
            raise DataError(f"image folder {str(self.root)!r} does not exist")
        files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise DataError(
                f"no images in {str(self.root)!r}: put PNG, JPEG or WebP files in it (subfolders are searched)"
            )
        if not decode_all:
            return files, []
        sizes = verified_sizes(self.root, files, self.verify)
        small = [(f, s) for f, s in zip(files, sizes) if min(s) < self.size]
        if small and not self.upscale:
            name, (w, h) = small[0]
            raise DataError(f"{len(small)} of the {len(files)} images in {str(self.root)!r} are smaller than "
                            f"data.sample_size={self.size} ({str(name.relative_to(self.root))!r} is {w}x{h}): remove "
                            "them, or set data.upscale=true to enlarge them (bicubic)")
        return files, sizes

    def describe(self) -> str:
        """One line: how many images, their sizes, and what is done to them."""
        if not self.sizes:
            return f"{len(self.files)} images in {self.root}"
        shorter = [min(s) for s in self.sizes]
        smallest, largest = self.sizes[shorter.index(min(shorter))], self.sizes[shorter.index(max(shorter))]
        enlarged = sum(s < self.size for s in shorter)
        return (f"{len(self.files)} images in {self.root}, from {smallest[0]}x{smallest[1]} to {largest[0]}x{largest[1]}: "
                f"shorter side resized to {self.size} (bicubic, antialiased{f'; {enlarged} enlarged' if enlarged else ''}),"
                f" then the centre {self.size}x{self.size}")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_tensor(read_rgb(self.files[index]), self.size)


class HFImages(Dataset):
    """A ``datasets.Dataset`` whose image column is found by feature type (or by value)."""

    def __init__(self, dataset: Any, size: int, image_column: str | None = None):
        self.dataset, self.size = dataset, size
        self.column = image_column or self._detect_column(dataset)
        if self.column not in dataset.column_names:
            raise DataError(f"image column {self.column!r} not in the dataset; its columns are {dataset.column_names}")
        if len(dataset) == 0:
            raise DataError("the dataset is empty")

    @staticmethod
    def _detect_column(dataset: Any) -> str:
        import datasets

        for name, feature in dataset.features.items():
            if isinstance(feature, datasets.Image):
                return name
        if len(dataset):
            for name, value in dataset[0].items():
                if isinstance(value, Image.Image):
                    return name
        raise DataError(f"no image column among {dataset.column_names}: set data.image_column")

    def describe(self) -> str:
        return (f"{len(self.dataset)} images of a Hugging Face dataset (column {self.column!r}): shorter side resized to "
                f"{self.size} (bicubic, antialiased), then the centre {self.size}x{self.size}")

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_tensor(self.dataset[index][self.column], self.size)


def saved_dataset(source: str | Path) -> bool:
    """A folder written by ``datasets``' ``save_to_disk`` (a Dataset or a DatasetDict)."""
    folder = Path(source)
    return (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file()


def load_saved_dataset(source: str | Path, split: str = "train") -> Any:
    """The ``datasets.Dataset`` saved in ``source`` (memory-mapped arrow files); of a DatasetDict, ``split``."""
    try:
        import datasets
    except ImportError:
        raise DataError(f"{str(source)!r} is a Hugging Face dataset saved with save_to_disk: pip install datasets "
                        "(or pip install 'wgunet[hf]')") from None
    loaded = datasets.load_from_disk(str(source))
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{str(source)!r} holds the splits {', '.join(loaded)}, not {split!r}: set data.split")
        loaded = loaded[split]
    return loaded


BUILTIN = "patches"


def builtin_set(source: str) -> str | None:
    """The split of a built-in set's name (``patches:train`` -> "train"), None for any other source."""
    if source == BUILTIN:
        raise DataError(f"name the built-in set with its split: {BUILTIN}:train (training) or {BUILTIN}:heldout "
                        "(evaluation)")
    if not source.startswith(BUILTIN + ":"):
        return None
    return source.split(":", 1)[1]


def loader_workers(config: DataConfig, data: Dataset, processes_on_machine: int = 1) -> int:
    """``num_workers``, or when it is None: none for images already in memory (the built-in set; workers would only
    copy them), else the machine's cores shared among its training processes, at most 8."""
    if config.num_workers is not None:
        return config.num_workers
    if isinstance(data, TensorImages):
        return 0
    return min(8, max(0, (os.cpu_count() or 1) // processes_on_machine - 1))


def build_dataset(config: DataConfig, seed: int = 0, dataset: Any = None) -> Dataset:
    """The dataset a config names. ``dataset`` passes a ready ``datasets.Dataset`` instead of a name."""
    if dataset is not None:
        return HFImages(dataset, config.sample_size, config.image_column)
    split = builtin_set(config.source)
    if split is not None:
        return photograph_patches(config.sample_size, split, config.patches_per_image, seed)
    if saved_dataset(config.source):
        return HFImages(load_saved_dataset(config.source, config.split), config.sample_size, config.image_column)
    if Path(config.source).exists():
        return ImageFolder(config.source, config.sample_size, upscale=config.upscale, verify=config.verify)
    looks_like_path = config.source.startswith((".", "/", "~")) or config.source.count("/") > 1
    if looks_like_path:
        raise DataError(f"image folder {config.source!r} does not exist")
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"{config.source!r} is neither a built-in set ({BUILTIN}:train) nor an existing folder; to use it as a Hugging Face "
            "dataset, `pip install datasets`"
        ) from None
    try:
        loaded = datasets.load_dataset(config.source, split=config.split)
    except Exception as error:  # the datasets library raises many types for missing / offline data
        raise DataError(
            f"could not load dataset {config.source!r} (split {config.split!r}): {error}. Without internet, "
            "download it elsewhere and pass the local folder, or use data.source=patches:train"
        ) from None
    return HFImages(loaded, config.sample_size, config.image_column)
