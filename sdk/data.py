"""Datasets as fixed, seeded train/val/test DataLoaders: sklearn digits, CIFAR-10 batches, image folders.

Every loader yields ``(x, y)`` with ``x`` float32 (N, C, H, W), scaled to [0, 1] and then normalized by the
per-channel ``mean``/``std`` of the training split (both recorded on ``DataSplits`` in [0, 1] units, as a
deploy-time ``Preprocess`` needs them). Splits do not depend on ``seed``; ``seed`` only drives shuffling.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from sdk.detection.data import DetectionSet, coco, shapes, yolo
from sdk.errors import InputError
from sdk.preprocess import Preprocess

__all__ = [
    "DataSplits",
    "DetectionSet",
    "digits",
    "cifar10",
    "coco",
    "image_folder",
    "shapes",
    "split_loader",
    "yolo",
    "CIFAR10_LABELS",
    "IMAGE_EXTS",
]

CIFAR10_LABELS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
_SPLIT_SEED = 0  # fixed: the same split for every training seed, so test numbers stay comparable


@dataclass(frozen=True)
class DataSplits:
    """Train/val/test loaders plus what a deployment needs to preprocess and label inputs.

    ``input_shape`` is (1, C, H, W), ready for ``sdk.bops`` and export.
    """

    train: DataLoader
    val: DataLoader
    test: DataLoader
    num_classes: int
    input_shape: tuple[int, int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: tuple[str, ...]
    #: how a deployed camera frame becomes this data's input (image sources only; None for digits)
    preprocess: Preprocess | None = None

    def search_split(self, train_fraction: float = 0.6, *, seed: int = 0) -> tuple[DataLoader, DataLoader]:
        """Split the training data into (weights, architecture) loaders; BP-NAS searches on a 60/40 split."""
        return split_loader(self.train, train_fraction, seed=seed)


def digits(
    *, upscale: int = 1, batch_size: int = 64, seed: int = 0, channels: int = 1, augment: bool = False
) -> DataSplits:
    """sklearn's bundled 8x8 digits (1797 images, no download), stratified 60/20/20, optionally upscaled.

    ``upscale`` multiplies the side (bilinear), ``channels=3`` repeats the gray plane for RGB models, and
    ``augment`` adds random 1-pixel shifts per ``upscale`` to training batches.
    """
    from sklearn.datasets import load_digits

    _check_int("upscale", upscale, 1)
    _check_int("channels", channels, 1)
    bunch = load_digits()
    x = bunch.images.astype(np.float32) / 16.0
    if upscale > 1:
        import cv2

        size = 8 * upscale
        x = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR) for im in x])
    x = np.repeat(x[:, None], channels, axis=1)
    y = bunch.target.astype(np.int64)
    labels = tuple(str(int(t)) for t in bunch.target_names)
    idx = _stratified_split(y, (0.2, 0.2))
    return _float_splits(x, y, idx, labels, batch_size, seed, shift=upscale if augment else 0)


def cifar10(
    root: str | os.PathLike[str],
    *,
    batch_size: int = 128,
    seed: int = 0,
    val_fraction: float = 0.1,
    augment: bool = True,
    limit: int | None = None,
) -> DataSplits:
    """CIFAR-10 from the official python batches in ``root`` or ``root/cifar-10-batches-py``.

    The validation set is a fixed stratified ``val_fraction`` of the training batches; ``augment`` adds
    random 4-pixel-pad crops and horizontal flips to training batches; ``limit`` keeps the first
    ``limit`` training and test images (for quick experiments).
    """
    folder = _find_cifar(Path(root))
    xs, ys = [], []
    for name in CIFAR10_FILES:
        batch = _load_cifar_batch(folder / name)
        xs.append(batch[0])
        ys.append(batch[1])
    x_train, y_train = np.concatenate(xs[:5]), np.concatenate(ys[:5])
    x_test, y_test = xs[5], ys[5]
    if limit is not None:
        _check_int("limit", limit, 1)
        x_train, y_train, x_test, y_test = x_train[:limit], y_train[:limit], x_test[:limit], y_test[:limit]
    labels: tuple[str, ...] = CIFAR10_LABELS
    meta = folder / "batches.meta"
    if meta.is_file():
        with open(meta, "rb") as f:
            names = pickle.load(f, encoding="bytes").get(b"label_names")
        if names:
            labels = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    val_idx, train_idx = _stratified_split(y_train, (val_fraction,))
    mean, std = _channel_stats(x_train[train_idx].astype(np.float32) / 255.0)
    collate = _Normalize(mean, std, augment=augment, seed=seed)
    plain = _Normalize(mean, std, augment=False, seed=seed)
    t = torch.from_numpy

    def loader(x: np.ndarray, y: np.ndarray, train: bool) -> DataLoader:
        ds = TensorDataset(t(np.ascontiguousarray(x)), t(y))
        return _loader(ds, batch_size, seed, shuffle=train, collate=collate if train else plain)

    return DataSplits(
        train=loader(x_train[train_idx], y_train[train_idx], True),
        val=loader(x_train[val_idx], y_train[val_idx], False),
        test=loader(x_test, y_test, False),
        num_classes=10,
        input_shape=(1, 3, 32, 32),
        mean=mean,
        std=std,
        labels=labels,
        preprocess=Preprocess(size=(32, 32), mean=mean, std=std),
    )


def image_folder(
    root: str | os.PathLike[str],
    size: int | tuple[int, int],
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batch_size: int = 32,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
) -> DataSplits:
    """Images in one subfolder per class (sorted names are the labels), read with OpenCV, converted
    BGR->RGB and resized to ``size`` (int or (height, width)).

    With ``root/train/`` and ``root/val/`` (and optionally ``root/test/``; else test = val) those are the
    splits; otherwise ``root/<class>/`` is split per class. Pixels are scaled to [0, 1] and normalized by
    ``mean``/``std`` (per channel, RGB, [0, 1] units) or, when not given, by the training split's own
    statistics; either way ``DataSplits.preprocess`` records them for the bundle.
    """
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    _check_int("size", h, 1)
    _check_int("size", w, 1)
    base = Path(root)
    if not base.is_dir():
        raise InputError(
            f"image folder {os.fspath(base)!r} does not exist; pass a folder with one subfolder per class "
            "(or train/ and val/ folders that each hold one subfolder per class)."
        )
    if (base / "train").is_dir() and (base / "val").is_dir():
        classes = _class_names(base / "train")
        parts = {
            k: _read_images(base / k, classes, h, w) for k in ("train", "val", "test") if (base / k).is_dir()
        }
        xs = [parts.get("test", parts["val"]), parts["val"], parts["train"]]
        x = np.concatenate([p[0] for p in xs])
        y = np.concatenate([p[1] for p in xs])
        bounds = np.cumsum([0] + [len(p[1]) for p in xs])
        idx = tuple(np.arange(bounds[i], bounds[i + 1]) for i in range(3))
    else:
        classes = _class_names(base)
        x, y = _read_images(base, classes, h, w)
        idx = _stratified_split(y, (test_fraction, val_fraction))
    return _float_splits(x, y, idx, tuple(classes), batch_size, seed, mean=mean, std=std, pixels=True)


def _class_names(folder: Path) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise InputError(
            f"image folder {os.fspath(folder)!r} has no class subfolders; put images in root/<class>/ "
            "or root/train/<class>/ and root/val/<class>/."
        )
    return classes


def _read_images(base: Path, classes: Sequence[str], h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(float32 (N, 3, h, w) RGB in [0, 1], int64 labels) of ``base/<class>/*`` for each of ``classes``."""
    import cv2

    images, targets = [], []
    for label, cls in enumerate(classes):
        folder = base / cls
        files = (
            sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS) if folder.is_dir() else []
        )
        if not files:
            raise InputError(
                f"class folder {os.fspath(folder)!r} holds no images ({', '.join(sorted(IMAGE_EXTS))}); "
                "add some or remove the class."
            )
        for path in files:
            img = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
            if img is None:
                raise InputError(
                    f"cannot read image {os.fspath(path)!r}; is it a valid image file? Remove or fix it."
                )
            area = img.shape[0] * img.shape[1] > h * w
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR)
            images.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB).transpose(2, 0, 1))
            targets.append(label)
    return np.stack(images).astype(np.float32) / 255.0, np.asarray(targets, dtype=np.int64)


