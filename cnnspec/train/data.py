"""Data sources: ``digits`` (ships with scikit-learn), ``mnist:``, ``fashion-mnist:``,
``cifar10:`` and ``imagefolder:`` directories already on disk, and ``synthetic``.

Nothing is ever downloaded. In-memory sources keep their images as ``uint8`` tensors at
their own size; :class:`Preprocess` converts each batch on the training device (channels,
size, augmentation, normalization), so the same code serves CPU and GPU. Batches come in
an order derived from ``(seed, epoch)`` only, so that a resumed run replays the same
batches, and are sharded across distributed ranks like ``DistributedSampler``.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import math
import pickle
import struct
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 -- the usual name
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from cnnspec.train.config import TrainError

SOURCES = (
    "digits",
    "synthetic",
    "mnist:PATH",
    "fashion-mnist:PATH",
    "cifar10:PATH",
    "imagefolder:PATH",
)
SPLIT_SEED = 0  # the digits train/validation split never depends on --seed
VAL_FRACTION = 0.2
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F", "La")  # PIL's one-channel modes


class ConversionWarning(UserWarning):
    """The data's channels or size differ from the spec's input and were converted."""


@dataclass
class ImageFiles:
    """An ``ImageFolder`` split: file paths and labels, read (and resized) when batched."""

    paths: list[str]
    labels: Tensor
    sizes: frozenset[tuple[int, int]] = frozenset()  # (H, W) of the images, as verified
    channels: frozenset[int] = frozenset()  # 1 (grey) or 3 (colour)


@dataclass
class Split:
    """Images (``uint8`` N x C x H x W tensor, or :class:`ImageFiles`) and their labels."""

    images: Tensor | ImageFiles
    labels: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Data:
    """A data set ready for a spec whose input is ``shape`` (C, H, W)."""

    name: str
    classes: list[str]
    train: Split
    val: Split
    shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]


# ------------------------------------------------------------------- sources


def load_data(source: str, shape: Sequence[int], classes: int | None = None) -> Data:
    """Load ``source`` for a spec input of ``shape``; warn when channels or size change.

    ``classes`` (the network's output width) sizes the ``synthetic`` source.
    """
    if len(shape) != 3:
        dims = " x ".join(map(str, shape))
        raise TrainError(f"training needs an image input (C x H x W); the spec's is {dims}")
    target = (int(shape[0]), int(shape[1]), int(shape[2]))
    if target[0] not in (1, 3):
        raise TrainError(f"training needs 1 or 3 input channels; the spec's input has {target[0]}")
    kind, _, path = source.partition(":")
    if kind in ("digits", "synthetic") and path:
        raise TrainError(f"--data {kind} takes no path")
    if kind == "digits":
        name, names, train, val = "digits", [str(i) for i in range(10)], *_digits()
    elif kind == "synthetic":
        name, names, train, val = "synthetic", *_synthetic(target, classes or 10)
    elif kind in ("mnist", "fashion-mnist"):
        name, names, train, val = kind, *_mnist(_need_path(kind, path), kind)
    elif kind == "cifar10":
        name, names, train, val = "cifar10", *_cifar10(_need_path(kind, path))
    elif kind == "imagefolder":
        name, names, train, val = "imagefolder", *_image_folder(_need_path(kind, path))
    else:
        raise TrainError(f"unknown --data {source!r}; expected one of {', '.join(SOURCES)}")
    if isinstance(train.images, Tensor):
        _warn_conversion(name, tuple(train.images.shape[1:]), target)
        mean, std = _stats(train.images, target)
    else:
        _warn_files(name, train.images, target)
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if target[0] == 3 else ((0.5,), (0.25,))
    return Data(name, names, train, val, target, mean, std)


def _need_path(kind: str, path: str) -> Path:
    if not path:
        raise TrainError(f"--data {kind} needs a directory: --data {kind}:PATH")
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise TrainError(f"--data {kind}:{path}: no such directory")
    return directory


def _digits() -> tuple[Split, Split]:
    """scikit-learn's 1,797 8 x 8 digits (0..16), from the file inside its package."""
    try:  # find the file without importing scikit-learn (seconds of imports)
        found = importlib.util.find_spec("sklearn")
        if found is None or not found.submodule_search_locations:
            raise FileNotFoundError("scikit-learn is not installed")
        ref = Path(found.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")
        with gzip.open(ref, "rt") as text:
            rows = [[int(float(v)) for v in row] for row in csv.reader(text) if row]
    except OSError as exc:
        raise TrainError(
            f"--data digits needs scikit-learn's bundled digits file ({exc}); "
            "pip install scikit-learn"
        ) from None
    table = torch.tensor(rows, dtype=torch.int64)
    images = (table[:, :64].reshape(-1, 1, 8, 8) * 255 + 8) // 16  # 0..16 -> 0..255
    return stratified_split(images.to(torch.uint8), table[:, 64], VAL_FRACTION, SPLIT_SEED)


def stratified_split(
    images: Tensor, labels: Tensor, fraction: float, seed: int
) -> tuple[Split, Split]:
    """The same fraction of every class to validation, chosen by a seeded permutation."""
    gen = torch.Generator().manual_seed(seed)
    train_idx: list[Tensor] = []
    val_idx: list[Tensor] = []
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=gen)]
        n_val = round(len(members) * fraction)
        val_idx.append(members[:n_val])
        train_idx.append(members[n_val:])
    tr, va = torch.sort(torch.cat(train_idx)).values, torch.sort(torch.cat(val_idx)).values
    return Split(images[tr], labels[tr]), Split(images[va], labels[va])


