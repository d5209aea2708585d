"""hls4ml engine adapter: the bundle's hls4ml project, its C simulation compiled with g++, called per sample.

The artifact is a tar of the project ``export.hls4ml_export`` generated and verified code for code against
the integer executor, plus ``bpnas_hls4ml.json`` (project name, library stamp, input shape, output size,
layers, the precision table). Loading extracts it once into ``options.cache_dir`` (default
``<bundle>/.hls4ml_cache``) under its sha256, compiles it there with g++ and the flags of the project's
``build_lib.sh`` (minutes for a CNN, then cached; the export leaves its own build there) and calls the
library's ``<project>_float(in, out)`` bridge through ctypes, one sample per call, as hls4ml's ``predict``
does. Running needs g++ once, not hls4ml.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runtimes.base import LayerPrecision, LayerTime, RuntimeOptions
from sdk.errors import BundleError, InputError, TargetUnavailable

if TYPE_CHECKING:
    from runtimes.bundle import Manifest

__all__ = [
    "Hls4mlSession",
    "load",
    "load_project",
    "extract_project",
    "build_library",
    "artifact_key",
    "INFO_NAME",
]

INFO_NAME = "bpnas_hls4ml.json"
CACHE_DIR = ".hls4ml_cache"  # beside the bundle's artifact unless options.cache_dir says otherwise


def artifact_key(artifact: Path) -> str:
    """The cache key of a project tar: its content, so a changed artifact compiles afresh."""
    return hashlib.sha256(Path(artifact).read_bytes()).hexdigest()[:24]


def _gxx() -> None:
    if shutil.which("g++") is None:
        raise TargetUnavailable("the hls4ml target compiles its C simulation with g++, which is not on PATH.")


def extract_project(artifact: Path, cache_dir: Path, key: str) -> Path:
    """The project extracted to ``cache_dir/key`` (once; written to a temp dir, then renamed)."""
    dest = cache_dir / key
    if (dest / INFO_NAME).is_file():
        return dest
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f"{key}.tmp-"))
    try:
        with tarfile.open(artifact, "r:") as tar:
            for m in tar.getmembers():  # plain files with relative, inward paths only
                p = Path(m.name)
                if not m.isfile() or p.is_absolute() or ".." in p.parts:
                    raise BundleError(f"{artifact.name}: unsafe entry {m.name!r} in the hls4ml project.")
            tar.extractall(tmp, filter="data")
        if not (tmp / INFO_NAME).is_file():
            raise BundleError(f"{artifact.name} has no {INFO_NAME}; re-export the bundle.")
        if dest.exists():
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


#: the C simulation reads its weights from text files on its first call (hls4ml's ``load_weights_from_txt``,
#: ``exit(1)`` when missing). hls4ml bakes the project's absolute path in; bpnas compiles the path as this
#: environment variable instead, set by the session before that first call, so a compiled library keeps
#: working when its bundle is moved or renamed (as ``sdk.export`` renames its temp dir).
WEIGHTS_ENV = "BPNAS_HLS4ML_WEIGHTS"
_FIRST_CALL = threading.Lock()


def build_library(project: Path, info: Mapping[str, Any]) -> Path:
    """``firmware/<project>-<stamp>.so`` compiled with g++ (hls4ml's ``build_lib.sh`` flags), unless there."""
    name = str(info["project"])
    lib = project / "firmware" / f"{name}-{info['stamp']}.so"
    if lib.is_file():
        return lib
    _gxx()
    flags = ["-O3", "-fPIC", "-std=c++17", "-Ifirmware/ap_types/", f'-DWEIGHTS_DIR=getenv("{WEIGHTS_ENV}")']
    tmp = lib.with_name(f"{lib.name}.tmp-{os.getpid()}")
    steps = [
        ["g++", *flags, "-c", f"firmware/{name}.cpp", "-o", f"{name}.o"],
        ["g++", *flags, "-c", f"{name}_bridge.cpp", "-o", f"{name}_bridge.o"],
        ["g++", "-O3", "-fPIC", "-shared", f"{name}.o", f"{name}_bridge.o", "-o", str(tmp)],
    ]
    try:
        for cmd in steps:
            done = subprocess.run(cmd, cwd=project, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise BundleError(
                    f"compiling the hls4ml C simulation in {project} failed ({' '.join(cmd[:2])} ...):\n"
                    f"{(done.stdout + done.stderr)[-2000:]}"
                )
        os.replace(tmp, lib)
    finally:
        tmp.unlink(missing_ok=True)
        for obj in (f"{name}.o", f"{name}_bridge.o"):
            (project / obj).unlink(missing_ok=True)
    return lib


class Hls4mlSession:
    """The compiled C simulation; ``run`` takes float32 NCHW batches, returns the float32 output by name."""

    input_name: str = "input"
    output_names: tuple[str, ...] = ("logits",)

    def __init__(self, lib: Path, info: Mapping[str, Any]) -> None:
        weights = lib.parent / "weights"
        if not weights.is_dir():
            raise BundleError(f"the hls4ml project at {lib.parent.parent} has no firmware/weights directory.")
        self._lib: Any = ctypes.CDLL(str(lib))
        self._fn = getattr(self._lib, f"{info['project']}_float")
        self._fn.restype = None
        ptr = np.ctypeslib.ndpointer(np.float32, flags="C_CONTIGUOUS")
        self._fn.argtypes = [ptr, ptr]
        self._nchw = tuple(int(d) for d in info["input_shape"])  # (C, H, W) or (K,)
        self._out = int(info["output_size"])
        self._layers = tuple(str(n) for n in info["layers"])
        self._calls = threading.Lock()
        with _FIRST_CALL:  # the first call reads the weights from the directory the variable names
            os.environ[WEIGHTS_ENV] = str(weights.resolve())
            self._fn(np.zeros(int(np.prod(self._nchw)), np.float32), np.zeros(self._out, np.float32))

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """``{output name: (N, K) float32}``: the output quantizer's values, as the integer executor gives."""
        return {self.output_names[0]: self.run_array(x)}

    def run_array(self, x: np.ndarray) -> np.ndarray:
        if self._lib is None:
            raise InputError("this hls4ml session is closed; load the bundle again.")
        x = np.asarray(x)
        if x.ndim != 1 + len(self._nchw) or tuple(x.shape[1:]) != self._nchw:
            raise InputError(f"expected input (N, {', '.join(map(str, self._nchw))}), got {x.shape}.")
        if not np.isfinite(x).all():
            raise InputError("input contains NaN or inf.")
        xs = np.ascontiguousarray(x, dtype=np.float32)  # NCHW: the project starts with qonnx's Transpose
        out = np.zeros((x.shape[0], self._out), np.float32)
        with self._calls:  # one call at a time: the C simulation keeps state in statics
            for i in range(x.shape[0]):
                row = np.zeros(self._out, np.float32)
                self._fn(np.ascontiguousarray(xs[i]), row)
                out[i] = row
        return out

    def layer_times(self) -> list[LayerTime] | None:
        return None

    def effective_precision(self) -> list[LayerPrecision]:
        return [LayerPrecision(name, "hls4ml-csim", "ap_fixed-exact", False) for name in self._layers]

    def close(self) -> None:
        self._lib = None


def load_project(artifact: Path, cache_dir: Path, key: str) -> Hls4mlSession:
    """Extract (cached by ``key``), compile (cached), link."""
    project = extract_project(artifact, cache_dir, key)
    return session_for(project)


def session_for(project: Path) -> Hls4mlSession:
    """A session on an extracted (or freshly generated) project: compiled unless already, then linked."""
    info = json.loads((project / INFO_NAME).read_text(encoding="utf-8"))
    return Hls4mlSession(build_library(project, info), info)


def load(artifact: Path, manifest: Manifest, options: RuntimeOptions) -> Hls4mlSession:
    """Loader for the "hls4ml" runtime: the bundle's project, compiled once into the cache."""
    if options.extra:
        raise InputError(
            f"the hls4ml runtime takes no extra options; got {', '.join(map(repr, options.extra))}."
        )
    cache = Path(options.cache_dir) if options.cache_dir else Path(artifact).parent / CACHE_DIR
    session = load_project(Path(artifact), cache, artifact_key(artifact))
    session.input_name, session.output_names = manifest.input.name, (manifest.output.name,)
    return session
