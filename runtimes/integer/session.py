"""The "integer" runtime's adapter entry (``load`` and the session): integer-only execution of the QDQ ONNX
artifact, the FPGA-style reference backend.

The artifact (DESIGN §4) is compiled once into a straight-line program (:mod:`runtimes.integer.compile`):
activation codes at their a-bit ranges, int8 weight codes, exact integer accumulation with the int32 bias,
and a dyadic requantization (``m * 2^-shift``, m of >= 31 bits, round half to even, clamp) straight to the
next quantizer's codes. ReLU/ReLU6 are clamps in the code domain; residual adds, max pooling and global
average pooling run on integers (code pairs of a residual add through exact lookup tables). The network input
is quantized as ``round(x / s)`` with the exact quotient and the logits codes are dequantized at the end;
nothing else is float, and a graph that would need a float tensor between quantizers is refused with an error
naming the node. Every code is thus the one exact arithmetic gives (DESIGN §2), which the PyTorch fake-quant
model's float32 forward only approximates: it flips codes whose exact value lies within ~1e-7 of a rounding
tie, as its float64 evaluation shows.

Integer GEMMs run through BLAS on float32 or float64 *containers* when the layer's proven accumulator bound
(:func:`runtimes.integer.kernels.accumulator_bound`, <= 2^24 resp. 2^53) makes every partial sum exact;
see :mod:`runtimes.integer.kernels` for the argument. The result is bit-identical to an int32 engine.

The session also exposes the codes at every quantizer (:meth:`IntegerSession.run_codes`, keyed by the
QuantizeLinear output name) for code-by-code comparison with the PyTorch fake-quant model, and
:func:`runtimes.integer.cost.integer_cycles` prices a layer table on a bit-serial MAC array. Depends on numpy
and onnx only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from runtimes.base import LayerPrecision, LayerTime, RuntimeOptions
from runtimes.bundle import QUANT_SCHEME, Manifest
from runtimes.integer.compile import compile_model
from runtimes.integer.packing import unpack_initializers
from runtimes.integer.program import LayerInfo, Program, QuantizerInfo
from sdk.errors import BundleError, InputError

__all__ = ["IntegerSession", "load", "load_model"]


class IntegerSession:
    """A compiled integer program; ``run`` takes float32 NCHW batches and returns float32 logits by name."""

    input_name: str = "input"
    output_names: tuple[str, ...] = ("logits",)  # the program has one output

    def __init__(self, program: Program, *, profiling: bool = False, threads: int | None = None) -> None:
        self._program: Program | None = program
        self._profiling = profiling
        self._times: dict[tuple[str, str], float] = {}
        self._runs = 0
        self._controller: Any = None
        # BLAS's own threads, not a pool of Python workers over im2col blocks: measured on ResNet-18 224
        # (2 cores) at 38.6 vs 66.0 ms per image at batch 1 and 32.4 vs 40.0 at batch 8, because BLAS splits
        # each GEMM without per-block Python overhead and reads a late layer's weights once, not per block.
        self._threads = max(1, threads if threads is not None else min(os.cpu_count() or 1, 8))
        try:
            from threadpoolctl import ThreadpoolController

            self._controller = ThreadpoolController()
        except ImportError:  # without threadpoolctl BLAS keeps its own default thread count
            pass

    @property
    def program(self) -> Program:
        if self._program is None:
            raise InputError("this integer session is closed; load the bundle again.")
        return self._program

    @contextmanager
    def _parallel(self) -> Iterator[None]:
        """BLAS limited to the session's thread count for the duration of a run."""
        if self._controller is None:
            yield
            return
        with self._controller.limit(limits=self._threads, user_api="blas"):
            yield

    def _execute(
        self, x: np.ndarray, keep: Mapping[str, int], feed: Mapping[int, np.ndarray] | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        prog = self.program
        x = np.asarray(x)
        if x.ndim != 4 or tuple(x.shape[1:]) != prog.input_shape:
            raise InputError(f"expected input (N, {', '.join(map(str, prog.input_shape))}), got {x.shape}.")
        if not np.isfinite(x).all():
            raise InputError("input contains NaN or inf.")
        x = np.ascontiguousarray(x, dtype=np.float32)
        keep_regs = set(keep.values())
        captured: dict[int, np.ndarray] = {}
        regs: dict[int, np.ndarray] = {prog.input_reg: x}
        with self._parallel():
            for i, op in enumerate(prog.ops):
                t0 = time.perf_counter() if self._profiling else 0.0
                value = op.fn(*[regs[r] for r in op.inputs])
                if self._profiling:
                    key = (op.name, op.op_type)
                    self._times[key] = self._times.get(key, 0.0) + (time.perf_counter() - t0) * 1e3
                if op.output in keep_regs:
                    captured[op.output] = value
                if feed and op.output in feed:
                    value = feed[op.output].astype(value.dtype)
                regs[op.output] = value
                for r in op.inputs:
                    if prog.last_use[r] == i:
                        regs.pop(r, None)
        self._runs += 1
        return regs[prog.output_reg], {name: captured[r] for name, r in keep.items()}

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """``{output name: logits (N, K) float32}`` for a float32 (N, C, H, W) batch."""
        return {self.output_names[0]: self._execute(x, {})[0]}

    def run_codes(
        self, x: np.ndarray, *, feed: Mapping[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """Debug: the int32 codes at every activation quantizer, keyed by its QuantizeLinear output name.

        Codes are those after the QCDQ integer Clip (the a-bit codes), laid out as ONNX does (NCHW or (N, F)).
        ``quantizers()`` says what each one quantizes and which nodes read it. ``feed`` replaces the codes of
        the named quantizers with given ones as they are computed (teacher forcing), so every quantizer can be
        checked on exactly the inputs a reference model saw, without earlier differences propagating.
        """
        prog = self.program
        regs = {}
        for name, arr in (feed or {}).items():
            if name not in prog.codes_regs:
                raise InputError(f"no quantizer named {name!r}; see quantizers().")
            r = prog.codes_regs[name]
            regs[r] = np.ascontiguousarray(arr.transpose(0, 2, 3, 1)) if prog.layouts[r] == "nhwc" else arr
        _, kept = self._execute(x, prog.codes_regs, regs)
        out = {}
        for name, arr in kept.items():
            if prog.layouts[prog.codes_regs[name]] == "nhwc":
                arr = arr.transpose(0, 3, 1, 2)
            out[name] = np.ascontiguousarray(arr, dtype=np.int32)
        return out

    def quantizers(self) -> list[QuantizerInfo]:
        return list(self.program.quantizers)

    def layers(self) -> list[LayerInfo]:
        """Each conv/linear layer as compiled: bits, proven accumulator bound, exact GEMM container."""
        return list(self.program.layers)

    def layer_times(self) -> list[LayerTime] | None:
        if not self._profiling:
            return None
        runs = max(self._runs, 1)
        return [LayerTime(name=n, op_type=t, ms=ms / runs) for (n, t), ms in self._times.items()]

    def effective_precision(self) -> list[LayerPrecision]:
        return [
            LayerPrecision(layer=l.name, kernel="int-gemm", precision=f"w{l.w_bits}a{l.a_bits}", upcast=False)
            for l in self.program.layers
        ]

    def close(self) -> None:
        self._program = None


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    try:
        yield
    except (OSError, onnx.onnx_cpp2py_export.checker.ValidationError, ValueError) as e:  # type: ignore[attr-defined]
        raise BundleError(f"the integer runtime could not read {path.name}: {e}") from e


def load_model(
    model: onnx.ModelProto | str | Path,
    *,
    layer_bits: Mapping[str, tuple[int, int]] | None = None,
    options: RuntimeOptions | None = None,
) -> IntegerSession:
    """Compile a QDQ ONNX model (object or path) into a session; ``layer_bits`` names each layer's (w, a)."""
    opts = options or RuntimeOptions()
    if opts.extra:
        keys = ", ".join(map(repr, opts.extra))
        raise InputError(f"the integer runtime takes no extra options; got {keys}.")
    if not isinstance(model, onnx.ModelProto):
        path = Path(model)
        with _reading(path):
            model = onnx.load(str(path))
    scheme = {p.key: p.value for p in model.metadata_props}.get("bpnas_quant_scheme")
    if scheme is not None and scheme != QUANT_SCHEME:
        raise BundleError(f"artifact quant scheme {scheme!r} is not {QUANT_SCHEME!r}; re-export the bundle.")
    program = compile_model(unpack_initializers(model), layer_bits)  # packed low-bit weights -> int8 codes
    return IntegerSession(program, profiling=opts.profiling, threads=opts.threads)


def load(artifact: Path, manifest: Manifest, options: RuntimeOptions) -> IntegerSession:
    """Loader for the "integer" runtime: compile the bundle's QDQ ONNX artifact to an integer program."""
    session = load_model(Path(artifact), layer_bits=manifest.layer_pairs(), options=options)
    session.input_name, session.output_names = manifest.input.name, (manifest.output.name,)
    return session
