"""hls4ml export: a bpnas QONNX graph -> an hls4ml C++ project whose C simulation matches the spec exactly.

Steps: qonnx's clean-up and channels-last conversion (what hls4ml's ONNX front end requires), the global
average pool rewritten as a channels-last ``AveragePool`` (hls4ml's global pool reads channels-first shapes
as channels-last), every fixed-point type derived from the quantizers (:mod:`export._hls4ml_precision`),
weight quantizers folded into constants of their exact type, conversion with hls4ml's Vivado backend
(``io_parallel``), an audit that no type was left at hls4ml's default, then the C simulation compiled
with g++.
:func:`verify_codes` compares its outputs with the integer executor; the bundle ships only a project that
passed. The artifact is the project (sources, weights, ``hls4ml_config.yml``, ``build_lib.sh``) as a tar.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from export._hls4ml_precision import SUPPORTED_OPS, Grid, LayerPrecision, derive_precisions
from export.onnx_qdq import Traced
from export.options import LoweringOptions
from export.qonnx_export import lower_qonnx
from runtimes.bundle import ArtifactEntry, sha256_file
from runtimes.hls4ml import CACHE_DIR, INFO_NAME, Hls4mlSession, artifact_key, session_for
from sdk.errors import ConfigError, TargetUnavailable

__all__ = [
    "Hls4mlProject",
    "convert",
    "prepare",
    "pack_project",
    "precision_table",
    "verify_codes",
    "write_artifact",
    "bundle_artifact",
    "ARTIFACT",
    "PROJECT",
    "SENTINEL",
]

ARTIFACT = "model.hls4ml.tar"  # the artifact's file name in a bundle
PROJECT = "bpnas"  # hls4ml's project name: the C-sim exports bpnas_float / bpnas_double
#: hls4ml's model-wide default type, set to a width no derived type has: any tensor still at it after
#: conversion was missed by the derivation, and the export refuses (the audit in :func:`convert`).
SENTINEL = "fixed<47,23>"
_BUILD_OUTPUTS = (".so", ".o")


@dataclass(frozen=True)
class Hls4mlProject:
    """A converted hls4ml project: its directory, hls4ml's model graph, the precision table and, once
    compiled, the C simulation (the runtime's own session on the very library the bundle caches)."""

    path: Path
    model: Any  # hls4ml.model.ModelGraph
    input_grid: Grid
    output_grid: Grid
    table: tuple[LayerPrecision, ...]
    session: Hls4mlSession | None = None

    def run(self, x: np.ndarray) -> np.ndarray:
        """The C simulation on a float32 NCHW batch; returns the output values (codes * output scale)."""
        if self.session is None:
            raise ConfigError("this hls4ml project was converted with compile=False; it cannot run.")
        return self.session.run_array(x)


def _require() -> Any:
    try:
        import hls4ml
        import qonnx  # noqa: F401
    except ImportError as e:
        raise TargetUnavailable(
            f"the hls4ml target needs hls4ml and qonnx ({e.name} is missing): pip install 'bpnas[fpga]'."
        ) from None
    if shutil.which("g++") is None:
        raise TargetUnavailable("the hls4ml target compiles its C simulation with g++, which is not on PATH.")
    return hls4ml


def _tag_layers(model: onnx.ModelProto) -> None:
    """Keep each node's bpnas name in its doc_string: qonnx's clean-up renames nodes (Conv_0, ...)."""
    for n in model.graph.node:
        if n.name and not n.doc_string:
            n.doc_string = n.name


def prepare(qonnx_model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, str]]:
    """(the cleaned channels-last graph hls4ml reads, ONNX node name -> bpnas layer name)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.gemm_to_matmul import GemmToMatMul
    from qonnx.util.cleanup import cleanup_model

    model = onnx.ModelProto()
    model.CopyFrom(qonnx_model)
    _tag_layers(model)
    for v in (model.graph.input[0], model.graph.output[0]):  # hls4ml runs one sample at a time
        v.type.tensor_type.shape.dim[0].Clear()
        v.type.tensor_type.shape.dim[0].dim_value = 1
    with contextlib.redirect_stdout(io.StringIO()):
        w = cleanup_model(ModelWrapper(model))
        gemms = [n.doc_string for n in w.model.graph.node if n.op_type == "Gemm"]
        with warnings.catch_warnings():  # it warns about opsets > 9, then handles them (our Gemms are plain)
            warnings.simplefilter("ignore", UserWarning)
            w = w.transform(GemmToMatMul())
        w = cleanup_model(w)
    matmuls = [n for n in w.model.graph.node if n.op_type == "MatMul" and not n.doc_string]
    for n, name in zip(matmuls, gemms):  # GemmToMatMul makes new nodes: carry the names over, in order
        n.doc_string = name
    out = to_channels_last(w.model)
    names = {n.name: n.doc_string for n in out.graph.node if n.doc_string and n.op_type in ("Conv", "MatMul")}
    return out, names


_NHWC = (0, 2, 3, 1)
_CHANNELS_LAST = "qonnx.custom_op.channels_last"
_LAYOUT_FREE = {"Quant", "Relu", "Add", "MatMul", "Flatten"}  # elementwise, or rank <= 2 after the pool


def to_channels_last(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every rank-4 tensor NHWC: one Transpose after the input, conv weights ``(M, kh, kw, C)``, Conv and
    MaxPool in qonnx's channels-last domain, the global average pool an ``AveragePool`` over the whole map.

    Done here, not by qonnx's ``ConvertToChannelsLastAndClean``: on a residual fork (a tensor read by an Add
    and by the next conv's quantizer) it leaves a stray Transpose on data already channels-last (resnet20:
    every output wrong). A per-tensor quantizer, ReLU and Add ignore layout, so permuting every rank-4
    tensor and weight by one perm is the whole conversion for bpnas graphs."""
    graph = model.graph
    for node in graph.node:
        if node.op_type not in _LAYOUT_FREE | {"Conv", "MaxPool", "GlobalAveragePool"}:
            raise ConfigError(
                f"hls4ml: {node.op_type} {node.name} is not an op bpnas hands to hls4ml exactly (supported: "
                f"{', '.join(sorted(SUPPORTED_OPS))}); export refused. The integer target runs it."
            )
    for t in graph.initializer:
        if len(t.dims) == 4:
            t.CopyFrom(
                numpy_helper.from_array(
                    np.ascontiguousarray(numpy_helper.to_array(t).transpose(_NHWC)), t.name
                )
            )
    for v in [*graph.value_info, *graph.output]:
        dims = v.type.tensor_type.shape.dim
        if len(dims) == 4:
            values = [dims[i].dim_value for i in _NHWC]
            for d, value in zip(dims, values):
                d.Clear()
                d.dim_value = value
    if any(len(v.type.tensor_type.shape.dim) == 4 for v in graph.output):
        raise ConfigError(
            "hls4ml: a rank-4 model output; bpnas hands classifiers (rank-2 outputs) to hls4ml."
        )
    nodes = []
    source = graph.input[0]
    in_dims = [d.dim_value for d in source.type.tensor_type.shape.dim]
    if len(in_dims) == 4:
        nhwc = f"{source.name}_nhwc"
        for node in graph.node:
            for i, name in enumerate(node.input):
                if name == source.name:
                    node.input[i] = nhwc
        nodes.append(helper.make_node("Transpose", [source.name], [nhwc], name="Transpose_input", perm=_NHWC))
        graph.value_info.append(
            helper.make_tensor_value_info(nhwc, onnx.TensorProto.FLOAT, [in_dims[i] for i in _NHWC])
        )
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.value_info}
    for node in graph.node:
        if node.op_type in ("Conv", "MaxPool"):
            node.domain = _CHANNELS_LAST
        elif node.op_type == "GlobalAveragePool":
            _, h, w_, _ = shapes[node.input[0]]
            node.CopyFrom(
                helper.make_node(
                    "AveragePool",
                    list(node.input),
                    list(node.output),
                    name=node.name,
                    domain=_CHANNELS_LAST,
                    kernel_shape=[h, w_],
                    strides=[h, w_],
                    pads=[0, 0, 0, 0],
                )
            )
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        nodes.append(copy)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def _fold_weight_quants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Weight ``Quant`` nodes go: their constant input already holds ``codes * s_w``, and the layer's weight
    type (derived) holds it exactly, so hls4ml needs no ApplyAlpha for per-channel scales."""
    inits = {t.name for t in model.graph.initializer}
    keep, rename = [], {}
    for n in model.graph.node:
        if n.op_type == "Quant" and n.input[0] in inits:
            rename[n.output[0]] = n.input[0]
        else:
            keep.append(n)
    for n in keep:
        for i, name in enumerate(n.input):
            if name in rename:
                n.input[i] = rename[name]
    del model.graph.node[:]
    model.graph.node.extend(keep)
    used = {i for n in keep for i in n.input}
    live = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(live)
    return model


def hls_config(input_name: str, input_grid: Grid, rows: list[LayerPrecision]) -> dict[str, Any]:
    """hls4ml's ``hls_config`` with every type set: by ONNX node name, the model default at SENTINEL."""
    layers: dict[str, Any] = {input_name: {"Precision": {"result": input_grid.hls()}, "Trace": False}}
    for r in rows:
        layers[r.node] = {"Precision": {k: g.hls() for k, g in r.types.items()}, "Trace": False}
    return {"Model": {"Precision": SENTINEL, "ReuseFactor": 1, "Strategy": "Latency"}, "LayerName": layers}


