"""``bpnas report``, ``bpnas demo`` and ``bpnas models``: what a run or bundle holds, and the quick tour."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sdk.cli._common import Formatter, say

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    r = sub.add_parser(
        "report",
        help="an HTML report of a search run folder or a bundle (or a BOPs table of a zoo model)",
        formatter_class=Formatter,
    )
    r.add_argument("source", nargs="?", default=None, help="a `bpnas search` run folder or a .bpnas bundle")
    r.add_argument("--out", default=None, help="report folder (default: SOURCE/report, or BUNDLE.report)")
    r.add_argument("--bundle", default=None, help="print a bundle's BOPs and precision tables (text)")
    r.add_argument("--model", default=None, help="print the BOPs table of this zoo model instead")
    r.add_argument("--num-classes", type=int, default=10, help="with --model")
    r.add_argument(
        "--config", help="with --model: MixedPrecisionConfig JSON (default: uniform --w-bits/--a-bits)"
    )
    r.add_argument("--w-bits", type=int, default=4, help="with --model")
    r.add_argument("--a-bits", type=int, default=4, help="with --model")
    r.add_argument("--input-shape", type=int, nargs=4, help="with --model (default: the zoo model's)")
    r.set_defaults(func=cmd_report)

    d = sub.add_parser(
        "demo",
        help="search -> retrain -> export -> run on every installed target, on digits",
        formatter_class=Formatter,
    )
    d.add_argument("--task", choices=("classify", "detect"), default="classify",
                   help="classify: digits; detect: synthetic shape scenes (sdk/demo_detect.py)")  # fmt: skip
    d.add_argument("--out", default=None, help="output folder (bundle, plots; runs/demo or runs/demo-detect)")
    d.add_argument("--epochs", type=int, default=None, help="float training epochs (default: the preset's)")
    d.add_argument(
        "--b-max", type=float, default=None, help="BOPs budget in average bits (classify 3, detect 4)"
    )
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--quick", action="store_true", help="fewer epochs, for smoke tests")
    d.set_defaults(func=cmd_demo)

    m = sub.add_parser(
        "models", help="list the zoo models --model accepts by name", formatter_class=Formatter
    )
    m.set_defaults(func=cmd_models)


def cmd_report(args: argparse.Namespace) -> int:
    import sdk

    if args.bundle:
        from runtimes.bundle import read_manifest

        manifest = read_manifest(args.bundle)
        print(manifest.bops.table())
        print(_artifact_sizes(manifest))
        if manifest.effective_precision:
            print(manifest.precision_table())
        return 0
    if args.model:
        model = sdk.models.create(args.model, num_classes=args.num_classes)
        shape = tuple(args.input_shape) if args.input_shape else sdk.models.default_input_shape(args.model)
        if args.config:
            cfg = sdk.MixedPrecisionConfig.from_json(args.config)
        else:
            cfg = sdk.MixedPrecisionConfig.uniform(model, args.w_bits, args.a_bits)
        print(sdk.bops(model, cfg, input_shape=shape).table())
        return 0
    if not args.source:
        raise sdk.InputError("pass a search run folder or a bundle (or --model NAME for a BOPs table).")
    from sdk.report import write_report

    source = Path(args.source)
    default = source.with_suffix(".report") if source.suffix == ".bpnas" else source / "report"
    page = write_report(source, Path(args.out) if args.out else default)
    say(args, f"wrote {page}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sdk.demo import run_demo

    run_demo(
        out_dir=args.out,
        epochs=args.epochs,
        b_max=args.b_max,
        seed=args.seed,
        quick=args.quick,
        task=args.task,
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    import sdk

    for name in sdk.models.names():
        print(name)
    return 0


def _artifact_sizes(manifest: Any) -> str:
    """One line per artifact: file, format, bytes on disk (packed weights show here), targets it serves."""
    lines = [f"{'artifact':<34} {'format':<15} {'bytes':>12}  targets"]
    for file, entry in manifest.artifacts.items():
        users = ", ".join(sorted(t for t, f in manifest.targets.items() if f == file))
        lines.append(f"{file:<34} {entry.format:<15} {entry.bytes:>12,}  {users}")
    return "\n".join(lines)
