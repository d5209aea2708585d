"""Checking a requested torch device before work starts, so a CPU-only machine gets a clear error."""

from __future__ import annotations

from typing import Any

from sdk.errors import InputError

__all__ = ["check_device"]


def check_device(device: Any) -> Any:
    """``device`` back if torch can use it here; a CUDA device without CUDA raises InputError with the fix."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"device {device!r} is not a torch device; use 'cpu' or 'cuda' ({e}).") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise InputError(
                f"device {device!r} needs CUDA, but {build}; use device='cpu', or install a CUDA build of "
                "torch (https://pytorch.org/get-started/locally/) on a machine with an NVIDIA GPU."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(
                f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here; use cuda:0..."
            )
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"device {device!r} is not supported; use 'cpu' or 'cuda'.")
    return device