def split_loader(loader: DataLoader, fraction: float, *, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Split a TensorDataset loader per class into (``fraction``, rest) loaders; both shuffle, seeded."""
    ds = loader.dataset
    if not isinstance(ds, TensorDataset) or len(ds.tensors) != 2:
        raise InputError("split_loader needs a DataLoader over a TensorDataset(x, y), as sdk.data builds.")
    if not 0.0 < fraction < 1.0:
        raise InputError(f"fraction must be in (0, 1), got {fraction!r}; BP-NAS uses 0.6.")
    x, y = ds.tensors
    second, first = _stratified_split(y.numpy(), (1.0 - fraction,), seed=seed)
    bs = loader.batch_size or 1

    def part(i: np.ndarray, k: int) -> DataLoader:
        return _loader(TensorDataset(x[i], y[i]), bs, seed + k, shuffle=True, collate=loader.collate_fn)

    return part(first, 0), part(second, 1)


# -- helpers -------------------------------------------------------------------------------------------------


class _Normalize:
    """Collate uint8 (N, C, H, W) batches to normalized float, with optional pad-crop + flip augmentation."""

    def __init__(
        self, mean: Sequence[float], std: Sequence[float], *, augment: bool, seed: int, pad: int = 4
    ):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.augment, self.pad = augment, pad
        self.gen = torch.Generator().manual_seed(seed + 1)

    def __call__(self, batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.stack([b[0] for b in batch]).float().div_(255.0)
        y = torch.stack([b[1] for b in batch])
        if self.augment:
            x = _shift_flip(x, self.pad, self.gen, flip=True)
        return (x - self.mean) / self.std, y


class _Shift:
    """Collate float batches with random shifts up to ``pad`` pixels; no flips (digits are chiral)."""

    def __init__(self, pad: int, seed: int):
        self.pad = pad
        self.gen = torch.Generator().manual_seed(seed + 1)

    def __call__(self, batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.stack([b[0] for b in batch])
        y = torch.stack([b[1] for b in batch])
        return _shift_flip(x, self.pad, self.gen, flip=False), y


def _shift_flip(x: torch.Tensor, pad: int, gen: torch.Generator, *, flip: bool) -> torch.Tensor:
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    if flip:
        mask = torch.rand(n, generator=gen) < 0.5
        out[mask] = out[mask].flip(-1)
    return out


def _float_splits(
    x: np.ndarray,
    y: np.ndarray,
    idx: tuple[np.ndarray, ...],
    labels: tuple[str, ...],
    batch_size: int,
    seed: int,
    shift: int = 0,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    pixels: bool = False,
) -> DataSplits:
    """Normalize by ``mean``/``std`` (default: training-split statistics) and wrap (test, val, train)
    indices as loaders; ``pixels``: ``x`` is 8-bit images / 255, so a deploy-time Preprocess is recorded."""
    test_idx, val_idx, train_idx = idx
    own_mean, own_std = _channel_stats(x[train_idx])
    c = x.shape[1]
    mean = own_mean if mean is None else _per_channel("mean", mean, c)
    std = own_std if std is None else _per_channel("std", std, c)
    m = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    xt, yt = torch.from_numpy((x - m) / s), torch.from_numpy(y)
    collate = _Shift(shift, seed) if shift else None

    def loader(i: np.ndarray, train: bool) -> DataLoader:
        ds = TensorDataset(xt[i], yt[i])
        return _loader(ds, batch_size, seed, shuffle=train, collate=collate if train else None)

    _, h, w = x.shape[1:]
    pre = Preprocess(size=(int(h), int(w)), mean=mean, std=std, channels=int(c)) if pixels else None
    return DataSplits(
        train=loader(train_idx, True),
        val=loader(val_idx, False),
        test=loader(test_idx, False),
        num_classes=len(labels),
        input_shape=(1, int(c), int(h), int(w)),
        mean=mean,
        std=std,
        labels=labels,
        preprocess=pre,
    )


def _per_channel(name: str, values: Sequence[float], channels: int) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if len(out) == 1:
        out = out * channels
    if len(out) != channels or any(not np.isfinite(v) for v in out) or (name == "std" and min(out) <= 0):
        raise InputError(
            f"{name} needs {channels} finite values (one per channel, [0, 1] units; std > 0), "
            f"got {tuple(values)!r}; e.g. 0.485,0.456,0.406."
        )
    return out


def _loader(
    ds: TensorDataset, batch_size: int, seed: int, *, shuffle: bool, collate: object = None
) -> DataLoader:
    _check_int("batch_size", batch_size, 1)
    gen = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=gen, collate_fn=collate)  # type: ignore[arg-type]


def _stratified_split(
    y: np.ndarray, fractions: Sequence[float], *, seed: int = _SPLIT_SEED
) -> tuple[np.ndarray, ...]:
    """Per class, shuffle and cut off ``fractions`` in order; returns (*cuts, rest) as sorted index arrays."""
    if any(not 0.0 <= f < 1.0 for f in fractions) or sum(fractions) >= 1.0:
        raise InputError(f"split fractions {tuple(fractions)} must each be in [0, 1) and sum to less than 1.")
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        start = 0
        for k, f in enumerate(fractions):
            n = int(round(f * len(members)))
            parts[k].append(members[start : start + n])
            start += n
        parts[-1].append(members[start:])
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)


def _channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean = x.mean(axis=(0, 2, 3), dtype=np.float64)
    std = x.std(axis=(0, 2, 3), dtype=np.float64)
    return tuple(float(v) for v in mean), tuple(float(max(v, 1e-6)) for v in std)


def _find_cifar(root: Path) -> Path:
    for folder in (root, root / "cifar-10-batches-py"):
        if all((folder / n).is_file() for n in CIFAR10_FILES):
            return folder
    missing = [n for n in CIFAR10_FILES if not (root / n).is_file()]
    raise InputError(
        f"CIFAR-10 python batches not found in {os.fspath(root)!r} or its 'cifar-10-batches-py' subfolder "
        f"(missing: {', '.join(missing)}). Expected files: {', '.join(CIFAR10_FILES)}; download and extract "
        "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and pass the folder."
    )


def _load_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One official pickled batch -> (uint8 (N, 3, 32, 32), int64 labels). Pickle is CIFAR's own format."""
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data, labels = batch[b"data"], batch[b"labels"]
        x = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(labels, dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        raise InputError(
            f"{os.fspath(path)!r} is not a CIFAR-10 python batch ({e}); re-extract the archive."
        ) from e
    if len(x) != len(y):
        raise InputError(
            f"{os.fspath(path)!r} has {len(x)} images but {len(y)} labels; re-extract the archive."
        )
    return x, y


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{name} must be an int >= {low}, got {value!r}.")
