"""TensorRT's and cuda-python's real bindings: fetch the wheels once; read the names out of ``tensorrt.so``.

The ``tensorrt-cu12-bindings`` / ``tensorrt-cu13-bindings`` wheels hold ``tensorrt_bindings/tensorrt.so``,
which cannot be imported without the GPU libraries, but whose string table holds every class, method,
property and enum name pybind11 registers, and the docstrings (a property ``p`` appears as ``:ivar p:``).

Fetch (once, ~1 MB per wheel, into a cache OUTSIDE the repository; never committed):

    python tests/runtimes/_trt_bindings.py            # into ~/.cache/bpnas/trt-bindings
    BPNAS_TRT_BINDINGS=/some/dir python tests/runtimes/_trt_bindings.py
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("BPNAS_TRT_BINDINGS", Path.home() / ".cache" / "bpnas" / "trt-bindings"))
#: the wheels the API-surface test reads: the oldest and newest 10.x, JetPack 6's 10.3, the last 10.x with DLA
#: (10.7), the first 10.x where weak typing is deprecated (10.12), the first and newest 11.x, one cu13 build
WHEELS = (
    ("tensorrt-cu12-bindings", "10.0.1"),
    ("tensorrt-cu12-bindings", "10.3.0"),
    ("tensorrt-cu12-bindings", "10.7.0"),
    ("tensorrt-cu12-bindings", "10.12.0.36"),
    ("tensorrt-cu12-bindings", "10.16.1.11"),
    ("tensorrt-cu12-bindings", "11.0.0.114"),
    ("tensorrt-cu12-bindings", "11.4.0.106"),
    ("tensorrt-cu13-bindings", "11.4.0.106"),
)
#: cuda-python's runtime bindings (CUDA 12 and 13 builds) and the loader they import; these import and run
#: without a GPU (every call returns an error code), so the adapter's CUDA calls are checked by calling them
CUDA_WHEELS = (("cuda-bindings", "12.9.4"), ("cuda-bindings", "13.5.0"), ("cuda-pathfinder", "1.9.1"))


@dataclass(frozen=True)
class Bindings:
    """The strings of one bindings build: NUL-terminated names, and the ``:ivar name:`` property docs."""

    package: str
    version: str
    strings: frozenset[str]
    properties: frozenset[str]

    def has_name(self, name: str) -> str | None:
        """ "exact" when ``name`` is a string of its own, "tail" when only the end of a longer one (linkers
        merge a string into another that ends with it: "INT8" lives inside "UINT8"), None when absent."""
        if name in self.strings:
            return "exact"
        return "tail" if any(s.endswith(name) for s in self.strings) else None

    def has_property(self, name: str) -> bool:
        return name in self.properties


def _wheel_files() -> list[Path]:
    return sorted(CACHE.glob("tensorrt_cu1[0-9]_bindings-*.whl")) if CACHE.is_dir() else []


@functools.cache
def read(wheel: Path) -> Bindings:
    """The strings of ``tensorrt.so`` inside ``wheel`` (pure Python, no ``strings`` binary needed)."""
    package, version = wheel.name.split("-")[:2]
    with zipfile.ZipFile(wheel) as z:
        so = next(n for n in z.namelist() if n.endswith("/tensorrt.so"))
        data = z.read(so)
    words = {w.decode("ascii") for w in re.findall(rb"[\x20-\x7e\t\n]{2,}(?=\x00)", data)}
    props = {m for w in words for m in re.findall(r":ivar (\w+):", w)}
    return Bindings(package.replace("_", "-"), version, frozenset(words), frozenset(props))


def available() -> list[Bindings]:
    """Every bindings wheel in the cache, oldest first."""
    found = [read(w) for w in _wheel_files()]
    return sorted(found, key=lambda b: (tuple(int(p) for p in re.findall(r"\d+", b.version)), b.package))


def cuda_wheels() -> list[tuple[str, Path, Path]]:
    """(cuda-bindings version, its wheel, the cuda-pathfinder wheel) for every cuda-bindings wheel cached."""
    pathfinder = sorted(CACHE.glob("cuda_pathfinder-*.whl")) if CACHE.is_dir() else []
    if not pathfinder:
        return []
    return [(w.name.split("-")[1], w, pathfinder[-1]) for w in sorted(CACHE.glob("cuda_bindings-*.whl"))]


def fetch() -> None:
    """Download :data:`WHEELS` with ``pip download --no-deps`` into :data:`CACHE` (skips those present)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = CACHE.glob("*.whl")
    have = {f.name.split("-")[0].replace("_", "-") + "==" + f.name.split("-")[1] for f in wheels}
    for package, version in (*WHEELS, *CUDA_WHEELS):
        if f"{package}=={version}" in have:
            continue
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(CACHE)]
        subprocess.run([*cmd, f"{package}=={version}"], check=True)


if __name__ == "__main__":
    fetch()
    for b in available():
        print(f"{b.package} {b.version}: {len(b.strings)} strings, {len(b.properties)} documented properties")