# The ``synthetic`` source's training and validation images (bench/gpu_check.py's CPU
# smoke test shrinks them to keep its runs short).
SYNTHETIC_SIZES = (2048, 512)


def _synthetic(shape: tuple[int, int, int], classes: int) -> tuple[list[str], Split, Split]:
    """Random images and labels (for benchmarks: nothing to learn)."""
    gen = torch.Generator().manual_seed(SPLIT_SEED)

    def split(n: int) -> Split:
        images = torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8)
        return Split(images, torch.randint(0, classes, (n,), generator=gen))

    train, val = SYNTHETIC_SIZES
    return [str(i) for i in range(classes)], split(train), split(val)


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_FASHION = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def _mnist(root: Path, kind: str) -> tuple[list[str], Split, Split]:
    """The four IDX files (optionally ``.gz``) in PATH, PATH/raw or PATH/<Name>/raw."""
    sub = "FashionMNIST" if kind == "fashion-mnist" else "MNIST"
    candidates = [root, root / "raw", root / sub / "raw"]

    def find(stem: str) -> Path:
        for folder in candidates:
            for name in (stem, f"{stem}.gz"):
                if (folder / name).is_file():
                    return folder / name
        expected = ", ".join(n for pair in _MNIST_FILES.values() for n in pair)
        raise TrainError(
            f"--data {kind}:{root}: no {stem}[.gz] in {root}, {root}/raw or {root}/{sub}/raw; "
            f"expected the four IDX files {expected} (nothing is downloaded)"
        )

    splits = [
        Split(_idx(find(images), 3, kind), _idx(find(labels), 1, kind).long())
        for images, labels in _MNIST_FILES.values()
    ]
    for split in splits:
        if split.images.shape[0] != len(split):  # type: ignore[union-attr]
            raise TrainError(f"--data {kind}:{root}: image and label counts differ")
    train, val = splits
    train.images = train.images.unsqueeze(1)  # type: ignore[union-attr]
    val.images = val.images.unsqueeze(1)  # type: ignore[union-attr]
    names = _FASHION if kind == "fashion-mnist" else [str(i) for i in range(10)]
    return names, train, val


def _idx(path: Path, dims: int, kind: str) -> Tensor:
    opener: Any = gzip.open if path.suffix == ".gz" else Path.open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
        magic, *sizes = struct.unpack(f">{dims + 1}I", raw[: 4 * (dims + 1)])
    except (OSError, EOFError, struct.error) as exc:
        raise TrainError(f"--data {kind}: cannot read {path}: {exc}") from None
    count, header = math.prod(sizes), 4 * (dims + 1)
    if magic != 0x800 + dims:
        raise TrainError(f"--data {kind}: {path} is not an IDX file of {dims} dimension(s)")
    if len(raw) != header + count:
        noun = "labels" if dims == 1 else "images"
        each = math.prod(sizes[1:])
        have = (len(raw) - header) / each
        held = f"{int(have)}" if have == int(have) else f"{have:.1f}"
        raise TrainError(
            f"--data {kind}: {path} holds {held} {noun}, its header says {sizes[0]}: the "
            "file is truncated or damaged"
        )
    data = torch.frombuffer(bytearray(raw[4 * (dims + 1) :]), dtype=torch.uint8)
    return data.reshape(*sizes)