def _audit(hm: Any) -> None:
    """Refuse a converted graph in which any tensor still has hls4ml's (sentinel) default type."""
    inner = SENTINEL.split("<")[1].rstrip(">")
    for layer in hm.get_layers():
        for name, var in layer.get_layer_precision().items():
            if name.endswith("table_t") and layer.class_name == "Activation":
                continue  # lookup tables: read by sigmoid/tanh-like functions, never by ReLU or linear
            if f"<{inner}," in str(var.precision) or str(var.precision).startswith(f"fixed<{inner}"):
                raise ConfigError(
                    f"hls4ml: layer {layer.name} ({layer.class_name}) has type {name} at hls4ml's default "
                    "precision after conversion: bpnas could not derive it, so the C simulation could "
                    "truncate. Export refused; please report this model."
                )


def convert(qonnx_model: onnx.ModelProto, out_dir: Path, *, compile: bool = True) -> Hls4mlProject:
    """Convert and (by default) compile; ConfigError when hls4ml cannot run it exactly."""
    hls4ml = _require()
    model, names = prepare(qonnx_model)
    input_grid, rows = derive_precisions(model, names)
    model = _fold_weight_quants(model)
    config = hls_config(model.graph.input[0].name, input_grid, rows)
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            hm = hls4ml.converters.convert_from_onnx_model(
                model,
                output_dir=str(out_dir),
                project_name=PROJECT,
                backend="Vivado",
                io_type="io_parallel",
                hls_config=config,
            )
        except Exception as e:  # hls4ml raises bare Exception/RuntimeError for what it cannot parse
            raise ConfigError(f"hls4ml could not convert this model: {e}. Export refused.") from e
        _audit(hm)
        hm.write()
    info = _info(qonnx_model, hm, rows)
    (out_dir / INFO_NAME).write_text(json.dumps(info, indent=1, sort_keys=True), encoding="utf-8")
    session = session_for(out_dir) if compile else None
    return Hls4mlProject(out_dir, hm, input_grid, rows[-1].types["result"], tuple(rows), session)


