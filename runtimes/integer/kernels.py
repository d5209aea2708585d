"""Kernels of the integer runtime: exact integer GEMM through BLAS, depthwise convolution, pooling.

Every array that holds integers here holds them *exactly*, whatever its container:

- Activation codes are uint8/int8 (int16/int32 only for odd ranges).
- Accumulators live in float32 when the layer's proven bound (:func:`accumulator_bound`) is below 2^24, else
  in float64 (bound below 2^53). Each partial sum of an integer dot product is an integer no larger in
  magnitude than the sum of the absolute products, which the bound covers, so every partial sum is
  representable and BLAS computes it exactly in any summation order (with or without FMA).

Requantization of the results (dyadic multipliers, exact rounding) is :mod:`runtimes.integer.dyadic`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "ACC_LIMIT",
    "F32_LIMIT",
    "F64_LIMIT",
    "accumulator_bound",
    "code_dtype",
    "IntWeights",
    "conv2d",
    "depthwise_conv2d",
    "exact_splits",
    "exact_float_dtype",
    "gemm",
    "max_pool",
    "window_sum",
]

ACC_LIMIT = 2**31  # |acc| < 2^31: an int32 accumulator
F32_LIMIT = 2**24  # integers (and partial sums) below this are exact in float32
F64_LIMIT = 2**53  # ... and below this in float64


def accumulator_bound(k: int, w_max: int, a_max: int, bias_max: int = 0) -> int:
    """Largest |acc| a K-term dot product of codes can reach: ``K * max|w| * max|a| + max|bias|``."""
    return int(k) * int(w_max) * int(a_max) + int(bias_max)


def exact_float_dtype(bound: int) -> type[np.floating]:
    """The narrowest float type in which every integer of magnitude <= ``bound`` (and every partial sum of
    a dot product bounded by it) is exact: float32 below 2^24, float64 below 2^53."""
    if bound < 2**24:
        return np.float32
    if bound < F64_LIMIT:
        return np.float64
    raise ValueError(f"accumulator bound {bound} >= 2^53 cannot be computed exactly through float BLAS")


def code_dtype(lo: int, hi: int) -> type[np.integer]:
    """Smallest integer container for codes in [lo, hi]."""
    for dt in (np.uint8, np.int8, np.int16, np.int32):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return dt
    return np.int64


# -- convolution and GEMM ------------------------------------------------------------------------------------
BLOCK_BYTES = 8 << 20  # im2col block size: big enough for an efficient GEMM, small enough to stay in cache
BLOCK_ROWS = 2048

Epilogue = Callable[[np.ndarray], np.ndarray]


def _pad(x: np.ndarray, pads: tuple[int, int, int, int], value: float | int = 0) -> np.ndarray:
    t, l, b, r = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=value)


def _out_size(size: int, k: int, stride: int, dilation: int, pad: int) -> int:
    return (size + pad - dilation * (k - 1) - 1) // stride + 1


def exact_splits(w_abs: np.ndarray, a_max: int, limit: int = F32_LIMIT) -> tuple[int, ...]:
    """Boundaries along K (rows of the (K, Cout) |weight| matrix) such that every channel's partial dot
    product over one piece is bounded by ``sum |w| * a_max < limit``: each piece is an exact float32 GEMM."""
    k = w_abs.shape[0]
    if int(w_abs.sum(axis=0, dtype=np.int64).max(initial=0)) * a_max < limit:
        return (0, k)
    cum = np.concatenate([np.zeros((1, w_abs.shape[1]), np.int64), np.cumsum(w_abs.astype(np.int64), axis=0)])
    cuts = [0]
    while cuts[-1] < k:
        start = cuts[-1]
        over = ((cum[start + 1 :] - cum[start]) * a_max >= limit).any(axis=1)
        first = int(np.argmax(over)) if over.any() else k - start
        if first == 0:
            raise ValueError(
                f"a single weight row times {a_max} reaches {limit}; no exact float32 split exists"
            )
        cuts.append(start + first)
    return tuple(cuts)


@dataclass(frozen=True)
class IntWeights:
    """Weight codes as float32 GEMM operands, cut along K so each partial dot product is exact in float32;
    partials (when there are several) add up in float64, exact below 2^53."""

    w: np.ndarray  # (groups, K, Cout / groups) float32
    splits: tuple[int, ...]
    acc_dtype: type  # float32 with one piece and a bound below 2^24 (bias included), else float64

    @classmethod
    def prepare(cls, w: np.ndarray, a_max: int, bound: int) -> IntWeights:
        """``w`` is (groups, K, Cout / groups) integer codes; ``bound`` the layer's accumulator bound."""
        groups, k, cog = w.shape
        w_abs = np.abs(w).transpose(1, 0, 2).reshape(k, groups * cog)
        splits = exact_splits(w_abs, max(a_max, 1))
        acc = np.float32 if len(splits) == 2 and bound < F32_LIMIT else np.float64
        return cls(np.ascontiguousarray(w.astype(np.float32)), splits, acc)

    def matmul(self, cols: np.ndarray, g: int = 0) -> np.ndarray:
        w = self.w[g]
        s = self.splits
        if len(s) == 2:
            out = np.matmul(cols, w)
            return out if self.acc_dtype is np.float32 else out.astype(np.float64)
        acc = np.matmul(cols[:, s[0] : s[1]], w[s[0] : s[1]]).astype(np.float64)
        for a, b in zip(s[1:-1], s[2:]):
            acc += np.matmul(cols[:, a:b], w[a:b])
        return acc