_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def _cifar10(root: Path) -> tuple[list[str], Split, Split]:
    """The python-pickle CIFAR-10 batches in PATH or PATH/cifar-10-batches-py."""
    folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    missing = [n for n in [*_CIFAR_TRAIN, "test_batch"] if not (folder / n).is_file()]
    if missing:
        raise TrainError(
            f"--data cifar10:{root}: missing {', '.join(missing)} in {folder}; expected the "
            "python version's data_batch_1..5 and test_batch (cifar-10-batches-py/)"
        )

    def read(names: list[str]) -> Split:
        images, labels = [], []
        for name in names:
            try:
                with (folder / name).open("rb") as handle:
                    batch = pickle.load(handle, encoding="bytes")
                images.append(torch.tensor(batch[b"data"], dtype=torch.uint8))
                labels.extend(batch[b"labels"])
            except (OSError, pickle.UnpicklingError, KeyError, TypeError, EOFError) as exc:
                raise TrainError(f"--data cifar10: {folder / name} is malformed: {exc}") from None
        return Split(torch.cat(images).reshape(-1, 3, 32, 32), torch.tensor(labels))

    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    return names, read(_CIFAR_TRAIN), read(["test_batch"])


def _image_folder(root: Path) -> tuple[list[str], Split, Split]:
    """``PATH/train/<class>/*.png`` and ``PATH/val/<class>/*`` (torchvision ImageFolder)."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.datasets.folder import find_classes, make_dataset

    parts = [root / "train", root / "val"]
    if not all(p.is_dir() for p in parts):
        raise TrainError(
            f"--data imagefolder:{root}: expected {root}/train/<class>/<images> and "
            f"{root}/val/<class>/<images>"
        )
    try:
        names, index = find_classes(str(parts[0]))
    except FileNotFoundError as exc:
        raise TrainError(f"--data imagefolder:{root}: {exc}") from None
    splits = []
    for part in parts:
        strays = [
            f
            for f in sorted(part.rglob("*"))
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() not in IMAGE_SUFFIXES
        ]
        if strays:
            shown = ", ".join(str(s) for s in strays[:3]) + (" ..." if len(strays) > 3 else "")
            raise TrainError(
                f"--data imagefolder:{root}: {len(strays)} file(s) that are not images: {shown}; "
                f"expected only {', '.join(IMAGE_SUFFIXES)} files under {part}/<class>/"
            )
        try:
            samples = make_dataset(str(part), index, IMAGE_SUFFIXES)
        except (FileNotFoundError, ValueError) as exc:
            raise TrainError(f"--data imagefolder:{root}: {exc}") from None
        sizes, channels = set(), set()
        for file, _ in samples:
            try:
                with Image.open(file) as image:
                    image.verify()
                    sizes.add((image.height, image.width))
                    channels.add(1 if image.mode in GREY_MODES else 3)
            except (UnidentifiedImageError, OSError, SyntaxError) as exc:
                raise TrainError(
                    f"--data imagefolder: {file} is not a readable image: {exc}"
                ) from None
        labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
        files = ImageFiles([f for f, _ in samples], labels, frozenset(sizes), frozenset(channels))
        splits.append(Split(files, labels))
    return names, splits[0], splits[1]


def _warn_conversion(name: str, have: tuple[int, ...], want: tuple[int, int, int]) -> None:
    if have[0] != want[0]:
        how = "repeating the grey channel" if have[0] == 1 else "averaging the colour channels"
        warnings.warn(
            f"{name} has {have[0]} channel(s), the spec's input {want[0]}: {how}",
            ConversionWarning,
            stacklevel=3,
        )
    if have[1:] != want[1:]:
        warnings.warn(
            f"{name} images are {have[1]} x {have[2]}, the spec's input "
            f"{want[1]} x {want[2]}: resizing",
            ConversionWarning,
            stacklevel=3,
        )


def _warn_files(name: str, files: ImageFiles, want: tuple[int, int, int]) -> None:
    """The warnings of :func:`_warn_conversion` for image files, which are converted (by
    PIL) as they are read: for the channels and the sizes the verification found."""
    if files.channels - {want[0]}:
        how = "converting them to RGB" if want[0] == 3 else "converting them to grey"
        have = " and ".join("grey" if c == 1 else "colour" for c in sorted(files.channels))
        warnings.warn(
            f"{name} images are {have}, the spec's input has {want[0]} channel(s): {how}",
            ConversionWarning,
            stacklevel=3,
        )
    others = sorted(files.sizes - {want[1:]})
    if others:
        shown = ", ".join(f"{h} x {w}" for h, w in others[:3]) + (
            ", ..." if len(others) > 3 else ""
        )
        count = f"{len(files.sizes)} sizes: " if len(files.sizes) > 1 else ""
        warnings.warn(
            f"{name} images are {count}{shown}, the spec's input {want[1]} x {want[2]}: resizing",
            ConversionWarning,
            stacklevel=3,
        )


def _stats(images: Tensor, shape: tuple[int, int, int]) -> tuple[tuple[float, ...], ...]:
    """Per-channel mean and std of the first training images as the model sees them (up to
    4,096 of them, fewer for large inputs: at most 2**26 values)."""
    count = max(1, min(4096, 2**26 // math.prod(shape)))
    sample = convert(images[:count], shape)
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


# ------------------------------------------------------------------ batches


def convert(images: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """``uint8`` images -> float in [0, 1] with the spec's channels and size."""
    x = images.float().div_(255)
    if x.shape[1] != shape[0]:
        x = x.expand(-1, shape[0], -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
    if tuple(x.shape[2:]) != shape[1:]:
        smaller = x.shape[2] > shape[1] or x.shape[3] > shape[2]
        x = F.interpolate(
            x, size=shape[1:], mode="bilinear", align_corners=False, antialias=smaller
        )
    return x


class Preprocess:
    """Per batch, on the device: convert, augment (training), normalize."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
        channels_last: bool = False,
    ) -> None:
        self.shape = shape
        self.mean = torch.tensor(list(mean), device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(list(std), device=device).view(1, -1, 1, 1)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: Tensor, gen: torch.Generator | None = None) -> Tensor:
        x = convert(images, self.shape)
        if gen is not None:
            x = augment(x, gen)
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=self.memory_format)


def augment(
    x: Tensor, gen: torch.Generator, degrees: float = 10.0, shift: float = 0.1, scale: float = 0.1
) -> Tensor:
    """Random affine per image: rotation (±degrees), shift (±shift of the size), scale."""
    n = x.shape[0]
    u = torch.rand(n, 4, generator=gen, device=gen.device).to(x.device) * 2 - 1
    angle = u[:, 0] * math.radians(degrees)
    factor = 1 + u[:, 1] * scale
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    theta = torch.stack(
        [
            torch.stack([cos, -sin, u[:, 2] * shift * 2], 1),
            torch.stack([sin, cos, u[:, 3] * shift * 2], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def epoch_order(n: int, seed: int, epoch: int) -> Tensor:
    """The shuffle of one epoch: a function of (seed, epoch) only."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen)


class _Files(Dataset[tuple[Tensor, int]]):
    """Reads and resizes one image of an :class:`ImageFiles` split (in a worker)."""

    def __init__(self, files: ImageFiles, shape: tuple[int, int, int]) -> None:
        self.files, self.shape = files, shape

    def __len__(self) -> int:
        return len(self.files.paths)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        path = self.files.paths[i]
        try:
            with Image.open(path) as opened:
                image = opened.convert("L" if self.shape[0] == 1 else "RGB")
            size = (self.shape[2], self.shape[1])
            pixels = pil_to_tensor(image.resize(size, Image.Resampling.BILINEAR))
        except OSError as exc:
            raise TrainError(f"cannot read image {path}: {exc}") from None
        return pixels, int(self.files.labels[i])


class Batches:
    """One split's batches for one rank: ``batches(epoch, start)`` yields uint8 images, labels.

    ``batch_size`` is this rank's; with ``shuffle`` the order is :func:`epoch_order`, else the
    split's own. Rank ``r`` of ``world`` takes every ``world``-th sample (training pads the
    order by repeating its start so that every rank has as many batches, as
    ``DistributedSampler`` does; evaluation does not pad, so every sample counts once).
    """

    def __init__(  # noqa: PLR0917
        self,
        split: Split,
        shape: tuple[int, int, int],
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        self.split, self.shape, self.batch_size, self.shuffle = split, shape, batch_size, shuffle
        self.seed, self.rank, self.world = seed, rank, world
        self.workers, self.pin_memory = workers, pin_memory
        per_rank = math.ceil(len(split) / world) if shuffle else len(range(rank, len(split), world))
        self.per_rank = per_rank

    def __len__(self) -> int:
        return math.ceil(self.per_rank / self.batch_size)

    def indices(self, epoch: int) -> Tensor:
        n = len(self.split)
        order = epoch_order(n, self.seed, epoch) if self.shuffle else torch.arange(n)
        if self.shuffle and self.world > 1:
            padded = self.per_rank * self.world
            order = torch.cat([order, order[: padded - n]])
        return order[self.rank :: self.world]

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
        chunks = list(torch.split(self.indices(epoch), self.batch_size))[start:]
        images = self.split.images
        if isinstance(images, Tensor):
            for idx in chunks:
                x, y = images[idx], self.split.labels[idx]
                yield (x.pin_memory(), y.pin_memory()) if self.pin_memory else (x, y)
            return
        loader = DataLoader(
            _Files(images, self.shape),
            batch_sampler=[c.tolist() for c in chunks],
            num_workers=self.workers,
            pin_memory=self.pin_memory,
        )
        yield from loader
