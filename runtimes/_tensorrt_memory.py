"""CUDA memory for the TensorRT adapter, through cuda-python's runtime API (not torch: the deploy path stays
torch-free): checked calls, page-locked host buffers, device buffers and one stream.

Host staging buffers are pinned (``cudaMallocHost``) so ``cudaMemcpyAsync`` is truly asynchronous and a whole
batch (every chunk's copies and launches) is queued on the stream before one ``cudaStreamSynchronize``, as
NVIDIA's Python samples (``samples/python/common_runtime.py``) stage inference.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from sdk.errors import BpnasError, TargetUnavailable

__all__ = ["CudaBuffers", "TensorRTError", "check", "import_cudart", "stream_handle"]


class TensorRTError(BpnasError, RuntimeError):
    """TensorRT or CUDA refused a call at run time (the message names the call and what to do)."""


def import_cudart(install_hint: str) -> Any:
    """cuda-python's runtime module, ``cuda.bindings.runtime`` (cuda-python 12.6.1 and later)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError as e:
        raise TargetUnavailable(
            f"cuda-python >= 12.6.1 (cuda.bindings) is not installed: {install_hint}."
        ) from e
    return cudart


def stream_handle(stream: Any) -> int:
    """The integer handle ``execute_async_v3`` takes: ``get_cuda_native_handle`` where cuda-python has it
    (12.9.1 on, where ``int(stream)`` is deprecated), else ``int(stream)``."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle
    except ImportError:
        return int(stream)
    return int(get_cuda_native_handle(stream))


def _ok(err: Any) -> bool:
    return int(getattr(err, "value", err)) == 0  # cudaError_t.cudaSuccess


def check(result: Any, what: str) -> Any:
    """Unwrap a cuda-python ``(err, value...)`` result, raising TensorRTError naming ``what`` on error."""
    items: tuple[Any, ...] = result if isinstance(result, tuple) else (result,)
    err, *rest = items
    if not _ok(err):
        raise TensorRTError(
            f"CUDA call {what} failed with {err!r}; check the driver (nvidia-smi) and free GPU memory."
        )
    return rest[0] if len(rest) == 1 else (tuple(rest) or None)


class _Pinned:
    """A page-locked host buffer of float32, grown on demand (freed and reallocated)."""

    def __init__(self, cudart: Any) -> None:
        self._cudart, self.ptr, self.nbytes = cudart, 0, 0

    def view(self, shape: tuple[int, ...]) -> np.ndarray:
        nbytes = 4 * int(np.prod(shape))
        if nbytes > self.nbytes:
            self.free()
            self.ptr = int(check(self._cudart.cudaMallocHost(nbytes), "cudaMallocHost"))
            self.nbytes = nbytes
        raw = (ctypes.c_char * nbytes).from_address(self.ptr)
        return np.frombuffer(memoryview(raw), dtype=np.float32).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            check(self._cudart.cudaFreeHost(self.ptr), "cudaFreeHost")
        self.ptr, self.nbytes = 0, 0


class CudaBuffers:
    """One stream, a device buffer per named tensor (fixed size) and a pinned host buffer per tensor."""

    def __init__(self, cudart: Any, device_bytes: dict[str, int]) -> None:
        self._cudart = cudart
        self.stream: Any = check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self.handle = stream_handle(self.stream)
        self.device: dict[str, int] = {}
        self.host: dict[str, _Pinned] = {}
        try:
            for name, nbytes in device_bytes.items():
                self.device[name] = int(check(cudart.cudaMalloc(nbytes), f"cudaMalloc({name}, {nbytes} B)"))
                self.host[name] = _Pinned(cudart)
        except BpnasError:
            self.free()
            raise

    def to_device(self, name: str, host: np.ndarray) -> None:
        """Queue a copy of ``host`` (a view of this tensor's pinned buffer) to the device buffer."""
        kind = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        result = self._cudart.cudaMemcpyAsync(
            self.device[name], host.ctypes.data, host.nbytes, kind, self.stream
        )
        check(result, f"cudaMemcpyAsync(host -> {name})")

    def to_host(self, name: str, host: np.ndarray) -> None:
        """Queue a copy of the device buffer into ``host`` (a view of this tensor's pinned buffer)."""
        kind = self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        result = self._cudart.cudaMemcpyAsync(
            host.ctypes.data, self.device[name], host.nbytes, kind, self.stream
        )
        check(result, f"cudaMemcpyAsync({name} -> host)")

    def synchronize(self) -> None:
        check(self._cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def free(self) -> None:
        """Release everything; safe to call twice."""
        for pinned in self.host.values():
            pinned.free()
        for ptr in self.device.values():
            check(self._cudart.cudaFree(ptr), "cudaFree")
        self.host.clear()
        self.device.clear()
        if self.stream is not None:
            check(self._cudart.cudaStreamDestroy(self.stream), "cudaStreamDestroy")
            self.stream = None
