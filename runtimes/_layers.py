"""Helpers the adapters share: which layers a bundle has, and mapping engine node names back to them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from sdk.config import FLOAT_BITS

__all__ = ["bundle_pairs", "map_layer", "precision_width", "expected_width"]

# engine precision name -> bits of the arithmetic it implies
_WIDTH = {"u8": 8, "i8": 8, "i4": 4, "u4": 4, "int-exact": 8, "bf16": 16, "f16": 16, "f32": 32, "i32": 32}
# suffixes ORT and OpenVINO append to fused or rewritten nodes
_SUFFIXES = re.compile(r"(_token_\d+|_nchwc|_kernel_time|_output_\d+|/fq_weights_\d+)+$")


def bundle_pairs(manifest: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """Layer name -> (w_bits, a_bits) from the manifest's config, in model order."""
    layers = manifest.get("config", {}).get("layers", {})
    return {str(k): (int(v[0]), int(v[1])) for k, v in layers.items()}


def precision_width(precision: str) -> int:
    """Bits of arithmetic an engine precision name implies: "u8" 8, "w4a3" 4, unknown names 32."""
    exact = re.fullmatch(r"w(\d+)a(\d+)", precision.lower())  # the integer runtime's exact widths
    if exact:
        return max(int(exact.group(1)), int(exact.group(2)))
    return _WIDTH.get(precision.lower(), FLOAT_BITS)


def expected_width(pair: tuple[int, int], container: int = 8) -> int:
    """Widest side a layer at ``pair`` should run in on an engine with ``container``-bit integers."""
    if FLOAT_BITS in pair:
        return FLOAT_BITS
    return max(container, *pair)


def map_layer(name: str, layers: Iterable[str]) -> str | None:
    """The bpnas layer an engine node name belongs to, or None.

    Exact names win; then the name without engine suffixes ("conv2_token_3" -> "conv2"); then the longest
    layer name the node name starts with, followed by a separator ("conv3.relu_nchwc" -> "conv3").
    """
    known = set(layers)
    if name in known:
        return name
    base = _SUFFIXES.sub("", name)
    if base in known:
        return base
    matches = [k for k in known if base.startswith(k) and base[len(k)] in "._/:"] if base else []
    return max(matches, key=len) if matches else None
