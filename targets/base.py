"""What a deployment target is: a frozen, validated table of hardware facts, and the registry that holds them.

A target says which engine runs it, on which device and CPU architectures, which (w_bits, a_bits) pairs it
executes natively and how the other pairs are rounded up to an integer container, the lowering it needs from
the ONNX exporter (an ordered list of pass names), the pip extra that installs its engine, how to tell whether
it is usable here, and its cost model. Torch-free and engine-free: reading a target never imports an engine.
"""

from __future__ import annotations

import importlib.util
import platform
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sdk._registry import Registry
from sdk.config import FLOAT_BITS, VALID_BITS
from sdk.cost import BopsReport, CostModel, report_from_layers
from sdk.errors import TargetUnavailable

__all__ = [
    "ARCHES",
    "CHECKS",
    "CostModel",
    "DEFAULT_LOWERING",
    "DEVICES",
    "INT_BITS",
    "Target",
    "all_pairs",
    "register_target",
    "registry",
]

BitPair = tuple[int, int]
#: the plain QDQ lowering (pass names of ``export.passes``): fold activation clips into their quantizers,
#: merge and drop redundant clips, share identical quantizers
DEFAULT_LOWERING = ("fold_activation", "merge_clips", "drop_full_range_clip", "dedupe_quantizers")

INT_BITS = tuple(sorted(b for b in VALID_BITS if b != FLOAT_BITS))  # 2..8
DEVICES = ("cpu", "gpu", "fpga")
ARCHES = ("x86_64", "aarch64")


def _check_names(target: str, attr: str, names: Any) -> None:
    """A tuple of distinct identifier-like names (pass names, aliases); ValueError otherwise."""
    if isinstance(names, str) or not isinstance(names, (tuple, list)):
        raise ValueError(f"target {target!r}: {attr} must be a tuple of names, got {names!r}")
    for n in names:
        if not isinstance(n, str) or not n.replace("_", "").isalnum():
            raise ValueError(f"target {target!r}: {attr} entry {n!r} must be an identifier-like name")
    if len(set(names)) != len(names):
        raise ValueError(
            f"target {target!r}: {attr} names {sorted(n for n in names if names.count(n) > 1)} twice"
        )


def all_pairs(bits: Iterable[int] = INT_BITS) -> tuple[BitPair, ...]:
    """Every (w, a) pair over ``bits``; the native table of a target that runs any integer width."""
    b = tuple(bits)
    return tuple((w, a) for w in b for a in b)


# -- environment checks a target may require, keyed by name (a table, not a chain of ifs) --------------------
def _machine() -> str:
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def _has_cuda_gpu() -> bool:
    """True when the CUDA driver loads and reports at least one device (torch-free, via libcuda)."""
    import ctypes  # here, not at module level: ctypes.util costs the deploy path's cold start ~20 ms
    import ctypes.util

    name = ctypes.util.find_library("cuda") or "libcuda.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return False
    try:
        if lib.cuInit(0) != 0:
            return False
        count = ctypes.c_int(0)
        return lib.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
    except AttributeError:
        return False


def _is_aarch64() -> bool:
    return _machine() == "aarch64"


# name -> (check, what to tell the user when it fails)
CHECKS: dict[str, tuple[Callable[[], bool], str]] = {
    "cuda": (_has_cuda_gpu, "needs an NVIDIA GPU with a working CUDA driver (libcuda), none was found"),
    "aarch64": (_is_aarch64, f"runs on aarch64 (Jetson) only; this machine is {_machine()}"),
}


