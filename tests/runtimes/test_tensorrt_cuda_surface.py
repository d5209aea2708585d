"""The adapter's cuda-python calls, run against the real ``cuda.bindings.runtime`` (CUDA 12 and 13 builds).

cuda-python imports and answers without a GPU: every device call returns ``(cudaError_t, ...)`` with an
error code. So each ``cudart.<name>`` the adapter uses (read from its source with ``ast``) is looked up and
called with arguments of the kinds the adapter passes, which proves the name, the arity and the argument
types the binding accepts, and the adapter's own error handling is run on the real error enum. The wheels
come from tests/runtimes/_trt_bindings.py (run it once); each runs in a subprocess so the real ``cuda``
package never meets the stand-in. Skipped, saying so, without the wheels.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.runtimes import _trt_bindings

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("runtimes/_tensorrt_memory.py", "runtimes/tensorrt.py", "examples/gpu_smoke_tensorrt.py")
WHEELS = _trt_bindings.cuda_wheels()


def used_cuda_names() -> set[str]:
    """Every ``cudart.a[.b]`` / ``self._cudart.a[.b]`` chain in the adapter (and the smoke script)."""
    found = set()
    for rel in MODULES:
        for node in ast.walk(ast.parse((ROOT / rel).read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("cuda"):
                text = ast.unparse(node)
                for prefix in ("self._cudart.", "cudart."):
                    if text.startswith(prefix) and "(" not in text:
                        found.add(text[len(prefix) :])
    return {n for n in found if not any(m.startswith(n + ".") for m in found)}  # whole chains only


# Run inside the subprocess: look every name up, call the functions, run the adapter's error paths.
CHECK = r"""
import json, sys, types
from cuda.bindings import runtime as cudart
names = json.loads(sys.argv[1])
def resolve(path):
    obj = cudart
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj
missing = []
for n in names:
    try:
        resolve(n)
    except AttributeError:
        missing.append(n)
h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
stream = cudart.cudaStream_t(0)
args = {"cudaGetDeviceCount": (), "cudaGetDevice": (), "cudaGetDeviceProperties": (0,),
        "cudaStreamCreate": (), "cudaMalloc": (16,), "cudaMallocHost": (16,), "cudaFree": (0,),
        "cudaFreeHost": (0,),
        "cudaMemcpyAsync": (0, 0, 0, h2d, stream), "cudaStreamSynchronize": (stream,),
        "cudaStreamDestroy": (stream,), "cudaRuntimeGetVersion": (), "cudaDriverGetVersion": ()}
calls = {}
for n in names:
    if "." in n or n in missing or n not in args:
        continue
    result = resolve(n)(*args[n])
    calls[n] = type(result[0]).__name__
from runtimes._tensorrt_memory import CudaBuffers, TensorRTError
try:
    CudaBuffers(cudart, {"input": 16})
    buffers = "no error"
except TensorRTError as e:
    buffers = str(e)
sys.modules["tensorrt"] = types.SimpleNamespace(__version__="10.3.0")
from runtimes import tensorrt as adapter
from sdk.errors import TargetUnavailable
try:
    adapter._import_engine()
    engine = "no error"
except TargetUnavailable as e:
    engine = str(e)
unchecked = sorted(n for n in names if "." not in n and n not in args)
result = {"missing": missing, "calls": calls, "buffers": buffers, "engine": engine, "unchecked": unchecked}
from runtimes._tensorrt_memory import stream_handle
print(json.dumps({**result, "stream_int": stream_handle(cudart.cudaStream_t(7))}))
"""


@pytest.fixture(
    scope="module", params=WHEELS or [None], ids=lambda w: f"cuda-bindings-{w[0]}" if w else "none"
)
def cuda_run(request, tmp_path_factory):
    if request.param is None:
        pytest.skip(
            f"no cuda-bindings wheels in {_trt_bindings.CACHE}; run `python tests/runtimes/_trt_bindings.py`"
        )
    version, wheel, pathfinder = request.param
    site = tmp_path_factory.mktemp(f"cuda-{version}")
    for w in (wheel, pathfinder):
        with zipfile.ZipFile(w) as z:
            z.extractall(site)
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
    names = sorted(used_cuda_names())
    out = subprocess.run(
        [sys.executable, "-c", CHECK, json.dumps(names)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return names, json.loads(out.stdout.strip().splitlines()[-1])


def test_the_adapter_uses_the_calls_we_expect():
    names = used_cuda_names()
    assert {"cudaMallocHost", "cudaMemcpyAsync", "cudaStreamSynchronize", "cudaFreeHost"} <= names
    assert "cudaMemcpyKind.cudaMemcpyHostToDevice" in names


def test_every_cuda_name_exists_and_every_call_is_accepted(cuda_run):
    names, result = cuda_run
    assert result["missing"] == []
    assert result["unchecked"] == [], "give the new call representative arguments in CHECK"
    assert set(result["calls"]) == {n for n in names if "." not in n}
    assert set(result["calls"].values()) == {"cudaError_t"}  # (err, ...) tuples, no TypeError
    assert result["stream_int"] == 7  # the integer handle execute_async_v3 takes


def test_the_adapter_turns_real_cuda_errors_into_bpnas_errors(cuda_run):
    _, result = cuda_run
    assert result["buffers"].startswith("CUDA call cudaStreamCreate failed with <cudaError_t.cudaError")
    assert result["engine"].startswith("no CUDA device is visible")
