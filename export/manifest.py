"""The writing side of the bundle format: what ``sdk.export`` adds to a :class:`runtimes.bundle.Manifest`
(the versions of the exporting machine's packages) and how it puts manifest.json on disk."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import targets
from runtimes.bundle import Manifest

__all__ = ["versions", "write_manifest"]

# distributions a bundle records the versions of (import-free lookup), besides every target's engine
_TOOLCHAIN = ("torch", "onnx", "qonnx", "onnxscript")


def versions(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """bpnas, Python and the installed ML/engine packages, looked up without importing them."""
    import sdk

    out = {"bpnas": sdk.__version__, "python": platform.python_version()}
    engines = {targets.get(n).distribution for n in targets.names()} - {"bpnas"}
    for dist in (*_TOOLCHAIN, *sorted(engines)):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    out.update(extra or {})
    return out


def write_manifest(manifest: Manifest, file: Path) -> None:
    """Write ``manifest`` as JSON to ``file`` in a bundle's temp directory, flushed to disk (the directory's
    rename is what makes the bundle appear atomically)."""
    with open(file, "w", encoding="utf-8") as f:
        f.write(manifest.to_json())
        f.flush()
        os.fsync(f.fileno())
