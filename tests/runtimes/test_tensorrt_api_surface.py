"""Every TensorRT name the adapter touches exists in the real bindings of every version it claims.

The names are read from the adapter's source with ``ast`` (not a hand list): every attribute reached from
the ``tensorrt`` module or a TensorRT object, every method a TensorRT base class is overridden with, every
name probed with ``hasattr``, and the renamed attributes of ``ALTERNATIVE_NAMES``. Methods, classes and enum
values must be strings of ``tensorrt.so``; properties (attributes read or assigned, not called) must be
documented as ``:ivar name:``. The wheels come from tests/runtimes/_trt_bindings.py (run it once); without
them the test skips and says so. Limit: a string table says a name exists in the bindings, not on which class.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runtimes._tensorrt_build import WEAK_TYPING_FLAGS
from runtimes.tensorrt import ALTERNATIVE_NAMES, SUPPORTED_VERSIONS
from tests.runtimes import _trt_bindings

ROOT = Path(__file__).resolve().parents[2]
#: adapter modules that call TensorRT; the other runtimes/_tensorrt_*.py files must not reference ``trt``
TRT_MODULES = ("runtimes/tensorrt.py", "runtimes/_tensorrt_build.py")
TRT_FREE = ("runtimes/_tensorrt_inspect.py", "runtimes/_tensorrt_memory.py")
#: variables holding TensorRT objects in TRT_MODULES, and those holding anything else; every receiver of an
#: attribute in those modules must be in one of the two, so a new TensorRT call cannot slip past unchecked
TRT_OBJECTS = {"trt", "builder", "network", "parser", "config", "profile", "layer", "runtime", "engine",
               "inspector", "self._context", "self._engine"}  # fmt: skip
OTHER_OBJECTS = {"_log", "artifact", "logging", "os", "path", "spec", "timing_path", "tmp", "warnings",
                 "<Constant>", "<BoolOp>", "TensorRTOptions", "cls", "cudart", "difflib", "engine_path", "f",
                 "functools", "h", "hashlib", "host_out", "info", "json", "key", "layers", "m", "manifest",
                 "math", "name", "np", "options", "opts", "outs", "pairs", "parts", "prop", "re", "self._io",
                 "self._times", "times", "types", "x"}  # fmt: skip


@dataclass
class Used:
    """The TensorRT names the adapter uses, by kind."""

    names: set[str] = field(default_factory=set)  # methods, classes, enum members: must be strings
    properties: set[str] = field(default_factory=set)  # read or assigned attributes: must be documented
    probed: set[str] = field(default_factory=set)  # hasattr(trt-object, "name"): must exist somewhere
    unclassified: set[str] = field(default_factory=set)


def _receiver(node: ast.expr) -> tuple[str | None, bool]:
    """(the variable an attribute chain starts from, whether the chain passes through a call)."""
    through_call = False
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        through_call |= isinstance(node, ast.Call)
        node = node.func if isinstance(node, ast.Call) else node.value
    if not isinstance(node, ast.Name):
        return f"<{type(node).__name__}>", through_call
    return node.id, through_call


def _root(node: ast.Attribute) -> tuple[str | None, bool]:
    """As :func:`_receiver`, where ``self.<attr>`` counts as one variable; None for ``self.<attr>`` itself."""
    if isinstance(node.value, ast.Name) and node.value.id == "self":
        return None, False  # the session's own attribute
    first, through_call = None, False
    cur: ast.expr = node.value
    while isinstance(cur, (ast.Attribute, ast.Call, ast.Subscript)):
        through_call |= isinstance(cur, ast.Call)
        if isinstance(cur, ast.Attribute):
            first = cur.attr
        cur = cur.func if isinstance(cur, ast.Call) else cur.value
    if isinstance(cur, ast.Name) and cur.id == "self":
        return f"self.{first}", through_call
    return _receiver(node.value)


def used_names() -> Used:
    used = Used()
    for rel in TRT_MODULES:
        tree = ast.parse((ROOT / rel).read_text())
        called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any("trt" in ast.unparse(b) for b in node.bases):
                used.names |= {f.name for f in node.body if isinstance(f, ast.FunctionDef)} - {"__init__"}
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("hasattr", "getattr", "setattr"):
                target, *rest = node.args
                if _receiver(target)[0] in TRT_OBJECTS and rest and isinstance(rest[0], ast.Constant):
                    used.probed.add(str(rest[0].value))
            if not isinstance(node, ast.Attribute) or node.attr.startswith("_"):
                continue
            root, via_call = _root(node)
            if root is None or root in OTHER_OBJECTS:
                continue
            if root not in TRT_OBJECTS:
                used.unclassified.add(f"{rel}: {root}.{node.attr}")
            elif id(node) in called or (root == "trt" and not via_call):
                used.names.add(node.attr)  # a method, or a class/enum reached from the module
            else:
                used.properties.add(node.attr)
    return used


def _version(text: str) -> tuple[int, int]:
    major, minor = (int(p) for p in re.findall(r"\d+", text)[:2])
    return major, minor


def _claimed() -> list[_trt_bindings.Bindings]:
    found = [b for b in _trt_bindings.available() if SUPPORTED_VERSIONS[0] <= _version(b.version)]
    found = [b for b in found if _version(b.version) <= SUPPORTED_VERSIONS[1]]
    ends = {_version(b.version) for b in found}
    if not {SUPPORTED_VERSIONS[0], SUPPORTED_VERSIONS[1]} <= ends:
        pytest.skip(
            f"TensorRT bindings wheels for {SUPPORTED_VERSIONS[0]} and {SUPPORTED_VERSIONS[1]} are not in "
            f"{_trt_bindings.CACHE}; fetch them with `python tests/runtimes/_trt_bindings.py`."
        )
    return found


def test_every_receiver_is_classified_and_trt_free_modules_stay_free():
    used = used_names()
    assert not used.unclassified, (
        f"classify these receivers in TRT_OBJECTS or OTHER_OBJECTS: {used.unclassified}"
    )
    assert {"set_input_shape", "execute_async_v3", "build_serialized_network", "STRONGLY_TYPED"} <= used.names
    assert {"DLA_core", "profiling_verbosity", "num_io_tensors"} <= used.properties
    for rel in TRT_FREE:
        names = {n.id for n in ast.walk(ast.parse((ROOT / rel).read_text())) if isinstance(n, ast.Name)}
        assert "trt" not in names, f"{rel} is documented TensorRT-free but uses trt"


def test_every_name_exists_in_every_claimed_binding_version():
    used, versions = used_names(), _claimed()
    missing = {}
    for b in versions:
        gone = sorted(n for n in used.names if b.has_name(n) is None)
        gone += sorted(f":ivar {p}:" for p in used.properties if not b.has_property(p))
        gone += [f"one of {g}" for g in ALTERNATIVE_NAMES if not any(b.has_property(p) for p in g)]
        if gone:
            missing[f"{b.package} {b.version}"] = gone
    assert not missing, f"names the adapter uses that these TensorRT bindings lack: {missing}"
    for name in used.probed:  # a probe for a name no version has is a typo
        assert any(b.has_name(name) for b in versions), name
    for b in versions:  # weak typing's flags: on every claimed 10.x (the adapter refuses "weak" on 11)
        if _version(b.version) < (11, 0):
            assert all(b.has_name(f) for f in WEAK_TYPING_FLAGS), (b.version, WEAK_TYPING_FLAGS)


def test_the_check_tells_versions_apart():
    """Controls: the same lookups find what changed between versions, so a missing name would be caught."""
    by_version = {_version(b.version): b for b in _claimed()}
    oldest, newest = by_version[SUPPORTED_VERSIONS[0]], by_version[SUPPORTED_VERSIONS[1]]
    assert oldest.has_property("context") and not newest.has_property("context")  # renamed in 10.x
    assert newest.has_property("execution_context") and not oldest.has_property("execution_context")
    assert oldest.has_name("EXPLICIT_BATCH") == "exact" and newest.has_name("EXPLICIT_BATCH") is None
    assert all(b.has_name("execute_async_v4") is None for b in by_version.values())
    assert oldest.has_name("FP16") and newest.has_name("FP16") is None  # BuilderFlag.FP16 went with 11.0


def test_report(capsys):
    """Prints the figures for the closing note (run with -s)."""
    used, versions = used_names(), _claimed()
    with capsys.disabled():
        print(f"\nadapter uses {len(used.names)} names, {len(used.properties)} properties, "
              f"{len(used.probed)} probes, {len(ALTERNATIVE_NAMES)} renamed groups")  # fmt: skip
        for b in versions:
            tails = sorted(n for n in used.names if b.has_name(n) == "tail")
            print(f"  {b.package} {b.version}: all present ({len(tails)} only as merged tails: {tails})")