def _info(qonnx_model: onnx.ModelProto, hm: Any, rows: list[LayerPrecision]) -> dict[str, Any]:
    """What the runtime needs besides the sources: names, shapes, the layers, the precision table."""
    dims = [
        [d.dim_value for d in v.type.tensor_type.shape.dim][1:]
        for v in (qonnx_model.graph.input[0], qonnx_model.graph.output[0])
    ]
    return {
        "project": PROJECT,
        "stamp": hm.config.get_config_value("Stamp"),
        "input_shape": dims[0],
        "output_size": int(np.prod(dims[1])),
        "layers": sorted({r.layer for r in rows if r.op in ("Conv", "MatMul")}),
        "precision": [
            {"node": r.node, "layer": r.layer, "op": r.op, "types": {k: g.hls() for k, g in r.types.items()}}
            for r in rows
        ],
    }


def precision_table(rows: tuple[LayerPrecision, ...] | list[LayerPrecision]) -> str:
    """Markdown table: node, bpnas layer, op, then each hls4ml type by config key."""
    out = ["| node | layer | op | types |", "| --- | --- | --- | --- |"]
    for r in rows:
        types = ", ".join(f"{k} `{g.hls()}`" for k, g in r.types.items())
        out.append(f"| {r.node} | {r.layer} | {r.op} | {types} |")
    return "\n".join(out)


