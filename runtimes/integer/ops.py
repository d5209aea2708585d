"""The small numpy steps the compiler binds (with :func:`functools.partial`) beside the kernels: quantizing
the input, requantizing, clamping, table lookups, flattening codes, adding a bias, dequantizing the output.

Each runs at inference time on the registers of a :class:`runtimes.integer.program.Program`.
"""

from __future__ import annotations

import numpy as np

from runtimes.integer import dyadic as D

__all__ = ["bias_add", "clip_op", "deq_out", "flatten_codes", "input_quant", "rescale_op", "table_op"]


def flatten_codes(x: np.ndarray) -> np.ndarray:
    """NHWC (or already flat) codes to the (N, C*H*W) order ONNX's Flatten of NCHW gives."""
    n = x.shape[0]
    if x.ndim == 2:
        return x
    if x.shape[1] * x.shape[2] == 1:
        return x.reshape(n, -1)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(n, -1)


def input_quant(x: np.ndarray, s: float, lo: int, hi: int, dt: type) -> np.ndarray:
    """``clamp(round_half_even(x / s))`` of float32 x and s, exactly: the float64 quotient of two float32
    numbers is a rounding tie only when the exact quotient is, and never crosses one (for |x / s| < 2^28)."""
    y = np.empty((x.shape[0], x.shape[2], x.shape[3], x.shape[1]), dtype=np.float64)
    np.divide(x.transpose(0, 2, 3, 1), s, out=y, dtype=np.float64)
    np.rint(y, out=y)
    np.clip(y, lo, hi, out=y)
    return y.astype(dt)


def rescale_op(
    *terms: np.ndarray, plan: D.RescalePlan, lo: int | None, hi: int | None, dt: type
) -> np.ndarray:
    return D.rescale(terms, plan, lo, hi, dt)


def clip_op(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip(x, lo, hi)


def table_op(
    *codes: np.ndarray, table: np.ndarray, los: tuple[int, ...], sizes: tuple[int, ...]
) -> np.ndarray:
    """Look up the output code of one or two operand codes in a flattened code table."""
    idx = codes[0].astype(np.int32)
    if los[0]:
        idx -= los[0]
    if len(codes) == 2:
        idx *= sizes[1]
        idx += codes[1]
        if los[1]:
            idx -= los[1]
    return table[idx]


def bias_add(x: np.ndarray, *, bias: np.ndarray) -> np.ndarray:
    return x + bias


def deq_out(x: np.ndarray, *, s: np.float32 | np.ndarray) -> np.ndarray:
    """The logits: codes (per-tensor float32 scale) or an accumulator (per-channel scales) to float32 NCHW."""
    if isinstance(s, np.ndarray):
        y = (x.astype(np.float64) * s).astype(np.float32)
    else:
        y = x.astype(np.float32) * s
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if y.ndim == 4 else y
