"""Layer names and precision widths, deploy side: which bpnas layer an engine's node name belongs to, and
how many bits of arithmetic an engine's precision name implies. ``runtimes.bundle`` re-exports them; the
adapters use them to report per-layer times and effective precision.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from sdk.config import FLOAT_BITS

__all__ = ["PRECISION_BITS", "expected_width", "map_layer", "module_path_layer", "precision_width"]

#: engine precision name -> bits of the arithmetic it implies (unknown names: float)
PRECISION_BITS: Mapping[str, int] = {"u4": 4, "i4": 4, "fp4": 4, "u8": 8, "i8": 8, "fp8": 8, "int-exact": 8,
                                     "bf16": 16, "f16": 16, "f32": 32, "i32": 32}  # fmt: skip
# suffixes engines append to fused or rewritten node names (ORT, OpenVINO)
_SUFFIXES = re.compile(r"(_token_\d+|_nchwc|_kernel_time|_output_\d+|/fq_weights_\d+)+$")


def precision_width(precision: str) -> int:
    """Bits of arithmetic an engine precision name implies: "u8" 8, "w4a3" 4, unknown names 32."""
    exact = re.fullmatch(r"w(\d+)a(\d+)", precision.lower())  # the integer runtime's exact widths
    if exact:
        return max(int(exact.group(1)), int(exact.group(2)))
    return PRECISION_BITS.get(precision.lower(), FLOAT_BITS)


def expected_width(pair: tuple[int, int], container: int = 8) -> int:
    """Widest side a layer at ``pair`` should run in on an engine with ``container``-bit integers."""
    if FLOAT_BITS in pair:
        return FLOAT_BITS
    return max(container, *pair)


def module_path_layer(node_name: str) -> str:
    """'/layer1/layer1.0/conv1/Conv' -> 'layer1.0.conv1' (torch exporter naming: module scopes, a container's
    child named with the container's prefix, then the op); '' when the name holds no module path."""
    parts = [p for p in node_name.strip("/").split("/")[:-1] if p]
    return ".".join(p for p, nxt in zip(parts, [*parts[1:], ""]) if not nxt.startswith(p + "."))


def map_layer(name: str, layers: Iterable[str]) -> str | None:
    """The bpnas layer an engine node name belongs to, or None.

    Exact names win; then the name without engine suffixes ("conv2_token_3" -> "conv2") or as a module path
    ("/layer1/layer1.0/conv1/Conv" -> "layer1.0.conv1"); then the longest layer name the node name starts
    with, followed by a separator ("conv3.relu_nchwc" -> "conv3", "conv2.weight_q" -> "conv2").
    """
    known = set(layers)
    if name in known:
        return name
    base = _SUFFIXES.sub("", name)
    if base in known:
        return base
    if base.startswith("/") and module_path_layer(base) in known:
        return module_path_layer(base)
    matches = [k for k in known if base.startswith(k) and base[len(k)] in "._/:"] if base else []
    return max(matches, key=len) if matches else None
