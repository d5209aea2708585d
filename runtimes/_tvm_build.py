"""Compile an ONNX artifact with TVM Relax for the host CPU, and cache the compiled library.

Import of TVM happens inside functions only, so this module loads without TVM installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtimes.bundle import module_path_layer
from sdk.errors import InputError, TargetUnavailable

__all__ = [
    "InstallHint",
    "import_tvm",
    "check_serialization",
    "host_cpu_id",
    "make_target",
    "host_threads",
    "set_runtime_threads",
    "records_digest",
    "cache_key",
    "OnnxSpec",
    "read_onnx_spec",
    "relax_module",
    "fused_module",
    "apply_records",
    "prepack_weights",
    "compile_library",
    "conv_dense_kernels",
]

InstallHint = "pip install 'bpnas[tvm]'"

# Relax ops that carry a layer's MACs: their argument dtypes are the precision the engine runs.
_HEAVY_OPS = {"relax.nn.conv1d": "conv1d", "relax.nn.conv2d": "conv2d", "relax.matmul": "matmul"}
_ONNX_HEAVY = ("Conv", "Gemm", "MatMul", "ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul")
_SHORT_DTYPE = {"float32": "f32", "float16": "f16", "bfloat16": "bf16", "int8": "i8", "uint8": "u8"}


def import_tvm() -> Any:
    """The ``tvm`` module, or TargetUnavailable naming the extra to install."""
    try:
        import tvm
        from tvm import relax  # noqa: F401  (the Relax frontend is what the adapter needs)
    except ImportError as e:
        raise TargetUnavailable(f"the 'tvm' target needs Apache TVM (Relax): {InstallHint} ({e})") from e
    return tvm


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for p in text.split("+")[0].split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
        if not p.isdigit():  # "0.post1", "1rc2": stop at the first non-numeric part
            break
    return tuple(parts)


def check_serialization() -> None:
    """Refuse the TVM/tvm-ffi pairing whose JSON serializer segfaults (no tuning records can be written).

    apache-tvm 0.26/0.27 wheels with apache-tvm-ffi >= 0.1.15 crash in ``tvm::ffi::ToJSONGraph`` on any TIR
    node, which MetaSchedule needs for task mutators and its JSON database. 0.1.14.x works.
    """
    tvm = import_tvm()
    import tvm_ffi

    tvm_v, ffi_v = _version_tuple(tvm.__version__), _version_tuple(tvm_ffi.__version__)
    if tvm_v[:2] <= (0, 27) and ffi_v[:3] >= (0, 1, 15):
        raise TargetUnavailable(
            f"apache-tvm {tvm.__version__} with apache-tvm-ffi {tvm_ffi.__version__} crashes when saving "
            "MetaSchedule tuning records (segfault in tvm::ffi::ToJSONGraph). "
            "Fix: pip install 'apache-tvm-ffi<0.1.15'"
        )


def host_cpu_id() -> str:
    """A stable digest of this CPU's model and feature flags; compiled code is only valid on a match."""
    model, flags = platform.processor(), ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model.startswith("model:"):
                    model = "model:" + value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = " ".join(sorted(value.split()))
                if model.startswith("model:") and flags:
                    break
    except OSError:
        pass
    return hashlib.sha256(f"{platform.machine()}|{model}|{flags}".encode()).hexdigest()[:16]


def host_threads(threads: int | None) -> int:
    """``threads``, else the CPUs this process may run on."""
    if threads:
        return int(threads)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else int(os.cpu_count() or 1)


def set_runtime_threads(threads: int | None) -> int:
    """Size TVM's (process-wide) thread pool before its first parallel kernel creates it.

    Without TVM_NUM_THREADS (or OMP_NUM_THREADS) TVM on x86 assumes hyper-threading and uses half the
    logical CPUs: one thread on a 2-core machine. An explicit ``threads`` overrides the environment; the
    pool is only sized once per process, so the first load or tune decides.
    """
    n = host_threads(threads)
    if threads:
        os.environ["TVM_NUM_THREADS"] = str(n)
    else:
        os.environ.setdefault("TVM_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", str(n)))
    return int(os.environ["TVM_NUM_THREADS"])