def pack_project(project_dir: Path, file: Path) -> None:
    """The project as a reproducible tar (sorted, mtime 0, no build outputs), written to ``file``."""
    with open(file, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
        for p in sorted(project_dir.rglob("*")):
            if p.is_dir() or p.suffix in _BUILD_OUTPUTS or p.is_symlink():
                continue
            info = tarfile.TarInfo(str(p.relative_to(project_dir)))
            info.size = p.stat().st_size
            info.mode = 0o755 if os.access(p, os.X_OK) else 0o644
            with open(p, "rb") as f:
                tar.addfile(info, f)
        raw.flush()
        os.fsync(raw.fileno())


def verify_inputs(example: np.ndarray, grid: Grid, n: int = 32, seed: int = 0) -> np.ndarray:
    """The example plus ``n`` inputs spread over (and 10% past) the input quantizer's range, so saturation,
    ties and every code get exercised; deterministic."""
    rng = np.random.default_rng(seed)
    step = 2.0**-grid.frac
    lo, hi = 1.1 * grid.lo * step, 1.1 * grid.hi * step
    rand = rng.uniform(lo, hi, size=(n, *example.shape[1:]))
    ties = np.round(rand[: n // 4] / step * 2) * step / 2  # exact half-steps: the rounding mode shows
    rand[: n // 4] = ties
    return np.concatenate([example, rand]).astype(np.float32)


def verify_codes(
    project: Hls4mlProject, reference: Callable[[np.ndarray], np.ndarray], x: np.ndarray
) -> tuple[int, int]:
    """(samples whose output codes all match the reference, samples): the C simulation vs ``reference``
    (the integer executor), on the output quantizer's grid."""
    step = 2.0**-project.output_grid.frac
    got = np.round(project.run(x).astype(np.float64) / step)
    want = np.round(np.asarray(reference(x), np.float64).reshape(got.shape) / step)
    return int(np.all(got == want, axis=1).sum()), int(x.shape[0])


def write_artifact(
    qonnx_model: onnx.ModelProto,
    file: Path,
    *,
    example: np.ndarray,
    reference: Callable[[np.ndarray], np.ndarray],
    work_dir: Path,
) -> Hls4mlProject:
    """Convert, compile, verify against ``reference`` (refusing any differing code), pack to ``file``."""
    project = convert(qonnx_model, work_dir)
    x = verify_inputs(example, project.input_grid)
    same, total = verify_codes(project, reference, x)
    if same != total:
        raise ConfigError(
            f"hls4ml: the C simulation gives other output codes than the integer executor on {total - same} "
            f"of {total} check inputs, though every type was derived exactly; export refused (a bpnas bug)."
        )
    pack_project(work_dir, file)
    return project


def bundle_artifact(
    traced: Traced, options: LoweringOptions, example: np.ndarray, bundle_dir: Path
) -> tuple[str, ArtifactEntry]:
    """The hls4ml artifact of a bundle being written in ``bundle_dir``: (file name, its manifest entry).

    The reference is the integer executor on the target's own QDQ lowering (which checks the power-of-two
    scales, with the fix). The compiled project is also left in the bundle's runtime cache, so the first
    ``sdk.load`` (and the export's own inspection) does not compile it again."""
    import hls4ml

    from runtimes.integer import load_model

    reference = load_model(traced.lower(options))

    def logits(x: np.ndarray) -> np.ndarray:
        return next(iter(reference.run(x).values()))

    file = bundle_dir / ARTIFACT
    with tempfile.TemporaryDirectory(prefix="bpnas-hls4ml-") as work:
        project_dir = Path(work) / "project"
        write_artifact(lower_qonnx(traced), file, example=example, reference=logits, work_dir=project_dir)
        cache = bundle_dir / CACHE_DIR
        cache.mkdir(exist_ok=True)
        shutil.copytree(project_dir, cache / artifact_key(file))
    made_by = {"passes": list(options.passes), "hls4ml": hls4ml.__version__, "backend": "Vivado"}
    entry = ArtifactEntry(sha256_file(file), file.stat().st_size, "hls4ml-project", made_by)
    return ARTIFACT, entry
