"""``sdk.export``: a fake-quant model -> a ``NAME.bpnas/`` bundle (DESIGN §5), written atomically.

The model is traced once; each distinct lowering (pass list) among the requested targets gives one artifact
(targets sharing a list share the file). Everything is written into ``NAME.bpnas.tmp-<pid>-<rand>`` with
``manifest.json`` last, then renamed into place; an existing bundle is moved aside and deleted only after
the rename succeeded, so a failure at any point leaves the old bundle as it was and no partial directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from export._graph import onnx_opset
from export.manifest import versions, write_manifest
from export.onnx_qdq import Traced
from export.options import LoweringOptions
from runtimes.bundle import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    QUANT_SCHEME,
    ArtifactEntry,
    Manifest,
    TensorSpec,
    read_manifest,
    sha256_file,
)
from sdk.errors import BundleError, InputError

__all__ = ["Bundle", "export", "target_lowering"]


@dataclass(frozen=True)
class Bundle:
    """A written bundle: its directory and its (verified) manifest. ``os.fspath(bundle)`` is the directory."""

    path: Path
    manifest: Manifest

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def artifact(self, target: str) -> Path:
        return self.manifest.artifact_path(target)


def target_lowering(name: str) -> tuple[str, LoweringOptions]:
    """(canonical target name, the LoweringOptions its artifact needs): the target's own pass list."""
    import targets

    target = targets.get(name)
    return target.name, LoweringOptions(target.lowering)


def export(
    qmodel: nn.Module,
    path: str | os.PathLike[str],
    *,
    example_input: torch.Tensor,
    targets: str | Sequence[str] = ("onnxruntime",),
    preprocess: Any = None,
    labels: Sequence[str] | None = None,
    name: str | None = None,
    qonnx: bool = False,
    overwrite: bool = True,
    inspect: bool = True,
    postprocess: Mapping[str, Any] | None = None,
) -> Bundle:
    """Export ``qmodel`` (fake-quant, calibrated) as a bundle for ``targets``; returns the Bundle.

    ``preprocess`` is an ``sdk.Preprocess`` (or its ``to_dict()``); ``labels`` one name per class; a detector
    (``task = "detect"``) records its task and decoding parameters (``postprocess`` overrides score_thr,
    iou_thr, max_dets, pre_nms) and needs letterbox preprocessing; ``qonnx``
    adds a QONNX artifact for FINN/hls4ml flows. An existing bundle at ``path`` is replaced only when the
    new one is complete (``overwrite=False`` refuses instead). With ``inspect`` the new bundle is loaded on
    every installed target it carries and run on ``example_input`` before it is put in place, and the
    manifest records what each engine runs per layer (``Manifest.effective_precision``); an engine that
    cannot run it fails the export.
    """
    dest = Path(path)
    wanted = [targets] if isinstance(targets, str) else list(targets)
    if not wanted or not all(isinstance(t, str) for t in wanted):
        raise InputError(f"targets must be a target name or a list of them, got {targets!r}.")
    _check_destination(dest, overwrite)
    lowering: dict[str, LoweringOptions] = {}
    for t in wanted:
        canonical, options = target_lowering(t)
        lowering[canonical] = options
    pre = _preprocess_dict(preprocess)

    traced = Traced(qmodel, example_input)
    files, target_files, built = _plan_artifacts(traced, lowering, qonnx)
    first = next(iter(files.values()))[0] if files else traced.lower(LoweringOptions())
    out_dims = [d.dim_value or None for d in first.graph.output[0].type.tensor_type.shape.dim]
    task, post = _task(qmodel, pre, postprocess or {})
    classes = post["num_classes"] if post is not None else (out_dims[-1] if out_dims else None)
    label_list = _labels(labels, classes)

    tmp = dest.parent / f"{dest.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    try:
        example = example_input.detach().cpu().numpy().astype("float32")
        entries = _write_artifacts(tmp, files)
        for target, (builder, options) in built.items():
            file, entry = builder(traced, options, example, tmp)
            entries[file], target_files[target] = entry, file
        manifest = _manifest(
            traced, example_input, dest, name, pre, label_list, out_dims, entries, target_files
        )
        manifest = dataclasses.replace(manifest, task=task, postprocess=post)
        write_manifest(manifest, tmp / MANIFEST_NAME)
        if inspect:
            from export.verify import inspect_targets

            records = inspect_targets(tmp, target_files, example, final_name=dest.name)
            if records:
                manifest = dataclasses.replace(manifest, effective_precision=records)
                write_manifest(manifest, tmp / MANIFEST_NAME)
        _replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Bundle(dest, read_manifest(dest))


_Files = dict[str, tuple[onnx.ModelProto, str, LoweringOptions | None]]


def _plan_artifacts(
    traced: Traced, lowering: Mapping[str, LoweringOptions], qonnx: bool
) -> tuple[_Files, dict[str, str], dict[str, tuple[Any, LoweringOptions]]]:
    """(ONNX artifacts by file name, target -> file, targets whose artifact a builder makes): targets with
    the same pass list share one lowered file."""
    files: _Files = {}
    target_files: dict[str, str] = {}
    built: dict[str, tuple[Any, LoweringOptions]] = {}  # targets whose artifact is not a QDQ ONNX file
    for target, options in lowering.items():
        builder = _artifact_builder(target)
        if builder is not None:
            built[target] = (builder, options)
            continue
        file = f"model-{options.key()}.onnx"
        if file not in files:
            files[file] = (traced.lower(options), "onnx-qdq", options)
        target_files[target] = file
    if qonnx:
        from export.qonnx_export import lower_qonnx

        files["model.qonnx.onnx"] = (lower_qonnx(traced), "qonnx", None)
    return files, target_files, built


