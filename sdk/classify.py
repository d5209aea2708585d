"""Predictions for people: top-k labels with softmax probabilities, for image files, folders and globs.

    >>> p = sdk.load("model.bpnas")
    >>> for c in sdk.classify(p, ["cam/*.png"], k=3):
    ...     print(c.source, c.label, c.prob)

Deploy-side: numpy only, no torch.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import InputError

__all__ = ["Classification", "classify", "softmax", "top_k", "expand_images"]

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


@dataclass(frozen=True)
class Classification:
    """One input's ``k`` best classes, most probable first (``probs`` sum to <= 1 over all classes)."""

    source: str
    labels: tuple[str, ...]
    probs: tuple[float, ...]
    indices: tuple[int, ...]

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def prob(self) -> float:
        return self.probs[0]

    def to_dict(self) -> dict[str, Any]:
        top = [
            {"label": lb, "prob": p, "index": i} for lb, p, i in zip(self.labels, self.probs, self.indices)
        ]
        return {"source": self.source, "top": top}


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, classes) logits, computed stably in float64, returned as float32."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def top_k(
    logits: np.ndarray, labels: Sequence[str] | None, k: int, sources: Sequence[str]
) -> list[Classification]:
    """One Classification per row of ``logits`` (labels default to class indices)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive int, got {k!r}.")
    probs = softmax(np.atleast_2d(logits))
    k = min(k, probs.shape[1])
    out = []
    for src, row in zip(sources, probs):
        idx = np.argsort(-row, kind="stable")[:k]
        names = tuple(labels[i] if labels else str(i) for i in idx)
        out.append(Classification(src, names, tuple(float(row[i]) for i in idx), tuple(int(i) for i in idx)))
    return out


def expand_images(items: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Image paths from files, folders (their images, sorted, not recursive) and glob patterns, in order."""
    out: list[str] = []
    for item in items:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            found = sorted(os.fspath(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
            if not found:
                raise InputError(f"folder {text!r} holds no images ({', '.join(sorted(IMAGE_EXTS))}).")
            out += found
        elif path.is_file():
            out.append(text)
        elif glob.has_magic(text):
            found = sorted(p for p in glob.glob(text) if Path(p).suffix.lower() in IMAGE_EXTS)
            if not found:
                raise InputError(f"no images match {text!r}.")
            out += found
        else:
            raise InputError(f"image {text!r} does not exist (pass files, folders or glob patterns).")
    return out


def classify(predictor: Any, images: Any, k: int = 5, *, batch: int = 32) -> list[Classification]:
    """Top-``k`` labels and probabilities from a Predictor for image paths/folders/globs (or one path), or
    for an array batch / list of frames (sources are then ``"0"``, ``"1"``, ...)."""
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    if (
        isinstance(images, (list, tuple))
        and images
        and all(isinstance(i, (str, os.PathLike)) for i in images)
    ):
        paths = expand_images(images)
        out: list[Classification] = []
        for i in range(0, len(paths), batch):
            chunk = paths[i : i + batch]
            out += top_k(predictor.predict(chunk), predictor.labels, k, chunk)
        return out
    logits = np.atleast_2d(predictor.predict(images))
    return top_k(logits, predictor.labels, k, [str(i) for i in range(len(logits))])
