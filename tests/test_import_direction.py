"""Imports run one way (issue 11): read every ``import`` statement of sdk, calibration, export, targets and
runtimes with ``ast`` (nothing is executed) and fail on any that runs up the layer order below.

Layers, lowest first (a module may import its own layer and those below it):

0. ``base``: ``sdk`` itself (its package file imports only base modules; the rest resolves lazily by name),
   sdk.errors, sdk.config, sdk.cost, sdk._registry, sdk.preprocess.
1. ``targets``: what each engine runs (data).
2. ``runtimes``: the bundle format and the engine adapters.
3. ``deploy``: sdk.predictor and sdk.postprocess, the ``sdk.load`` path.
4. ``model``: the quantized-model library export and calibration consume: sdk.quant, sdk.models, sdk.reshape,
   sdk.counting.
5. ``calibration``.
6. ``export``: it may load a bundle through the deploy layer to check it.
7. ``front``: the rest of sdk (search, training, checkpoints, CLI, demo, data).

So the deploy path (layers 1-3) can never import export. Imports under ``if TYPE_CHECKING:`` do not run and
are not counted; imports inside functions are (they run when the function does).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sdk", "calibration", "export", "targets", "runtimes")
BASE = ("sdk", "sdk.errors", "sdk.config", "sdk.cost", "sdk._registry", "sdk.preprocess")
DEPLOY = ("sdk.predictor", "sdk.postprocess")
MODEL = ("sdk.quant", "sdk.models", "sdk.reshape", "sdk.counting")
LAYERS = ("base", "targets", "runtimes", "deploy", "model", "calibration", "export", "front")

# The one known exception: MixedPrecisionConfig.uniform(model) lists a torch model's quantizable layers
# through sdk.quant.layers, imported inside that method (only a caller holding a torch model reaches it; the
# deploy path reads configs from JSON and never does).
ALLOWED = {("sdk.config", "sdk.quant.layers"): "uniform(model) needs a torch model's layer names"}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layer(module: str) -> int:
    """The layer of a module of the five packages (by its dotted name)."""
    if module in BASE:
        return LAYERS.index("base")
    if _within(module, DEPLOY):
        return LAYERS.index("deploy")
    if _within(module, MODEL):
        return LAYERS.index("model")
    top = module.split(".")[0]
    return LAYERS.index("front" if top == "sdk" else top)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imports(source: str, module: str, is_package: bool) -> list[str]:
    """Every module of the five packages that ``source`` imports (relative imports resolved); imports under
    ``if TYPE_CHECKING:`` left out."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                for other in getattr(child, "orelse", []):
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.extend(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = package[: len(package) - (child.level - 1)]
                    base = ".".join([*anchor, *([child.module] if child.module else [])])
                found.append(base)
                # "from pkg import mod" imports the submodule pkg.mod when there is one
                found.extend(f"{base}.{a.name}" for a in child.names if _is_module(f"{base}.{a.name}"))
            visit(child)

    visit(ast.parse(source))
    return [name for name in found if name.split(".")[0] in PACKAGES]


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _modules() -> dict[str, tuple[str, bool]]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            out[module_name(path)] = (path.read_text(encoding="utf-8"), path.name == "__init__.py")
    return out


def upward_imports(modules: dict[str, tuple[str, bool]]) -> list[str]:
    """``a -> b (layer x -> layer y)`` for each import running up the order and not allowed above."""
    bad = []
    for module, (source, is_package) in sorted(modules.items()):
        for target in sorted(set(imports(source, module, is_package))):
            if layer(target) > layer(module) and (module, target) not in ALLOWED:
                bad.append(f"{module} -> {target} ({LAYERS[layer(module)]} -> {LAYERS[layer(target)]})")
    return bad


def test_every_import_runs_down_the_layer_order():
    bad = upward_imports(_modules())
    assert not bad, "imports running up the layer order:\n  " + "\n  ".join(bad)


def test_the_deploy_path_never_imports_export():
    deploy = {m: s for m, s in _modules().items() if _within(m, ("targets", "runtimes", *DEPLOY))}
    assert "sdk.predictor" in deploy and "runtimes.bundle" in deploy
    bad = [
        f"{m} -> {t}"
        for m, (source, is_package) in deploy.items()
        for t in imports(source, m, is_package)
        if _within(t, ("export",)) and (m, t) not in ALLOWED
    ]
    assert not bad, "the deploy path imports export:\n  " + "\n  ".join(bad)


def test_the_allow_list_holds_only_imports_that_exist():
    """An allowed import that is gone (its fix merged) leaves the list, so the list cannot hide new ones."""
    present = {(m, t) for m, (s, p) in _modules().items() for t in imports(s, m, p)}
    assert set(ALLOWED) <= present, f"remove from ALLOWED: {sorted(set(ALLOWED) - present)}"


@pytest.mark.parametrize(
    ("module", "source", "upward"),
    [
        ("runtimes.onnxruntime", "from export.options import LoweringOptions\n", True),
        ("sdk.predictor", "def f():\n    import export.bundle\n", True),
        ("targets.tvm", "from ..runtimes import bundle\n", True),
        ("export.bundle", "from runtimes.bundle import Manifest\nimport sdk.predictor\n", False),
        ("runtimes.base", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import export\n", False),
    ],
)
def test_the_walker_sees_an_upward_import(module, source, upward):
    assert bool(upward_imports({module: (source, False)})) is upward
