"""Re-encode activation QCDQs into one 8-bit container type, keeping every code value.

- ``"uint8"`` (ONNX Runtime): ORT's x86 QDQ fusion needs the same 8-bit type on a conv's input and output
  and uint8 activations, so signed codes move to uint8 with zero point 128 (``[-127, 127] -> [1, 255]``).
- ``"int8"`` (TensorRT's symmetric int8): every activation int8 with zero point 0. Unsigned codes up to 127
  fit; an unsigned 8-bit activation (codes 0..255) does not, and is refused with the fix (a model quantized
  with ``target="tensorrt"`` has none: ``Target.unsigned_act_bits``).
The integer Clip is rewritten to the same codes, so the graph computes exactly what it did.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import onnx
from onnx import TensorProto

from export._graph import INT_RANGES, Graph, np_dtype
from export._qdq import ActChain, act_chains
from export.passes.registry import register_pass
from sdk.errors import ConfigError

__all__ = ["ActivationContainers", "CONTAINERS"]

CONTAINERS = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8}


def chain_readers(graph: Graph, chain: ActChain) -> list[str]:
    """Names of the nodes that read the dequantized tensor (the layers it feeds)."""
    return sorted({c.name or c.op_type for dq in chain.dqs for c in graph.consumers.get(dq.output[0], [])})


@dataclass(frozen=True)
class ActivationContainers:
    container: str  # "uint8" or "int8"

    def __post_init__(self) -> None:
        if self.container not in CONTAINERS:
            raise ValueError(f"container must be one of {sorted(CONTAINERS)}, got {self.container!r}")

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        target = CONTAINERS[self.container]
        changed = False
        for chain in act_chains(graph):
            if chain.params.dtype == target:
                continue
            if not chain.closed:
                if target == TensorProto.INT8:
                    raise ConfigError(
                        f"the quantized tensor {chain.source!r} is read by nodes other than "
                        "DequantizeLinear, so "
                        "it cannot be re-encoded as symmetric int8; export with the default lowering."
                    )
                continue
            c_lo, c_hi = chain.codes
            zp = 128 if target == TensorProto.UINT8 and c_lo < 0 else 0
            t_lo, t_hi = INT_RANGES[target]
            lo, hi = c_lo + zp, c_hi + zp
            if lo < t_lo or hi > t_hi:
                raise ConfigError(
                    f"the activation read by {', '.join(chain_readers(graph, chain))} has codes "
                    f"{c_lo}..{c_hi}, which do not fit a {self.container} container with zero point {zp} "
                    "(symmetric int8 holds unsigned codes up to 127). Quantize for the target, "
                    "sdk.quantize(model, config, target='tensorrt'), which keeps unsigned activations to 7 "
                    "bits of codes; or use a target without symmetric int8."
                )
            _rewrite(graph, chain, target, zp, lo, hi)
            changed = True
        return model, changed


def _rewrite(graph: Graph, chain: ActChain, target: int, zp: int, lo: int, hi: int) -> None:
    dt = np_dtype(target)
    base = chain.q.name or "q"
    zp_name = graph.add_initializer(np.array(zp, dt), f"{base}_zero_point")
    _set_input(chain.q, 2, zp_name)
    for dq in chain.dqs:
        _set_input(dq, 2, zp_name)
    t_lo, t_hi = INT_RANGES[target]
    if (lo, hi) == (t_lo, t_hi):
        if chain.clip is not None:
            graph.replace_uses(chain.clip.output[0], chain.q.output[0])
            graph.remove_nodes([chain.clip])
        return
    lo_name = graph.add_initializer(np.array(lo, dt), f"{base}_lo")
    hi_name = graph.add_initializer(np.array(hi, dt), f"{base}_hi")
    if chain.clip is not None:
        chain.clip.input[1], chain.clip.input[2] = lo_name, hi_name
        return
    mid = graph.unique(f"{chain.q.output[0]}_unclipped")
    clip = graph.make_node("Clip", [mid, lo_name, hi_name], [chain.q.output[0]], name=f"{base}_clip")
    chain.q.output[0] = mid
    graph.g.node.append(clip)


def _set_input(node: onnx.NodeProto, k: int, name: str) -> None:
    while len(node.input) <= k:
        node.input.append("")
    node.input[k] = name


register_pass(
    "int8_activations", partial(ActivationContainers, "int8"), stage="graph", excludes=("uint8_activations",)
)
register_pass(
    "uint8_activations", partial(ActivationContainers, "uint8"), stage="graph", excludes=("int8_activations",)
)
