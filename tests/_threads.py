"""Call one function from several threads at once (the adapters' and Predictor's thread-safety tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def run_in_threads(fn: Callable[[], Any], *, threads: int = 4, calls: int = 20) -> list[Any]:
    """``calls`` calls of ``fn`` in each of ``threads`` threads started together; every result, in no
    particular order. The first exception any thread raised is re-raised here."""
    results: list[Any] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(calls):
                results.append(fn())
        except BaseException as e:  # pragma: no cover - re-raised below
            errors.append(e)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return results
