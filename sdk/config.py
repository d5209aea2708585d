"""MixedPrecisionConfig: which (weight bits, activation bits) each quantizable layer uses.

Torch-free so the deploy path can read a bundle's config without importing training code.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from sdk.errors import ConfigError

__all__ = ["MixedPrecisionConfig", "VALID_BITS", "FLOAT_BITS", "check_bits", "CONFIG_FORMAT_VERSION"]

FLOAT_BITS = 32
VALID_BITS = frozenset({2, 3, 4, 5, 6, 7, 8, FLOAT_BITS})
CONFIG_FORMAT_VERSION = 1

BitPair = tuple[int, int]


def check_bits(pair: Any, where: str = "bit pair") -> BitPair:
    """Validate one (w_bits, a_bits) pair and return it as a tuple of ints."""
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ConfigError(f"{where}: expected a (w_bits, a_bits) pair, got {pair!r}. Use e.g. (4, 4).")
    out = []
    for kind, b in zip(("w_bits", "a_bits"), pair):
        if isinstance(b, bool) or not isinstance(b, int):
            raise ConfigError(f"{where}: {kind} must be an int, got {b!r} ({type(b).__name__}).")
        if b not in VALID_BITS:
            raise ConfigError(
                f"{where}: {kind}={b} is not supported. Use 2..8, or {FLOAT_BITS} to keep the layer float."
            )
        out.append(int(b))
    return out[0], out[1]


class MixedPrecisionConfig(MutableMapping[str, BitPair]):
    """Mapping layer name -> (w_bits, a_bits); 32 means float for that side.

    Layer names are the qualified module names of the model's Conv2d/Linear layers, in model order.
    """

    def __init__(self, pairs: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        self._pairs: dict[str, BitPair] = {}
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        for name, pair in items:
            self[name] = pair

    # -- construction ----------------------------------------------------------------------------------
    @classmethod
    def uniform(cls, model: Any, w_bits: int, a_bits: int) -> MixedPrecisionConfig:
        """Every quantizable layer of ``model`` (nn.Module or list of layer names) at (w_bits, a_bits)."""
        pair = check_bits((w_bits, a_bits))
        return cls({name: pair for name in _layer_names(model)})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MixedPrecisionConfig:
        if not isinstance(data, Mapping) or "layers" not in data:
            raise ConfigError("config data must be a dict with a 'layers' mapping; write it with to_json().")
        version = data.get("format_version", CONFIG_FORMAT_VERSION)
        if not isinstance(version, int) or version > CONFIG_FORMAT_VERSION:
            raise ConfigError(
                f"config format_version {version!r} is newer than this bpnas understands "
                f"({CONFIG_FORMAT_VERSION}); upgrade bpnas."
            )
        layers = data["layers"]
        if not isinstance(layers, Mapping):
            raise ConfigError("config 'layers' must map layer names to [w_bits, a_bits].")
        return cls({str(k): tuple(v) if isinstance(v, list) else v for k, v in layers.items()})

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> MixedPrecisionConfig:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError as e:
            raise ConfigError(f"config file {os.fspath(path)!r} does not exist.") from e
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"config file {os.fspath(path)!r} is not valid JSON: {e}") from e
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        layers = {k: list(v) for k, v in self._pairs.items()}
        return {"format_version": CONFIG_FORMAT_VERSION, "layers": layers}

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temp file, then rename)."""
        tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
        os.replace(tmp, path)

    # -- mapping protocol ------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> BitPair:
        try:
            return self._pairs[name]
        except KeyError:
            raise KeyError(f"layer {name!r} is not in this config: {list(self._pairs)[:8]}") from None

    def __setitem__(self, name: str, pair: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"layer names must be non-empty strings, got {name!r}.")
        self._pairs[name] = check_bits(pair, where=f"layer {name!r}")

    def __delitem__(self, name: str) -> None:
        del self._pairs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MixedPrecisionConfig):
            return self._pairs == other._pairs
        return NotImplemented

    def __hash__(self) -> int:  # mutable mapping: identity hash would be misleading
        raise TypeError("MixedPrecisionConfig is mutable and unhashable")

    def __repr__(self) -> str:
        body = ", ".join(f"{k}: {v}" for k, v in list(self._pairs.items())[:6])
        more = f", ... ({len(self)} layers)" if len(self) > 6 else ""
        return f"MixedPrecisionConfig({{{body}{more}}})"

    # -- helpers ---------------------------------------------------------------------------------------
    def copy(self) -> MixedPrecisionConfig:
        return MixedPrecisionConfig(self._pairs)

    def validate_for(self, model: Any) -> None:
        """Raise ConfigError unless the config names exactly the model's quantizable layers."""
        expected = list(_layer_names(model))
        unknown = [n for n in self._pairs if n not in expected]
        missing = [n for n in expected if n not in self._pairs]
        if unknown:
            raise ConfigError(
                f"config names layers the model does not have: {unknown[:5]}. "
                f"Quantizable layers are: {expected[:8]}{'...' if len(expected) > 8 else ''}."
            )
        if missing:
            raise ConfigError(
                f"config has no bits for layers {missing[:5]}; set them, or build the config with "
                "MixedPrecisionConfig.uniform(model, w, a) and override."
            )

    def mean_bits(self) -> tuple[float, float]:
        """Unweighted mean (w, a) bits over layers, for display only (use sdk.bops for cost)."""
        if not self._pairs:
            return math.nan, math.nan
        ws, as_ = zip(*self._pairs.values())
        return sum(ws) / len(ws), sum(as_) / len(as_)


def _layer_names(model: Any) -> list[str]:
    if isinstance(model, (list, tuple)) and all(isinstance(n, str) for n in model):
        return list(model)
    from sdk.quant.layers import quantizable_layer_names  # torch import only when given a model

    return quantizable_layer_names(model)
