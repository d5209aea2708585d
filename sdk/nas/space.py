"""The search space: which layers share a choice (groups), which (w, a) pairs each group may take, and the
cost coefficients of Eq. 10 so expected BOPs come out in average bits (Eq. 4).

Groups (``groups=``):
- ``"layer"``: every quantizable layer (Conv2d/Linear) chooses on its own.
- ``"block"``: a *block* is any module that directly owns an ``sdk.models.layers.Add`` child (a residual
  block: ResNet BasicBlock/Bottleneck, MobileNetV2 InvertedResidual with a skip). Every quantizable layer
  below that module (its convs and its shortcut conv) shares one choice; a layer below nested blocks joins
  the innermost one. Layers outside every block (stem, classifier, MobileNetV2 blocks without a skip)
  choose on their own. Group names are the block's module name, or the layer's name.
- an explicit sequence of layer-name lists: each list is one group; unlisted layers choose on their own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from sdk.config import MixedPrecisionConfig, check_bits
from sdk.cost import BopsReport, report_from_layers
from sdk.errors import BudgetInfeasible, ConfigError, InputError
from sdk.models.layers import Add

__all__ = [
    "PAPER_CANDIDATES",
    "BitPair",
    "Group",
    "SearchSpace",
    "build_space",
    "normalize_candidates",
    "restrict_to_target",
    "find_groups",
]

BitPair = tuple[int, int]
LayerShape = tuple[str, int, int, str]
# Sect. 4.1: the ResNet20/CIFAR-10 supernet's candidate operations.
PAPER_CANDIDATES: tuple[BitPair, ...] = ((2, 3), (2, 4), (3, 3), (3, 4), (4, 4), (4, 6), (6, 4), (8, 4))


@dataclass(frozen=True)
class Group:
    """Layers that take one (w, a) choice together, their summed MACs and their candidate pairs."""

    name: str
    layers: tuple[str, ...]
    macs: int
    candidates: tuple[BitPair, ...]

    def cost(self, j: int) -> int:
        """BOPs of the group at candidate ``j`` (Eq. 3 summed over its layers)."""
        w, a = self.candidates[j]
        return self.macs * w * a

    @property
    def cheapest(self) -> int:
        return min(range(len(self.candidates)), key=lambda j: (self.cost(j), j))


@dataclass(frozen=True)
class SearchSpace:
    """Groups in model order plus the (name, MACs, params, op) rows of ``sdk.bops.layer_shapes``."""

    groups: tuple[Group, ...]
    rows: tuple[LayerShape, ...]

    @property
    def total_macs(self) -> int:
        return sum(r[1] for r in self.rows)

    def coefficients(self) -> list[list[float]]:
        """c_gj = MAC_g * w_j * a_j / sum MAC, so E_bits = sqrt(sum_gj p_gj c_gj) (Eq. 4 and 10)."""
        total = float(self.total_macs)
        return [[g.cost(j) / total for j in range(len(g.candidates))] for g in self.groups]

    def config(self, choice: Sequence[int]) -> MixedPrecisionConfig:
        """The config that gives every layer of group g the pair ``candidates[choice[g]]``."""
        pairs: dict[str, BitPair] = {}
        for g, j in zip(self.groups, choice):
            for layer in g.layers:
                pairs[layer] = g.candidates[j]
        return MixedPrecisionConfig((r[0], pairs[r[0]]) for r in self.rows)

    def report(self, choice: Sequence[int]) -> BopsReport:
        return report_from_layers(self.rows, self.config(choice))

    def avg_bits(self, choice: Sequence[int]) -> float:
        return self.report(choice).avg_bits

    def cheapest_choice(self) -> list[int]:
        return [g.cheapest for g in self.groups]

    def min_avg_bits(self) -> float:
        return self.avg_bits(self.cheapest_choice())

    def check_feasible(self, b_max: float) -> None:
        """Raise BudgetInfeasible when even the cheapest candidate of every group exceeds ``b_max``."""
        cheapest = self.cheapest_choice()
        if self.report(cheapest).within(b_max):
            return
        low = self.min_avg_bits()
        pairs = sorted({g.candidates[j] for g, j in zip(self.groups, cheapest)})
        floor = min(w * a for w, a in pairs)
        cheaper = [p for p in ((2, 2), (2, 3), (3, 2), (3, 3)) if p[0] * p[1] < floor]
        also = f", or add cheaper candidates such as {' or '.join(map(str, cheaper[:2]))}" if cheaper else ""
        raise BudgetInfeasible(
            f"b_max={b_max:g} bits cannot be met: the cheapest candidate in every layer {pairs} already "
            f"averages {low:.4f} bits (Eq. 4), the minimum achievable with these candidates. Raise b_max to "
            f">= {math.ceil(low * 1000) / 1000:.3f}{also}."
        )


def normalize_candidates(candidates: Iterable[Any]) -> tuple[BitPair, ...]:
    """Validate and de-duplicate (w, a) pairs, keeping their order."""
    if isinstance(candidates, (str, bytes)):
        raise ConfigError(f"candidates must be (w_bits, a_bits) pairs, got {candidates!r}.")
    out: list[BitPair] = []
    for c in candidates:
        pair = check_bits(c, where="candidate")
        if pair not in out:
            out.append(pair)
    if not out:
        raise ConfigError(
            "candidates is empty; pass (w_bits, a_bits) pairs, e.g. the paper's PAPER_CANDIDATES."
        )
    return tuple(out)


def restrict_to_target(candidates: tuple[BitPair, ...], target: Any) -> tuple[BitPair, ...]:
    """Keep the candidates ``target`` runs natively: a target name (``targets.get(name).native_pairs``), a
    ``targets.Target``, or an explicit iterable of allowed (w, a) pairs. ConfigError when none remain."""
    if target is None:
        return candidates
    if isinstance(target, str):
        allowed, where = _target_pairs(target), f"target {target!r}"
    elif hasattr(target, "native_pairs"):  # a targets.Target (e.g. with its cost model replaced)
        allowed, where = {tuple(p) for p in target.native_pairs}, f"target {target.name!r}"
    else:
        allowed, where = set(normalize_candidates(target)), "the allowed pairs"
    kept = tuple(c for c in candidates if c in allowed)
    if not kept:
        raise ConfigError(
            f"none of the candidates {list(candidates)} is allowed by {where} (allows {sorted(allowed)}); "
            "pass candidates from that list, or another target."
        )
    return kept


def _target_pairs(name: str) -> set[BitPair]:
    from sdk.errors import TargetUnavailable

    try:
        import targets  # type: ignore[import-not-found]
    except ImportError as e:
        raise TargetUnavailable(
            f"cannot restrict candidates to target {name!r}: the 'targets' package is not importable ({e}). "
            "Pass target=[(w, a), ...] with the pairs it runs instead."
        ) from e
    pairs = targets.get(name).native_pairs
    return {check_bits(tuple(p), where=f"target {name!r} native pair") for p in pairs}


def find_groups(model: nn.Module, layer_names: Sequence[str], groups: Any) -> list[tuple[str, list[str]]]:
    """(group name, layer names) in model order, per the module docstring's rules."""
    if groups == "layer":
        return [(n, [n]) for n in layer_names]
    if groups == "block":
        owners = [name for name, m in model.named_modules() if any(isinstance(c, Add) for c in m.children())]
        of: dict[str, str] = {}
        for layer in layer_names:
            inside = [o for o in owners if o == "" or layer.startswith(o + ".")]
            of[layer] = max(inside, key=len) if inside else layer
        return _ordered(layer_names, of)
    if isinstance(groups, str) or not isinstance(groups, Sequence):
        raise InputError(f"groups must be 'layer', 'block' or a list of layer-name lists, got {groups!r}.")
    of = {n: n for n in layer_names}
    for members in groups:
        members = list(members)
        unknown = [n for n in members if n not in of]
        if unknown or not members:
            raise InputError(
                f"group {members!r} names layers the model lacks: {unknown}; use {list(of)[:6]}..."
            )
        for n in members:
            of[n] = members[0]
    return _ordered(layer_names, of)


def _ordered(layer_names: Sequence[str], of: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    out: dict[str, list[str]] = {}
    for n in layer_names:
        out.setdefault(of[n] or "model", []).append(n)
    return list(out.items())


def build_space(
    rows: Sequence[LayerShape],
    named_groups: Sequence[tuple[str, Sequence[str]]],
    candidates: tuple[BitPair, ...],
) -> SearchSpace:
    """A SearchSpace with every group offered the same candidates."""
    macs = {r[0]: int(r[1]) for r in rows}
    groups = tuple(Group(name, tuple(ls), sum(macs[n] for n in ls), candidates) for name, ls in named_groups)
    return SearchSpace(groups, tuple((str(n), int(m), int(p), str(o)) for n, m, p, o in rows))