def _blocks(n: int, ho: int, wo: int, rows: int) -> list[tuple[int, int, int, int]]:
    """(image start, image end, row start, row end) blocks of at most ``rows`` output pixels (whole output
    rows, or whole images when an image fits)."""
    if ho * wo > rows:
        rb = max(1, rows // wo)
        return [(i, i + 1, r, min(ho, r + rb)) for i in range(n) for r in range(0, ho, rb)]
    nb = max(1, rows // (ho * wo))
    return [(i, min(n, i + nb), 0, ho) for i in range(0, n, nb)]


def conv2d(
    x: np.ndarray,
    weights: IntWeights,
    *,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    dilations: tuple[int, int],
    bias: np.ndarray | None = None,
    epilogue: Epilogue | None = None,
) -> np.ndarray:
    """Integer conv of NHWC codes by im2col in cache-sized blocks (BLAS threads split each GEMM); each
    block's accumulator (+ bias) goes through ``epilogue`` (the fused requantization) while it is still in
    cache. Returns NHWC."""
    n, h, wd, c = x.shape
    kh, kw = kernel
    sh, sw = strides
    dh, dw = dilations
    groups, kdim, cog = weights.w.shape
    cg = c // groups
    ho = _out_size(h, kh, sh, dh, pads[0] + pads[2])
    wo = _out_size(wd, kw, sw, dw, pads[1] + pads[3])
    xp = _pad(x, pads)
    rows = max(64, min(BLOCK_ROWS, BLOCK_BYTES // (4 * kdim)))
    xw = None
    if groups == 1 and kw > 1 and c < 16:  # few channels (the stem): gather whole kernel rows at once
        win = sliding_window_view(xp, (kw - 1) * dw + 1, axis=2)[:, :, : sw * (wo - 1) + 1 : sw, :, ::dw]
        xw = np.ascontiguousarray(win.transpose(0, 1, 2, 4, 3), dtype=np.float32)  # (N, Hp, Wo, kw, C)
    out: list[np.ndarray] = []

    def work(block: tuple[int, int, int, int]) -> None:
        n0, n1, r0, r1 = block
        nb, nrow = n1 - n0, r1 - r0
        accs = []
        for g in range(groups):
            if xw is not None:
                buf = np.empty((nb, nrow, wo, kh, kw * c), dtype=np.float32)
                for i in range(kh):
                    y0 = r0 * sh + i * dh
                    buf[:, :, :, i, :] = xw[n0:n1, y0 : y0 + sh * (nrow - 1) + 1 : sh].reshape(
                        nb, nrow, wo, -1
                    )
                cols = buf.reshape(-1, kdim)
            elif kh == kw == 1 and groups == 1:
                src = xp[n0:n1, r0 * sh : (r1 - 1) * sh + 1 : sh, 0 : (wo - 1) * sw + 1 : sw, :]
                cols = src.reshape(-1, c).astype(np.float32)
            else:
                buf = np.empty((nb, nrow, wo, kh, kw, cg), dtype=np.float32)
                for i in range(kh):
                    y0 = r0 * sh + i * dh
                    for j in range(kw):
                        x0 = j * dw
                        buf[:, :, :, i, j, :] = xp[
                            n0:n1, y0 : y0 + sh * (nrow - 1) + 1 : sh, x0 : x0 + sw * (wo - 1) + 1 : sw,
                            g * cg : (g + 1) * cg,
                        ]  # fmt: skip
                cols = buf.reshape(-1, kdim)
            accs.append(weights.matmul(cols, g))
        acc = accs[0] if groups == 1 else np.concatenate(accs, axis=1)
        if bias is not None:
            acc += bias
        res = epilogue(acc) if epilogue is not None else acc
        if not out:
            out.append(np.empty((n, ho, wo, res.shape[-1]), dtype=res.dtype))
        out[0][n0:n1, r0:r1] = res.reshape(nb, nrow, wo, -1)

    for block in _blocks(n, ho, wo, rows):
        work(block)
    return out[0]


def depthwise_conv2d(
    x: np.ndarray,
    w: np.ndarray,
    *,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    dilations: tuple[int, int],
    bias: np.ndarray | None = None,
    epilogue: Epilogue | None = None,
) -> np.ndarray:
    """Depthwise conv (one filter per channel): one exact multiply-add pass per tap; ``w`` is (kh*kw, C) in
    the exact accumulator type."""
    n, h, wd, c = x.shape
    kh, kw = kernel
    sh, sw = strides
    dh, dw = dilations
    ho = _out_size(h, kh, sh, dh, pads[0] + pads[2])
    wo = _out_size(wd, kw, sw, dw, pads[1] + pads[3])
    xp = _pad(x, pads)
    acc = None
    for t in range(kh * kw):
        i, j = divmod(t, kw)
        tap = xp[:, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw, :]
        if acc is None:
            acc = np.multiply(tap, w[t], dtype=w.dtype)
        else:
            acc += np.multiply(tap, w[t], dtype=w.dtype)
    assert acc is not None
    if bias is not None:
        acc += bias
    if epilogue is None:
        return acc
    return epilogue(acc.reshape(-1, c)).reshape(n, ho, wo, c)


def gemm(
    x: np.ndarray, weights: IntWeights, *, bias: np.ndarray | None = None, epilogue: Epilogue | None = None
) -> np.ndarray:
    """(N, K) codes times the (K, Cout) weight codes, exact; plus bias, then ``epilogue``."""
    acc = weights.matmul(x.astype(np.float32))
    if bias is not None:
        acc += bias
    return epilogue(acc) if epilogue is not None else acc


# -- pooling -------------------------------------------------------------------------------------------------
def max_pool(
    x: np.ndarray,
    *,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    pad_value: float | int,
) -> np.ndarray:
    """NHWC max pool; ``pad_value`` must not exceed any real element (the code range's low end)."""
    n, h, w, c = x.shape
    kh, kw = kernel
    sh, sw = strides
    ho = _out_size(h, kh, sh, 1, pads[0] + pads[2])
    wo = _out_size(w, kw, sw, 1, pads[1] + pads[3])
    xp = _pad(x, pads, pad_value)
    out = xp[:, 0 : sh * (ho - 1) + 1 : sh, 0 : sw * (wo - 1) + 1 : sw, :].copy()
    for t in range(1, kh * kw):
        i, j = divmod(t, kw)
        np.maximum(out, xp[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :], out=out)
    return out


def window_sum(
    x: np.ndarray,
    *,
    kernel: tuple[int, int] | None,
    strides: tuple[int, int] = (1, 1),
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> np.ndarray:
    """Sum over each pooling window (NHWC, zero padding), or over all of H, W when ``kernel`` is None."""
    if kernel is None:
        return x.sum(axis=(1, 2), keepdims=True, dtype=x.dtype)
    xp = _pad(x, pads)
    win = sliding_window_view(xp, kernel, axis=(1, 2))[:, :: strides[0], :: strides[1]]
    return win.sum(axis=(-2, -1), dtype=x.dtype)
