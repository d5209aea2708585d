"""Calibration data: any iterable of batches (tensors, numpy arrays, (x, y) tuples), checked structurally."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from sdk.errors import InputError

__all__ = ["iter_batches"]


def iter_batches(
    loader: Iterable[Any],
    *,
    num_batches: int | None = None,
    ndim: int | None = None,
    device: str | torch.device = "cpu",
) -> Iterator[torch.Tensor]:
    """Yield float32 input batches on ``device``; raise InputError naming the batch for anything unusable.

    A batch is a tensor, a numpy array, or a tuple/list whose first item is one (the inputs of ``(x, y)``).
    Every batch must be numeric and finite, have ``ndim`` dimensions when given, and the same per-sample
    shape as the first. At most ``num_batches`` are taken; an empty loader raises.
    """
    if isinstance(loader, (torch.Tensor, np.ndarray)):
        raise InputError(
            "the calibration loader is a single array; pass an iterable of batches, e.g. [x] or a DataLoader."
        )
    if isinstance(loader, (str, bytes)) or not isinstance(loader, Iterable):
        raise InputError(
            f"the calibration loader must be an iterable of batches (DataLoader, list of tensors), "
            f"got {type(loader).__name__}."
        )
    if num_batches is not None and (
        isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1
    ):
        raise InputError(f"num_batches must be a positive int or None (all), got {num_batches!r}.")
    first_shape: tuple[int, ...] | None = None
    count = 0
    for i, batch in enumerate(loader):
        if num_batches is not None and i >= num_batches:
            break
        x = _as_tensor(batch, i)
        if ndim is not None and x.dim() != ndim:
            raise InputError(
                f"calibration batch {i} has shape {tuple(x.shape)} ({x.dim()}-D); the model takes {ndim}-D "
                f"batches{' (N, C, H, W)' if ndim == 4 else ''}. Add the batch axis or reshape the data."
            )
        if x.dim() == 0:
            raise InputError(f"calibration batch {i} is a scalar; batches are (N, ...) arrays of samples.")
        if x.shape[0] == 0:
            raise InputError(f"calibration batch {i} is empty (shape {tuple(x.shape)}); drop empty batches.")
        if first_shape is None:
            first_shape = tuple(x.shape[1:])
        elif tuple(x.shape[1:]) != first_shape:
            raise InputError(
                f"calibration batch {i} has per-sample shape {tuple(x.shape[1:])} but batch 0 had "
                f"{first_shape}; every batch must have the same sample shape."
            )
        x = x.to(device=device, dtype=torch.float32)
        if not bool(torch.isfinite(x).all()):
            raise InputError(f"calibration batch {i} contains NaN or inf; clean or normalise the data.")
        count += 1
        yield x
    if count == 0:
        raise InputError(
            "the calibration loader yielded no batches; pass a non-empty loader (check drop_last)."
        )


def _as_tensor(batch: Any, i: int) -> torch.Tensor:
    x = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "iuf":
            raise InputError(f"calibration batch {i} is a numpy array of dtype {x.dtype}; expected numbers.")
        return torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, torch.Tensor):
        if x.dtype == torch.bool or x.is_complex():
            raise InputError(f"calibration batch {i} has dtype {x.dtype}; expected real numbers.")
        return x.detach()
    raise InputError(
        f"calibration batch {i} is a {type(x).__name__}; expected a tensor, a numpy array, or an (x, y) "
        "tuple/list whose first item is one."
    )
