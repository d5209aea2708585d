"""The bundle format (DESIGN §5), deploy side: the manifest's types, checksums, the quant scheme, the
layer-name mapping and precision widths, each defined once. ``export`` writes bundles with it;
adapters read it.

``read_manifest(path)`` returns a :class:`Manifest` only after the format, version, every field's type,
every artifact name and every artifact's size and sha256 check out; anything else raises
``sdk.errors.BundleError`` naming the problem and the fix. Torch-free, and never imports ``export``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from runtimes.base import LayerPrecision
from sdk.config import FLOAT_BITS, MixedPrecisionConfig
from sdk.cost import BopsReport
from sdk.errors import BpnasError, BundleError

__all__ = [
    "DEFAULT_TASK",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "PRECISION_BITS",
    "QUANT_SCHEME",
    "ArtifactEntry",
    "Manifest",
    "PrecisionRecord",
    "TensorSpec",
    "check_artifact_name",
    "expected_width",
    "map_layer",
    "module_path_layer",
    "precision_width",
    "read_manifest",
    "sha256_file",
]

FORMAT = "bpnas-bundle"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
#: the quantization conventions an artifact follows (DESIGN §2/§4); engines refuse any other
QUANT_SCHEME = "bpnas-qdq-v1"
#: what a bundle's outputs mean when its manifest names no ``task`` (bundles written before tasks existed)
DEFAULT_TASK = "classify"
_FIX = "Re-export the bundle with sdk.export(qmodel, path, example_input=...)."
_HEX = frozenset("0123456789abcdef")

# format_version -> function turning a manifest of that version into the next version's form
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

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


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_artifact_name(name: object, where: str = "bundle") -> str:
    """A plain file name inside the bundle: no separators, no '..', not absolute, not hidden."""
    if (
        not isinstance(name, str)
        or not name
        or name.startswith(".")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or os.path.isabs(name)
        or name == MANIFEST_NAME
    ):
        raise BundleError(
            f"{where} names an unsafe artifact {name!r}: artifacts must be plain file names inside the "
            f"bundle (no '/', '..', absolute paths). The manifest was edited or written by something "
            f"else. {_FIX}"
        )
    return name


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, shape (None = dynamic), dtype and layout."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    layout: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.layout is not None:
            d["layout"] = self.layout
        return d

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TensorSpec:
        data = _expect(data, dict, where)
        shape = _expect(data.get("shape"), list, f"{where}.shape")
        if not shape or any(
            not (d is None or (isinstance(d, int) and not isinstance(d, bool) and d > 0)) for d in shape
        ):
            raise BundleError(
                f"bundle manifest {where}.shape must be a list of positive ints or null. {_FIX}"
            )
        layout = data.get("layout")
        return cls(
            name=_expect(data.get("name"), str, f"{where}.name"),
            shape=tuple(shape),
            dtype=_expect(data.get("dtype", "float32"), str, f"{where}.dtype"),
            layout=None if layout is None else _expect(layout, str, f"{where}.layout"),
        )


@dataclass(frozen=True)
class ArtifactEntry:
    """One artifact file: checksum, size, format ("onnx-qdq" or "qonnx") and the lowering that made it."""

    sha256: str
    bytes: int
    format: str
    lowering: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "bytes": self.bytes,
            "format": self.format,
            "lowering": dict(self.lowering),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ArtifactEntry:
        data = _expect(data, dict, where)
        sha = _expect(data.get("sha256"), str, f"{where}.sha256")
        if len(sha) != 64 or not set(sha) <= _HEX:
            raise BundleError(f"bundle manifest {where}.sha256 is not a sha256 hex digest. {_FIX}")
        size = data.get("bytes")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise BundleError(f"bundle manifest {where}.bytes must be a non-negative int. {_FIX}")
        return cls(
            sha256=sha,
            bytes=size,
            format=_expect(data.get("format"), str, f"{where}.format"),
            lowering=dict(_expect(data.get("lowering", {}), dict, f"{where}.lowering")),
        )


@dataclass(frozen=True)
class PrecisionRecord:
    """What one target's engine ran per conv/linear layer when ``sdk.export`` loaded the bundle on it.

    ``layers`` are what ``Predictor.effective_precision()`` returned there (``upcast``: wider than the
    target's deployed precision for that layer's searched pair); ``notes`` are the engine's warnings at that
    load. It describes the exporting machine (``host``) and engine version (``engine``); other CPUs may
    differ.
    """

    host: str
    engine: str
    layers: tuple[LayerPrecision, ...]
    notes: tuple[str, ...] = ()

    @property
    def upcast_layers(self) -> list[str]:
        return [p.layer for p in self.layers if p.upcast]

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "engine": self.engine,
            "layers": [asdict(p) for p in self.layers],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> PrecisionRecord:
        data = _expect(data, dict, where)
        layers = []
        for i, row in enumerate(_expect(data.get("layers"), list, f"{where}.layers")):
            row = _expect(row, dict, f"{where}.layers[{i}]")
            kinds = {f.name: (bool if f.name == "upcast" else str) for f in fields(LayerPrecision)}
            values = {k: _expect(row.get(k), kind, f"{where}.layers[{i}].{k}") for k, kind in kinds.items()}
            layers.append(LayerPrecision(**values))
        notes = _expect(data.get("notes", []), list, f"{where}.notes")
        return cls(
            host=_expect(data.get("host"), str, f"{where}.host"),
            engine=_expect(data.get("engine"), str, f"{where}.engine"),
            layers=tuple(layers),
            notes=tuple(_expect(n, str, f"{where}.notes[]") for n in notes),
        )


@dataclass(frozen=True)
class Manifest:
    """A bundle's manifest.json, checked. ``path`` is the bundle directory it was read from (or None)."""

    name: str
    created_utc: str
    versions: Mapping[str, str]
    input: TensorSpec
    output: TensorSpec
    config: MixedPrecisionConfig
    bops: BopsReport
    quant: Mapping[str, Any]
    artifacts: Mapping[str, ArtifactEntry]
    targets: Mapping[str, str]  # target name -> artifact file name
    preprocess: Mapping[str, Any] | None = None
    labels: tuple[str, ...] | None = None
    #: what the outputs mean, naming the Predictor's postprocessing step ("classify": logits)
    task: str = DEFAULT_TASK
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    #: target name -> what its engine ran at export (``sdk.export(inspect=True)``); absent if not inspected
    effective_precision: Mapping[str, PrecisionRecord] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)

    def artifact_path(self, target: str) -> Path:
        """Where the artifact for ``target`` lives (needs a manifest read from a bundle)."""
        if self.path is None:
            raise BundleError("this manifest was not read from a bundle directory; use read_manifest(path).")
        if target not in self.targets:
            raise BundleError(
                f"bundle {self.path} has no artifact for target {target!r}; "
                f"it carries {sorted(self.targets)}. "
                f"Re-export with sdk.export(..., targets=[..., {target!r}])."
            )
        return self.path / self.targets[target]

    def layer_pairs(self) -> dict[str, tuple[int, int]]:
        """Layer name -> (w_bits, a_bits) of the searched configuration, in model order."""
        return {name: (int(w), int(a)) for name, (w, a) in self.config.items()}

    def to_dict(self) -> dict[str, Any]:
        """The manifest.json content (DESIGN §5 layout)."""
        return {
            "format": self.format,
            "format_version": self.format_version,
            "name": self.name,
            "created_utc": self.created_utc,
            "versions": dict(self.versions),
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "preprocess": None if self.preprocess is None else dict(self.preprocess),
            "labels": None if self.labels is None else list(self.labels),
            "task": self.task,
            "config": self.config.to_dict(),
            "bops": self.bops.to_dict(),
            "quant": dict(self.quant),
            "artifacts": {k: v.to_dict() for k, v in self.artifacts.items()},
            "targets": {k: self._target_entry(k) for k in self.targets},
        }

    def precision_table(self) -> str:
        """The recorded effective precision: one row per layer, one column per inspected target
        (``kernel/precision``, ``*`` = runs wider than deployed); empty when nothing was recorded."""
        if not self.effective_precision:
            return ""
        names = sorted(self.effective_precision)
        cells = {
            t: {p.layer: f"{p.kernel}/{p.precision}{'*' if p.upcast else ''}" for p in rec.layers}
            for t, rec in self.effective_precision.items()
        }
        width = max(12, *(len(c) for col in cells.values() for c in col.values()))
        lines = [
            f"effective precision recorded at export (* = upcast): {self.effective_precision[names[0]].host}"
        ]
        lines += [f"  {t}: {self.effective_precision[t].engine}" for t in names]
        head = f"{'layer':<32} {'(w,a)':<7} " + " ".join(f"{t:<{width}}" for t in names)
        lines += [head, "-" * len(head)]
        for layer, (w, a) in self.config.items():
            row = " ".join(f"{cells[t].get(layer, '-'):<{width}}" for t in names)
            lines.append(f"{layer[:32]:<32} {f'({w},{a})':<7} {row}")
        return "\n".join(lines)

    def _target_entry(self, target: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"artifact": self.targets[target]}
        record = self.effective_precision.get(target)
        if record is not None:
            entry["effective_precision"] = record.to_dict()
        return entry

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, path: Path | None = None) -> Manifest:
        """Validate a manifest dict (migrating older format versions); raises BundleError."""
        data = _migrate(_expect(data, dict, "root"))
        artifacts_raw = _expect(data.get("artifacts"), dict, "artifacts")
        if not artifacts_raw:
            raise BundleError(f"bundle manifest lists no artifacts. {_FIX}")
        artifacts = {
            check_artifact_name(k, "bundle manifest"): ArtifactEntry.from_dict(v, f"artifacts[{k!r}]")
            for k, v in artifacts_raw.items()
        }
        targets: dict[str, str] = {}
        records: dict[str, PrecisionRecord] = {}
        for t, entry in _expect(data.get("targets"), dict, "targets").items():
            art = _expect(
                _expect(entry, dict, f"targets[{t!r}]").get("artifact"), str, f"targets[{t!r}].artifact"
            )
            if art not in artifacts:
                raise BundleError(
                    f"bundle manifest: target {t!r} points at {art!r}, which is not an artifact. {_FIX}"
                )
            targets[str(t)] = art
            if entry.get("effective_precision") is not None:
                where = f"targets[{t!r}].effective_precision"
                records[str(t)] = PrecisionRecord.from_dict(entry["effective_precision"], where)
        labels = data.get("labels")
        if labels is not None:
            labels = _expect(labels, list, "labels")
            if not all(isinstance(s, str) for s in labels):
                raise BundleError(f"bundle manifest labels must be strings. {_FIX}")
        preprocess = data.get("preprocess")
        try:
            config = MixedPrecisionConfig.from_dict(_expect(data.get("config"), dict, "config"))
            bops = BopsReport.from_dict(_expect(data.get("bops"), dict, "bops"))
        except (BpnasError, KeyError, TypeError, ValueError) as e:
            if isinstance(e, BundleError):
                raise
            raise BundleError(f"bundle manifest config/bops are invalid ({e}). {_FIX}") from e
        return cls(
            name=_expect(data.get("name"), str, "name"),
            created_utc=_expect(data.get("created_utc"), str, "created_utc"),
            versions={str(k): str(v) for k, v in _expect(data.get("versions"), dict, "versions").items()},
            input=TensorSpec.from_dict(data.get("input"), "input"),
            output=TensorSpec.from_dict(data.get("output"), "output"),
            preprocess=None if preprocess is None else dict(_expect(preprocess, dict, "preprocess")),
            labels=None if labels is None else tuple(labels),
            task=_expect(data.get("task", DEFAULT_TASK), str, "task"),
            config=config,
            bops=bops,
            quant=dict(_expect(data.get("quant"), dict, "quant")),
            artifacts=artifacts,
            targets=targets,
            format=data["format"],
            format_version=data["format_version"],
            effective_precision=records,
            path=path,
        )


