"""Data specs as the CLI and checkpoints write them: ``digits``, ``digits:UPSCALE``, ``cifar10:ROOT``,
``folder:ROOT:SIZE`` (ROOT/CLASS/* or ROOT/train|val/CLASS/*; SIZE is the side, or HxW)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sdk.errors import InputError

__all__ = ["load_data", "check_spec", "FORMS"]

FORMS = "digits, digits:UPSCALE, cifar10:ROOT or folder:ROOT:SIZE"


def _size(text: str, spec: str) -> int | tuple[int, int]:
    try:
        if "x" in text:
            h, w = (int(v) for v in text.split("x"))
            return (h, w)
        return int(text)
    except ValueError:
        raise InputError(
            f"data spec {spec!r}: folder specs need the image size last, folder:ROOT:SIZE "
            "(e.g. folder:photos:32 or folder:photos:48x64); images are resized to it."
        ) from None


def check_spec(spec: str) -> tuple[str, str, Any]:
    """(kind, root-or-arg, size) of ``spec``, raising before any data is read."""
    if not isinstance(spec, str) or not spec:
        raise InputError(f"a data spec is needed: {FORMS}.")
    kind, _, rest = spec.partition(":")
    if kind == "digits":
        try:
            return kind, rest, int(rest or 1)
        except ValueError:
            raise InputError(f"data spec {spec!r}: digits:UPSCALE takes an integer, e.g. digits:4.") from None
    if kind == "cifar10" and rest:
        return kind, rest, 32
    if kind == "folder" and rest:
        root, _, size = rest.rpartition(":")
        if not root:
            _size("", spec)  # raises: the size is required
        return kind, root, _size(size, spec)
    raise InputError(f"unknown data spec {spec!r}; use {FORMS}.")


def load_data(
    spec: str,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **kwargs: Any,
) -> Any:
    """``spec`` -> ``sdk.data.DataSplits``; ``mean``/``std`` fix an image folder's normalization."""
    from sdk import data

    kind, arg, size = check_spec(spec)
    if kind == "digits":
        return data.digits(upscale=size, **kwargs)
    if kind == "cifar10":
        return data.cifar10(arg, **kwargs)
    return data.image_folder(arg, size, mean=mean, std=std, **kwargs)