def _write_artifacts(tmp: Path, files: _Files) -> dict[str, ArtifactEntry]:
    """Write each ONNX artifact into the bundle's temp dir; its manifest entry (checksum, size, lowering)."""
    entries = {}
    for file, (model, fmt, made_by) in files.items():
        _write_artifact(model, tmp / file)
        lowering_dict = made_by.to_dict() if made_by is not None else {"opset": onnx_opset(model)}
        entries[file] = ArtifactEntry(
            sha256_file(tmp / file), (tmp / file).stat().st_size, fmt, lowering_dict
        )
    return entries


#: engine -> "module:function" building its artifact in the bundle's temp dir, for engines that do not read
#: a QDQ ONNX file: ``function(traced, lowering, example, bundle_dir) -> (file name, ArtifactEntry)``.
ARTIFACT_BUILDERS: dict[str, str] = {"hls4ml": "export.hls4ml_export:bundle_artifact"}


def _artifact_builder(target: str) -> Any:
    import importlib

    import targets

    spec = ARTIFACT_BUILDERS.get(targets.get(target).engine)
    if spec is None:
        return None
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _check_destination(dest: Path, overwrite: bool) -> None:
    if not dest.exists() and not dest.is_symlink():
        return
    if not overwrite:
        raise BundleError(
            f"{dest} already exists; pass overwrite=True to replace it, or choose another path."
        )
    if dest.is_symlink() or not dest.is_dir() or not (dest / MANIFEST_NAME).is_file():
        raise BundleError(
            f"{dest} exists and is not a bpnas bundle; refusing to replace it. "
            "Choose another path or remove it."
        )


def _preprocess_dict(preprocess: Any) -> dict[str, Any] | None:
    if preprocess is None:
        return None
    if hasattr(preprocess, "to_dict"):
        return dict(preprocess.to_dict())
    if isinstance(preprocess, Mapping):
        return dict(preprocess)
    raise InputError(
        f"preprocess must be an sdk.Preprocess (or its to_dict()), got {type(preprocess).__name__}."
    )


def _task(
    qmodel: nn.Module, preprocess: dict[str, Any] | None, overrides: Mapping[str, Any]
) -> tuple[str, dict[str, Any] | None]:
    """The bundle's task and its postprocess parameters: a detector (``task = "detect"``, ``params()``)
    records its decoding parameters (``overrides``: score_thr, iou_thr, max_dets, pre_nms) and needs
    letterbox preprocessing, so boxes map back to frames."""
    task = str(getattr(qmodel, "task", "classify"))
    if task != "detect":
        if overrides:
            raise InputError("postprocess parameters apply to detectors only; this model classifies.")
        return task, None
    if preprocess is not None and preprocess.get("resize") != "letterbox":
        raise InputError(
            "a detector's bundle needs letterbox preprocessing, so boxes map back to the frame; pass "
            "preprocess=sdk.Preprocess(..., resize='letterbox') (DetectionSet.preprocess() gives it)."
        )
    return task, qmodel.params(**overrides).to_dict()  # type: ignore[operator]


def _labels(labels: Sequence[str] | None, classes: int | None) -> tuple[str, ...] | None:
    if labels is None:
        return None
    if isinstance(labels, str) or not all(isinstance(s, str) for s in labels):
        raise InputError("labels must be a list of class names (strings).")
    out = tuple(labels)
    if classes is not None and len(out) != classes:
        raise InputError(
            f"labels has {len(out)} names but the model outputs {classes} classes; pass one per class."
        )
    return out


def _quant_summary(qmodel: nn.Module) -> dict[str, Any]:
    from sdk.quant import QuantAdd, quant_layers

    layers = quant_layers(qmodel)
    adds = [m for m in qmodel.modules() if isinstance(m, QuantAdd)]
    last = layers[-1][1]
    return {
        "scheme": QUANT_SCHEME,
        "per_channel": all(m.weight_quant.per_channel for _, m in layers),
        "residual_bits": adds[0].quant_a.bits if adds else 32,
        "output_bits": last.out_quant.bits if last.out_quant is not None else 32,
    }


def _manifest(
    traced: Traced,
    example_input: torch.Tensor,
    dest: Path,
    name: str | None,
    preprocess: dict[str, Any] | None,
    labels: tuple[str, ...] | None,
    out_dims: list[int | None],
    artifacts: dict[str, ArtifactEntry],
    target_files: dict[str, str],
) -> Manifest:
    from sdk.counting import bops
    from sdk.quant import config_of

    shape = tuple(int(s) for s in example_input.shape)
    return Manifest(
        name=name or dest.name.removesuffix(".bpnas"),
        created_utc=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        versions=versions(),
        input=TensorSpec("input", (None, *shape[1:]), "float32", "NCHW" if len(shape) == 4 else None),
        output=TensorSpec("logits", (None, *out_dims[1:]), "float32"),
        preprocess=preprocess,
        labels=labels,
        config=config_of(traced.qmodel),
        bops=bops(traced.qmodel, input_shape=(1, *shape[1:])),
        quant=_quant_summary(traced.qmodel),
        artifacts=artifacts,
        targets=target_files,
        format=FORMAT,
        format_version=FORMAT_VERSION,
    )


def _write_artifact(model: onnx.ModelProto, file: Path) -> None:
    with open(file, "wb") as f:
        f.write(model.SerializeToString())
        f.flush()
        os.fsync(f.fileno())


def _replace(tmp: Path, dest: Path) -> None:
    """Rename the complete ``tmp`` bundle to ``dest``; an old bundle there goes only after that worked."""
    old = None
    if dest.exists():
        old = dest.parent / f"{dest.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except BaseException:
        if old is not None:
            with contextlib.suppress(OSError):
                os.rename(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
