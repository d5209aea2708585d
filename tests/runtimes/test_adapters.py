"""Every available target's adapter honours the Session protocol on a tiny QDQ bundle (registry-driven)."""

from __future__ import annotations

import numpy as np
import pytest

import targets
from runtimes import RuntimeOptions, Session, get_runtime
from tests._threads import run_in_threads
from tests.runtimes._bundles import LAYERS, make_bundle, manifest_of, random_input, reference
from tests.runtimes._params import target_params

STEP = 6.0 / 127  # one step of the signed 8-bit quantized logits


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    pairs = {"conv1": (8, 8), "conv2": (4, 4), "conv3": (3, 8), "fc": (8, 8)}
    return make_bundle(tmp_path_factory.mktemp("adapters"), pairs=pairs, targets=targets.names())


def _session(bundle, name, **kw) -> Session:
    t = targets.get(name)
    return get_runtime(t.runtime)(bundle / "model.onnx", manifest_of(bundle), RuntimeOptions(**kw))


@pytest.mark.parametrize("name", target_params())
def test_runs_like_the_reference(bundle, name):
    s = _session(bundle, name, threads=1)
    try:
        assert isinstance(s, Session)
        assert (s.input_name, s.output_names) == ("input", ("logits",))
        for n in (1, 5):
            x = random_input(n, seed=n)
            outputs = s.run(x)
            assert list(outputs) == list(s.output_names)  # every named output, nothing else
            y = outputs["logits"]
            assert y.dtype == np.float32 and y.shape == (n, 10)
            np.testing.assert_allclose(y, reference(bundle, x), atol=STEP * 1.01, rtol=0)
    finally:
        s.close()


@pytest.mark.parametrize("name", target_params())
def test_reports_precision_for_every_layer(bundle, name):
    s = _session(bundle, name)
    try:
        precisions = s.effective_precision()
        assert [p.layer for p in precisions] == list(LAYERS)
        assert all(p.precision for p in precisions)
        assert s.layer_times() is None  # profiling off
    finally:
        s.close()


@pytest.mark.parametrize("name", target_params())
def test_profiling_gives_per_layer_times(bundle, name):
    s = _session(bundle, name, profiling=True)
    try:
        x = random_input(2)
        for _ in range(4):
            s.run(x)
        times = s.layer_times()
        assert times, "profiling on, but no layer times"
        assert all(t.ms >= 0 and t.name and t.op_type is not None for t in times)
        # names are the engine's (TVM reports fused kernels); ORT and OpenVINO map theirs to bpnas layers,
        # which their own tests check
    finally:
        s.close()


@pytest.mark.parametrize("name", target_params())
def test_a_thread_safe_session_agrees_across_threads(bundle, name):
    """An adapter declaring ``thread_safe`` (the Predictor then drops its lock) keeps that promise."""
    s = _session(bundle, name, threads=1)
    try:
        if not getattr(s, "thread_safe", False):
            pytest.skip(f"{name}'s session is not thread-safe; the Predictor serializes its calls")
        x = random_input(2)
        want = s.run(x)
        results = run_in_threads(lambda: s.run(x)["logits"])
        assert len(results) == 80 and all(np.array_equal(r, want["logits"]) for r in results)
    finally:
        s.close()
