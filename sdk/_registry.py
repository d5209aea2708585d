"""A name-keyed registry filled by a decorator; lookups ignore case; unknown names suggest close matches."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from sdk.errors import BpnasError, InputError

T = TypeVar("T")


def did_you_mean(name: str, known: Iterable[str], n: int = 1) -> str:
    """The hint every unknown-name error carries: ``" Did you mean 'x'?"`` for the closest of ``known`` to
    ``name``, empty when none is close. difflib is imported on this error path only (deploy cold start)."""
    import difflib

    close = difflib.get_close_matches(str(name), list(known), n=n)
    return f" Did you mean {' or '.join(map(repr, close))}?" if close else ""


class Registry(Generic[T]):
    """Maps names to objects. Duplicate names raise; lookups of unknown names suggest close matches."""

    def __init__(self, kind: str, error: type[BpnasError] = InputError) -> None:
        self.kind = kind
        self._error = error
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items or name in self._aliases:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def decorator(self, name: str) -> Callable[[T], T]:
        def wrap(item: T) -> T:
            return self.register(name, item)

        return wrap

    def alias(self, alias: str, name: str) -> None:
        if alias in self._items or alias in self._aliases:
            raise ValueError(f"{self.kind} {alias!r} is already registered")
        self._aliases[alias] = name

    def resolve(self, name: str) -> str:
        """The canonical name for ``name`` (aliases followed); raises with suggestions when unknown."""
        if not isinstance(name, str):
            raise self._error(f"{self.kind} name must be a string, got {type(name).__name__}")
        if name in self._items:
            return name
        if name in self._aliases:
            return self._aliases[name]
        folded = {k.casefold(): k for k in [*self._items, *self._aliases]}
        if name.casefold() in folded:  # "OpenVINO" -> "openvino": names are case-insensitive
            return self.resolve(folded[name.casefold()])
        import difflib  # only on the error path: keeps it off the deploy path's cold start

        known = sorted([*self._items, *self._aliases])
        close = [folded[c] for c in difflib.get_close_matches(name.casefold(), list(folded), n=3)]
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise self._error(f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(known)}.")

    def get(self, name: str) -> T:
        return self._items[self.resolve(name)]

    def names(self) -> list[str]:
        return sorted(self._items)

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