def make_target(threads: int | None, mcpu: str | None) -> Any:
    """The LLVM host target as a TVM 0.27 JSON-dict target; mcpu None means LLVM's guess for this host."""
    tvm = import_tvm()
    from tvm.target import codegen

    spec: dict[str, Any] = {"kind": "llvm", "num-cores": host_threads(threads)}
    cpu = mcpu if mcpu is not None else codegen.llvm_get_system_cpu()
    if cpu and cpu != "generic":
        spec["mcpu"] = cpu
    return tvm.target.Target(spec)


def records_digest(records_dir: Path | None) -> str:
    """Digest of a MetaSchedule JSON database, so a cached library is rebuilt when records change."""
    if records_dir is None:
        return "none"
    h = hashlib.sha256()
    for name in ("database_workload.json", "database_tuning_record.json"):
        p = records_dir / name
        h.update(name.encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class OnnxSpec:
    """What the adapter needs to know about the ONNX graph before TVM sees it."""

    input_name: str
    output_names: tuple[str, ...]
    sample_shape: tuple[int | None, ...]  # input shape without the batch axis; None where dynamic
    layers: tuple[tuple[str, str], ...]  # (layer name, deployed precision) of each Conv/Gemm/MatMul, in order


def read_onnx_spec(model: Any) -> OnnxSpec:
    """Input/output names, per-sample input shape, and the deployed precision of each heavy layer."""
    from onnx import TensorProto

    g = model.graph
    init_names = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in init_names]
    if len(inputs) != 1 or not g.output:
        raise InputError(f"the TVM adapter runs single-input models; this graph has {len(inputs)} inputs")
    dims = inputs[0].type.tensor_type.shape.dim
    sample = tuple(int(d.dim_value) if d.HasField("dim_value") else None for d in list(dims)[1:])
    init_dtypes = {i.name: i.data_type for i in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    names = {TensorProto.INT8: "i8", TensorProto.UINT8: "u8", TensorProto.FLOAT16: "f16"}

    def stored(tensor: str) -> str:
        node = producers.get(tensor)
        if node is not None and node.op_type == "DequantizeLinear":
            src = node.input[0]
            if src in init_dtypes:
                return names.get(init_dtypes[src], "f32")
            src_node = producers.get(src)
            while src_node is not None and src_node.op_type == "Clip":  # Q -> Clip -> DQ activations
                src_node = producers.get(src_node.input[0])
            if src_node is not None and src_node.op_type == "QuantizeLinear" and len(src_node.input) > 2:
                zp = src_node.input[2]
                return names.get(init_dtypes.get(zp, TensorProto.UINT8), "u8")
            return "u8"
        return names.get(init_dtypes.get(tensor, TensorProto.FLOAT), "f32")

    layers = []
    for i, n in enumerate(x for x in g.node if x.op_type in _ONNX_HEAVY):
        w = stored(n.input[1]) if len(n.input) > 1 else "f32"
        layers.append((module_path_layer(n.name) or n.name or f"{n.op_type.lower()}_{i}", w))
    return OnnxSpec(inputs[0].name, tuple(o.name for o in g.output), sample, tuple(layers))


def relax_module(model: Any, input_name: str, shape: Sequence[int]) -> Any:
    """Import the ONNX model into Relax at one static input shape."""
    import_tvm()
    from tvm.relax.frontend.onnx import from_onnx

    return from_onnx(model, shape_dict={input_name: list(shape)}, keep_params_in_input=False)


def fused_module(mod: Any, target: Any) -> Any:
    """Convert convolutions to NHWC, legalize, fold constants (weight DequantizeLinear included), fuse.

    NHWC puts channels innermost, which MetaSchedule vectorizes far better than NCHW on x86 (ResNet-18,
    608 trials: 13.5 ms against 24.5 ms for NCHW); the input is transposed once, the weights at compile
    time. Kernel arguments that are constants (the weights) are marked layout-free, so a MetaSchedule
    record may store them in the layout its loops want (e.g. output channels innermost);
    ``compile_library`` does that repacking once, at compile time. ``tune`` extracts its tasks from this
    module and ``apply_records`` looks them up again, so the workload keys match for the same target.
    """
    tvm = import_tvm()
    from tvm import relax

    seq = tvm.transform.Sequential(
        [
            relax.transform.ConvertLayout({"relax.nn.conv2d": ["NHWC", "OHWI"]}),
            relax.transform.DecomposeOpsForInference(),
            relax.transform.CanonicalizeBindings(),
            relax.get_pipeline("zero"),  # LegalizeOps, AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR
            relax.transform.AttachAttrLayoutFreeBuffers(),
        ]
    )
    with target:
        return seq(mod)


def apply_records(fused: Any, target: Any, database: Any) -> tuple[Any, int, int]:
    """Replace the fused kernels the database has records for; returns (module, tuned, kernels)."""
    import_tvm()
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    tasks = ms.relax_integration.extract_tasks(fused, target)
    hits = sum(database.query_tuning_record(t.dispatched[0], target, "main") is not None for t in tasks)
    with target, database:
        fused = relax.transform.MetaScheduleApplyDatabase()(fused)
    return fused, hits, len(tasks)


def prepack_weights(fused: Any, target: Any) -> Any:
    """Run the weight layout rewrites that tuning records chose once, on the constant weights.

    A record may read a weight in another layout (MetaSchedule's RewriteLayout); SplitLayoutRewritePreproc
    moves that copy into a ``<kernel>_weight_prepack`` function of its own and FoldConstant evaluates it
    at compile time, so no call repacks weights.
    """
    tvm = import_tvm()
    from tvm import relax

    passes = [relax.transform.SplitLayoutRewritePreproc(), relax.transform.FoldConstant()]
    with target:
        return tvm.transform.Sequential(passes)(fused)


def compile_library(fused: Any, target: Any, *, default_schedules: bool) -> Any:
    """Lower a fused module to an executable; ``default_schedules`` applies DLight's CPU rules first.

    Weights are prepacked first (:func:`prepack_weights`).
    """
    tvm = import_tvm()
    fused = prepack_weights(fused, target)
    if default_schedules:
        from tvm.s_tir import dlight as dl

        with target:
            fused = dl.ApplyDefaultSchedule(dl.cpu.GEMV(), dl.cpu.Reduction())(fused)
    return tvm.compile(fused, target)


def conv_dense_kernels(mod: Any) -> list[tuple[str, str]]:
    """(kernel, precision) of each conv/matmul in a Relax module's main function, in program order.

    Precision is the widest dtype of the call's data and weight, e.g. "f32" after DequantizeLinear.
    """
    tvm = import_tvm()
    from tvm import relax

    found: list[tuple[str, str]] = []
    bits = {"i8": 8, "u8": 8, "f16": 16, "bf16": 16}

    def visit(e: Any) -> None:
        if isinstance(e, relax.Call) and isinstance(e.op, tvm.ir.Op) and e.op.name in _HEAVY_OPS:
            dtypes = [_SHORT_DTYPE.get(_dtype(a), _dtype(a)) for a in e.args[:2]]
            found.append((_HEAVY_OPS[e.op.name], max(dtypes, key=lambda d: bits.get(d, 32))))

    relax.analysis.post_order_visit(mod["main"].body, visit)
    return found


def _dtype(expr: Any) -> str:
    info = getattr(expr, "ty", None) or getattr(expr, "struct_info", None)
    return str(getattr(info, "dtype", "unknown"))


def cache_key(parts: Mapping[str, Any]) -> str:
    """A file-name-safe digest of everything a compiled library depends on."""
    return hashlib.sha256(json.dumps(dict(parts), sort_keys=True).encode()).hexdigest()[:32]
