"""The one small protocol every engine adapter implements. Torch-free: runtimes never import training code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from sdk._registry import did_you_mean
from sdk.errors import InputError

if TYPE_CHECKING:  # runtimes.bundle imports LayerPrecision from here
    from runtimes.bundle import Manifest

__all__ = [
    "Session",
    "RuntimeOptions",
    "LayerTime",
    "LayerPrecision",
    "Loader",
    "speed_warnings",
    "typed_options",
]

_Options = TypeVar("_Options")


@dataclass(frozen=True)
class RuntimeOptions:
    """Engine-independent options a Predictor passes to an adapter."""

    target: str = ""  # the target being loaded, so one adapter serves several ("tensorrt", "jetson")
    threads: int | None = None  # None: the engine's default
    cache_dir: Path | None = None  # where compiled artifacts may be cached (defaults beside the bundle)
    profiling: bool = False  # collect per-layer timings where the engine can
    performance_hint: str = "latency"  # "latency" | "throughput" (OpenVINO, TensorRT builder)
    extra: Mapping[str, Any] = field(default_factory=dict)  # typed per target; validated by the adapter


def typed_options(cls: type[_Options], extra: Mapping[str, Any], engine: str) -> _Options:
    """``RuntimeOptions.extra`` as an adapter's frozen options dataclass ``cls``; a key it lacks raises
    InputError naming the close match and every known key (the dataclass validates the values)."""
    known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    for key in extra:
        if key not in known:
            hint = did_you_mean(key, known)
            raise InputError(f"unknown {engine} option {key!r}.{hint} Known: {', '.join(known)}.")
    return cls(**dict(extra))


@dataclass(frozen=True)
class LayerTime:
    """Time one engine node/kernel took, averaged over profiled runs."""

    name: str
    op_type: str
    ms: float


@dataclass(frozen=True)
class LayerPrecision:
    """What an engine actually runs for one conv/linear layer after compilation."""

    layer: str  # bpnas layer name where it can be mapped, else the engine's node name
    kernel: str  # e.g. "QLinearConv", "Convolution", "dense"
    precision: str  # e.g. "u8", "i8", "f32", "f16", "int-exact"
    upcast: bool  # True when the engine runs it wider than the bundle's deployed precision


@runtime_checkable
class Session(Protocol):
    """A compiled model ready to run batches of preprocessed float32 NCHW input, speaking named tensors."""

    input_name: str
    output_names: tuple[str, ...]  # every output the artifact has, in its order

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch; x is float32 (N, C, H, W), contiguous. Returns every named output, float32, each
        with the batch as its first axis (a classifier: {"logits": (N, K)})."""
        ...

    def layer_times(self) -> list[LayerTime] | None:
        """Per-layer timings collected since load when profiling was on; None when the engine can't tell."""
        ...

    def effective_precision(self) -> list[LayerPrecision]:
        """Per conv/linear layer, the precision the engine really runs."""
        ...

    def close(self) -> None: ...


def speed_warnings(session: Session) -> tuple[Warning, ...]:
    """What a session warned at load about its own speed (e.g. TVM's untuned kernels), for ``profile()`` to
    repeat beside its figures. Optional: a session without a ``speed_warnings`` attribute has none."""
    return tuple(getattr(session, "speed_warnings", ()))


class Loader(Protocol):
    """An adapter's ``load``: the bundle's artifact for this target, its checked manifest, the options."""

    def __call__(self, artifact: Path, manifest: Manifest, options: RuntimeOptions) -> Session: ...
