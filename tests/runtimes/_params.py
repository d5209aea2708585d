"""Registry-driven test parameters: every registered target, skipped with the reason when unusable."""

from __future__ import annotations

import pytest

import targets
from export.bundle import ARTIFACT_BUILDERS
from runtimes import get_runtime
from sdk.errors import TargetUnavailable

# pytest markers (pyproject) per engine, so `-m "not openvino"` deselects engine-specific runs
_MARKS = {"openvino": "openvino", "tvm": "tvm", "tensorrt": "tensorrt", "integer": "qonnx"}


def target_params(names: list[str] | None = None) -> list:
    """One pytest.param per target, skipped when its engine or adapter is not usable here."""
    out = []
    for name in names if names is not None else targets.names():
        t = targets.get(name)
        marks = [getattr(pytest.mark, _MARKS[t.engine])] if t.engine in _MARKS else []
        reason = t.unavailable_reason()
        if reason is None and t.engine in ARTIFACT_BUILDERS:
            reason = f"{name}'s artifact is built by sdk.export only (tests/export/test_hls4ml.py runs it)"
        if reason is None:
            try:
                get_runtime(t.runtime)
            except TargetUnavailable as e:
                reason = str(e)
        if reason is not None:
            marks.append(pytest.mark.skip(reason=reason))
        out.append(pytest.param(name, marks=marks, id=name))
    return out