@dataclass(frozen=True)
class Target:
    """One deployment target. Hardware knowledge as data; see the module docstring.

    Attributes:
        name: registry name ("openvino").
        engine: the engine family ("openvino", "onnxruntime", "tvm", "tensorrt", "integer").
        runtime: the registered runtime adapter that loads it (``runtimes.get_runtime(runtime)``).
        device: "cpu", "gpu" or "fpga".
        arches: CPU architectures it runs on.
        native_pairs: (w_bits, a_bits) pairs the engine executes at exactly that precision.
        containers: integer container widths, ascending; a non-native side rounds up to the smallest that
            holds it (3-bit weights run in an 8-bit container). Wider than every container: float.
        lowering: the ONNX exporter's passes for this target, by name and in order (``export.passes``
            registers them and checks the order); targets with the same list share one artifact file.
        extra: the pip extra that installs the engine (``pip install 'bpnas[<extra>]'``); None when the
            engine is a core dependency.
        engine_modules: modules that must be importable for the target to be available.
        requires: names of :data:`CHECKS` that must pass as well ("cuda", "aarch64").
        float_layers: whether the engine runs layers with a float side (32 bits) in floating point; an
            integer-only engine refuses them.
        unsigned_act_bits: the widest unsigned activation codes its containers hold (8: 0..255; 7 on
            TensorRT, whose symmetric int8 holds 0..127); ``sdk.quantize(..., target=)`` caps them so.
        cost: the cost model.
        description: one line for ``bpnas targets``.
        aliases: other names that resolve to this target ("fpga" for "integer").
        engine_dist: the Python distribution whose version names the engine in a bundle ("apache-tvm");
            None when it is the engine's own name.
    """

    name: str
    engine: str
    runtime: str
    device: str
    arches: tuple[str, ...]
    native_pairs: tuple[BitPair, ...]
    containers: tuple[int, ...] = (8,)
    lowering: tuple[str, ...] = DEFAULT_LOWERING
    extra: str | None = None
    engine_modules: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    float_layers: bool = True
    cost: CostModel = field(default_factory=CostModel)
    description: str = ""
    aliases: tuple[str, ...] = ()
    engine_dist: str | None = None
    unsigned_act_bits: int = 8

    def __post_init__(self) -> None:
        for attr in ("name", "engine", "runtime"):
            v = getattr(self, attr)
            if not isinstance(v, str) or not v or not v.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"target {attr} must be a non-empty identifier-like string, got {v!r}")
        if self.device not in DEVICES:
            raise ValueError(f"target {self.name!r}: device must be one of {DEVICES}, got {self.device!r}")
        if not self.arches or any(a not in ARCHES for a in self.arches):
            raise ValueError(f"target {self.name!r}: arches must be a non-empty subset of {ARCHES}")
        pairs = tuple(tuple(p) for p in self.native_pairs)
        if not pairs:
            raise ValueError(f"target {self.name!r}: native_pairs must not be empty")
        for p in pairs:
            if len(p) != 2 or any(isinstance(b, bool) or b not in INT_BITS for b in p):
                raise ValueError(f"target {self.name!r}: native pair {p!r} must be two ints in {INT_BITS}")
        if len(set(pairs)) != len(pairs):
            raise ValueError(f"target {self.name!r}: native_pairs has duplicates")
        object.__setattr__(self, "native_pairs", pairs)
        if list(self.containers) != sorted(set(self.containers)) or any(
            c not in INT_BITS for c in self.containers
        ):
            raise ValueError(
                f"target {self.name!r}: containers must be ascending distinct widths of {INT_BITS}"
            )
        object.__setattr__(self, "containers", tuple(self.containers))
        for w, a in pairs:
            if not self.containers or max(w, a) > self.containers[-1]:
                raise ValueError(f"target {self.name!r}: native pair {(w, a)} is wider than every container")
        _check_names(self.name, "lowering", self.lowering)
        object.__setattr__(self, "lowering", tuple(self.lowering))
        _check_names(self.name, "aliases", self.aliases)
        if self.engine_dist is not None and (not isinstance(self.engine_dist, str) or not self.engine_dist):
            raise ValueError(f"target {self.name!r}: engine_dist must be a distribution name or None")
        object.__setattr__(self, "aliases", tuple(self.aliases))
        if not isinstance(self.cost, CostModel):
            raise ValueError(f"target {self.name!r}: cost must be a CostModel")
        unknown = [r for r in self.requires if r not in CHECKS]
        if unknown:
            raise ValueError(f"target {self.name!r}: unknown requirement {unknown}; known: {sorted(CHECKS)}")
        if not isinstance(self.float_layers, bool):
            raise ValueError(f"target {self.name!r}: float_layers must be True or False")
        if not self.engine_modules:
            raise ValueError(f"target {self.name!r}: engine_modules must name the engine's import")
        if isinstance(self.unsigned_act_bits, bool) or self.unsigned_act_bits not in INT_BITS:
            raise ValueError(f"target {self.name!r}: unsigned_act_bits must be one of {INT_BITS}")

    # -- precision -------------------------------------------------------------------------------------
    def is_native(self, w_bits: int, a_bits: int) -> bool:
        return (w_bits, a_bits) in self.native_pairs

    def _container(self, bits: int) -> int | None:
        return next((c for c in self.containers if c >= bits), None)

    def deployed_pair(self, w_bits: int, a_bits: int) -> BitPair:
        """The (w, a) precision the engine really computes a layer searched at (w_bits, a_bits).

        Native pairs run as they are. A float side (32) makes the whole layer float (DESIGN §2); a target
        without ``float_layers`` raises ValueError for it. Otherwise each side rounds up to its container,
        and a rounded pair the engine still lacks falls back to the cheapest native pair that covers it,
        else float.
        """
        if FLOAT_BITS in (w_bits, a_bits):
            if not self.float_layers:
                raise ValueError(f"target {self.name!r} runs integer layers only, not ({w_bits}, {a_bits})")
            return FLOAT_BITS, FLOAT_BITS
        if w_bits not in INT_BITS or a_bits not in INT_BITS:
            raise ValueError(f"({w_bits}, {a_bits}) is not a bpnas bit pair; use 2..8 or 32")
        if self.is_native(w_bits, a_bits):
            return w_bits, a_bits
        w_c, a_c = self._container(w_bits), self._container(a_bits)
        if w_c is not None and a_c is not None and self.is_native(w_c, a_c):
            return w_c, a_c
        covering = [p for p in self.native_pairs if p[0] >= w_bits and p[1] >= a_bits]
        if covering:
            return min(covering, key=lambda p: (p[0] * p[1], p))
        if not self.float_layers:
            raise ValueError(f"target {self.name!r} has no integer kernel for ({w_bits}, {a_bits})")
        return FLOAT_BITS, FLOAT_BITS

    def unsupported(self, pairs: Mapping[str, tuple[int, int]]) -> list[str]:
        """Layers in ``pairs`` this target cannot run at all (float layers on integer-only engines)."""
        bad = []
        for name, (w, a) in pairs.items():
            try:
                self.deployed_pair(w, a)
            except ValueError:
                bad.append(name)
        return bad

    def deployed_report(self, report: BopsReport) -> BopsReport:
        """``report`` with every layer at its deployed pair: BOPs as the hardware spends them."""
        shapes = [(r.name, r.macs, r.params, r.op) for r in report.layers]
        bits = {r.name: self.deployed_pair(r.w_bits, r.a_bits) for r in report.layers}
        return report_from_layers(shapes, bits)

    @property
    def power_of_two_scales(self) -> bool:
        """Whether the lowering refuses scales that are not powers of two (FPGA toolchains that shift): such a
        target takes models calibrated or trained with power-of-two alphas only."""
        return "power_of_two_check" in self.lowering

    # -- environment -----------------------------------------------------------------------------------
    @property
    def distribution(self) -> str:
        """The distribution whose installed version a bundle records for this target's engine."""
        return self.engine_dist or self.engine

    @property
    def install_hint(self) -> str:
        if self.extra is None:
            return "reinstall bpnas (`pip install bpnas`): the engine is a core dependency"
        return f"pip install 'bpnas[{self.extra}]'"

    def unavailable_reason(self) -> str | None:
        """Why this target cannot run here, with the fix; None when it can."""
        for module in self.engine_modules:
            if importlib.util.find_spec(module) is None:
                return (
                    f"target {self.name!r} needs the {module!r} module, which is not installed: "
                    f"{self.install_hint}"
                )
        for req in self.requires:
            check, message = CHECKS[req]
            if not check():
                return f"target {self.name!r} {message}"
        return None

    def available(self) -> bool:
        return self.unavailable_reason() is None

    def require(self) -> Target:
        """Return self, or raise TargetUnavailable saying what to install."""
        reason = self.unavailable_reason()
        if reason is not None:
            raise TargetUnavailable(reason)
        return self

    # -- data ------------------------------------------------------------------------------------------
    def replace(self, **changes: Any) -> Target:
        """A validated copy with fields changed, e.g. ``t.replace(cost=CostModel(64, 64, 300.0))``."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "engine": self.engine,
            "runtime": self.runtime,
            "device": self.device,
            "arches": list(self.arches),
            "native_pairs": [list(p) for p in self.native_pairs],
            "containers": list(self.containers),
            "lowering": list(self.lowering),
            "extra": self.extra,
            "engine_modules": list(self.engine_modules),
            "requires": list(self.requires),
            "float_layers": self.float_layers,
            "cost": self.cost.to_dict(),
            "description": self.description,
            "aliases": list(self.aliases),
            "engine_dist": self.engine_dist,
            "unsigned_act_bits": self.unsigned_act_bits,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Target:
        d = dict(data)
        return cls(
            name=d["name"],
            engine=d["engine"],
            runtime=d["runtime"],
            device=d["device"],
            arches=tuple(d["arches"]),
            native_pairs=tuple((int(w), int(a)) for w, a in d["native_pairs"]),
            containers=tuple(d.get("containers", (8,))),
            lowering=tuple(d.get("lowering", DEFAULT_LOWERING)),
            extra=d.get("extra"),
            engine_modules=tuple(d["engine_modules"]),
            requires=tuple(d.get("requires", ())),
            float_layers=bool(d.get("float_layers", True)),
            cost=CostModel.from_dict(d.get("cost", {})),
            description=d.get("description", ""),
            aliases=tuple(d.get("aliases", ())),
            engine_dist=d.get("engine_dist"),
            unsigned_act_bits=int(d.get("unsigned_act_bits", 8)),
        )


registry: Registry[Target] = Registry("target", TargetUnavailable)


def register_target(target: Target) -> Target:
    """Add ``target`` to the registry under its name and return it; a duplicate name raises.

    Targets are values, so each ``targets/<name>.py`` builds one and registers it with a call rather than by
    decorating a factory function; its ``aliases`` are registered with it.
    """
    if not isinstance(target, Target):
        raise TypeError(f"register_target takes a Target, got {type(target).__name__}")
    registry.register(target.name, target)
    for alias in target.aliases:
        registry.alias(alias, target.name)
    return target
