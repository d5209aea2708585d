"""Atomic per-epoch search checkpoints with every RNG the search consumes, so a killed search resumes to the
same result as an uninterrupted one.

Saved: supernet state (W, alphas, BN, theta), both optimizers, the LR schedule, the history, the global
torch/numpy/python RNG states, the supernet's path-sampling generator, and the state of every
``torch.Generator`` the data loaders shuffle or augment with (``loader.generator``, the sampler's, and any
held by ``collate_fn``). A ``DistributedSampler`` needs none: its order is a function of (seed, epoch).
Writes go to a temp file in the same directory, are fsynced, then renamed over ``search.pt``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sdk.errors import InputError

__all__ = ["CHECKPOINT_NAME", "loader_generators", "rng_state", "set_rng_state", "save_atomic", "load"]

CHECKPOINT_NAME = "search.pt"
FORMAT = "bpnas-search-checkpoint-v1"


def loader_generators(loaders: Iterable[Any]) -> list[torch.Generator]:
    """Every distinct torch.Generator a loader draws from, in a fixed order."""
    found: list[torch.Generator] = []
    for loader in loaders:
        holders = [loader, getattr(loader, "sampler", None), getattr(loader, "collate_fn", None)]
        batch_sampler = getattr(loader, "batch_sampler", None)
        holders += [batch_sampler, getattr(batch_sampler, "sampler", None)]
        for h in holders:
            if h is None:
                continue
            attrs = vars(h).values() if hasattr(h, "__dict__") else ()
            for g in [getattr(h, "generator", None), *attrs]:
                if isinstance(g, torch.Generator) and all(g is not f for f in found):
                    found.append(g)
    return found


def rng_state(generators: Iterable[torch.Generator]) -> dict[str, Any]:
    """Global torch/numpy/python RNG states plus the given generators' states (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    return {
        "torch": torch.get_rng_state(),
        "numpy": [
            kind,
            torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
        "python": random.getstate(),
        "generators": [g.get_state() for g in generators],
    }


def set_rng_state(state: dict[str, Any], generators: Iterable[torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    gens = list(generators)
    if len(gens) != len(state["generators"]):
        raise InputError(
            "the data loaders differ from the checkpointed search's; resume with the same loaders."
        )
    for g, s in zip(gens, state["generators"]):
        g.set_state(s)


def save_atomic(directory: str | os.PathLike[str], blob: dict[str, Any]) -> Path:
    """torch.save ``blob`` to directory/search.pt: temp file, fsync, rename (a kill leaves the old file)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CHECKPOINT_NAME
    tmp = folder / f".{CHECKPOINT_NAME}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        torch.save({"format": FORMAT, **blob}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path


def load(directory: str | os.PathLike[str], fingerprint: str) -> dict[str, Any] | None:
    """The checkpoint in ``directory`` (None if there is none); raises when it belongs to another search."""
    path = Path(directory) / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt files
        raise InputError(
            f"search checkpoint {os.fspath(path)!r} is unreadable ({e}); delete it to restart."
        ) from e
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise InputError(f"{os.fspath(path)!r} is not a bpnas search checkpoint; use another checkpoint_dir.")
    if blob.get("fingerprint") != fingerprint:
        raise InputError(
            f"the checkpoint in {os.fspath(directory)!r} belongs to a search with other settings (model, "
            "candidates, b_max, epochs, seed, ...); use another checkpoint_dir, or delete it to start over."
        )
    return blob