def _expect(value: Any, kind: type, where: str) -> Any:
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise BundleError(
            f"bundle manifest field {where!r} should be a {kind.__name__}, got {type(value).__name__}. {_FIX}"
        )
    return value


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("format") != FORMAT:
        raise BundleError(
            f"not a bpnas bundle manifest (format is {data.get('format')!r}, not {FORMAT!r}). {_FIX}"
        )
    version = data.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise BundleError(f"bundle manifest format_version must be an int, got {version!r}. {_FIX}")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"this bundle has format_version {version}, newer than this bpnas reads ({FORMAT_VERSION}). "
            "Upgrade bpnas (pip install -U bpnas), or re-export the bundle with this version."
        )
    while version < FORMAT_VERSION:
        step = _MIGRATIONS.get(version)
        if step is None:
            raise BundleError(f"bundle format_version {version} is older than any bpnas reads. {_FIX}")
        data = step(dict(data))
        version = data["format_version"]
    return data


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and verify the bundle at ``path``: schema, versions, artifact names, sizes and sha256."""
    bundle = Path(path)
    if not bundle.exists():
        raise BundleError(f"no bundle at {bundle}: create one with sdk.export(qmodel, {str(bundle)!r}, ...).")
    manifest_file = bundle / MANIFEST_NAME
    if not bundle.is_dir() or manifest_file.is_symlink() or not manifest_file.is_file():
        raise BundleError(f"{bundle} is not a bpnas bundle (no {MANIFEST_NAME} in it). {_FIX}")
    try:
        data = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{manifest_file} is corrupt ({e}). {_FIX}") from e
    manifest = Manifest.from_dict(data, path=bundle)
    for name, entry in manifest.artifacts.items():
        file = bundle / name
        if file.is_symlink():
            raise BundleError(
                f"bundle {bundle}: artifact {name!r} is a symlink, which bundles may not contain. {_FIX}"
            )
        if not file.is_file():
            raise BundleError(f"bundle {bundle} is missing its artifact {name!r}. {_FIX}")
        size = file.stat().st_size
        if size != entry.bytes or sha256_file(file) != entry.sha256:
            raise BundleError(
                f"bundle {bundle}: artifact {name!r} does not match its checksum ({size} bytes, manifest "
                f"says {entry.bytes}); it was modified or damaged after export. {_FIX}"
            )
    return manifest
