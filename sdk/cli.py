"""The `bpnas` command line: one small function per subcommand; heavy imports happen inside them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sdk.errors import BpnasError

__all__ = ["main"]


def _cmd_demo(args: argparse.Namespace) -> int:
    from sdk.demo import run_demo

    run_demo(out_dir=args.out, epochs=args.epochs, b_max=args.b_max, seed=args.seed, quick=args.quick)
    return 0


def _cmd_targets(args: argparse.Namespace) -> int:
    import targets

    missing = targets.unavailable()  # name -> reason, with the install hint
    for name in targets.names():
        t = targets.get(name)
        print(f"{name:<12} {t.engine:<12} {t.device:<5} {missing.get(name, 'available')}")
    for alias, name in targets.aliases().items():
        print(f"{alias:<12} -> {name}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    import sdk

    if args.bundle:
        from runtimes.bundle import read_manifest

        manifest = read_manifest(args.bundle)
        print(manifest.bops.table())
        print(_artifact_sizes(manifest))
        if manifest.effective_precision:
            print(manifest.precision_table())
        return 0
    model = sdk.models.create(args.model, num_classes=args.num_classes)
    shape = tuple(args.input_shape) if args.input_shape else sdk.models.default_input_shape(args.model)
    if args.config:
        cfg = sdk.MixedPrecisionConfig.from_json(args.config)
    else:
        cfg = sdk.MixedPrecisionConfig.uniform(model, args.w_bits, args.a_bits)
    print(sdk.bops(model, cfg, input_shape=shape).table())
    return 0


def _artifact_sizes(manifest: Any) -> str:
    """One line per artifact: file, format, bytes on disk (packed weights show here), targets it serves."""
    lines = [f"{'artifact':<34} {'format':<15} {'bytes':>12}  targets"]
    for file, entry in manifest.artifacts.items():
        users = ", ".join(sorted(t for t, f in manifest.targets.items() if f == file))
        lines.append(f"{file:<34} {entry.format:<15} {entry.bytes:>12,}  {users}")
    return "\n".join(lines)


def _cmd_retrain(args: argparse.Namespace) -> int:
    import sdk
    from sdk.checkpoint import data_from_spec, save_checkpoint
    from sdk.training import evaluate, train

    data = data_from_spec(args.data, seed=args.seed)
    model = sdk.models.create(args.model, num_classes=data.num_classes, in_channels=data.input_shape[1])
    train(model, data.train, data.val, epochs=args.float_epochs, reshape=True, seed=args.seed)
    cfg = sdk.MixedPrecisionConfig.from_json(args.config)
    qmodel = sdk.retrain(model, cfg, data.train, data.val, epochs=args.epochs, seed=args.seed)
    print(f"test accuracy {100 * evaluate(qmodel, data.test):.2f}%")
    save_checkpoint(
        args.out, qmodel, model=args.model, num_classes=data.num_classes, in_channels=data.input_shape[1]
    )
    print(f"wrote {args.out}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    import sdk
    from sdk.checkpoint import data_from_spec, load_checkpoint

    qmodel, _meta = load_checkpoint(args.checkpoint)
    data = data_from_spec(args.data)
    x, _ = next(iter(data.test))
    bundle = sdk.export(
        qmodel.eval(),
        args.out,
        example_input=x[:1],
        targets=args.targets,
        labels=list(data.labels),
        inspect=not args.no_inspect,
    )
    print(f"wrote {bundle}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    import sdk

    p = sdk.load(args.bundle, target=args.target)
    logits = p.predict(args.images if len(args.images) > 1 else args.images[0])
    for path, row in zip(args.images, np.atleast_2d(logits)):
        k = int(np.argmax(row))
        label = p.labels[k] if p.labels else str(k)
        print(f"{path}\t{label}\t{float(row[k]):.4f}")
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    import sdk

    rep = sdk.load(args.bundle, target=args.target, threads=args.threads).profile(
        runs=args.runs, warmup=args.warmup, batch=args.batch
    )
    print(rep.table() if hasattr(rep, "table") else rep)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import sdk
    import targets
    from runtimes.bundle import read_manifest

    carried = read_manifest(args.bundle).targets  # verifies the bundle before any output
    names = args.targets or [t for t in targets.available() if t in carried]
    if not names:
        raise sdk.TargetUnavailable(
            f"none of the bundle's targets {sorted(carried)} is installed here (installed: "
            f"{', '.join(targets.available())}); re-export for one of those."
        )
    print(f"{'target':<12} {'p50 ms':>8} {'p90 ms':>8} {'fps':>8} {'avg bits':>8}")
    for name in names:
        with sdk.load(args.bundle, target=name, threads=args.threads) as predictor:
            rep = predictor.profile(runs=args.runs, warmup=args.warmup)
        print(f"{name:<12} {rep.p50_ms:>8.3f} {rep.p90_ms:>8.3f} {rep.fps:>8.1f} {rep.avg_bits:>8.3f}")
    return 0


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bpnas", description="Mixed-precision search and deployment (BP-NAS).")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="search -> retrain -> export -> run on every installed target, on digits")
    d.add_argument("--out", default="runs/demo", help="output directory (bundle, plots)")
    d.add_argument("--epochs", type=int, default=None, help="float training epochs (default: preset)")
    d.add_argument("--b-max", type=float, default=3.0, help="BOPs budget in average bits")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--quick", action="store_true", help="fewer epochs, for smoke tests")
    d.set_defaults(func=_cmd_demo)

    t = sub.add_parser("targets", help="list targets and whether their engine is installed")
    t.set_defaults(func=_cmd_targets)

    r = sub.add_parser("report", help="print the BOPs table of a zoo model + config, or of a bundle")
    r.add_argument("--bundle", help="a .bpnas bundle")
    r.add_argument("--model", default="resnet20")
    r.add_argument("--num-classes", type=int, default=10)
    r.add_argument("--config", help="MixedPrecisionConfig JSON")
    r.add_argument("--w-bits", type=int, default=4)
    r.add_argument("--a-bits", type=int, default=4)
    r.add_argument("--input-shape", type=int, nargs=4)
    r.set_defaults(func=_cmd_report)

    s = sub.add_parser("search", help="BP-NAS search (and retraining); `bpnas search --help` for options")
    s.add_argument("options", nargs=argparse.REMAINDER, help="see `bpnas search --help`")

    rt = sub.add_parser(
        "retrain", help="train float (reshaped), then QAT-retrain a config; writes a checkpoint"
    )
    rt.add_argument("--model", default="digits_cnn")
    rt.add_argument(
        "--data", default="digits", help="digits | digits:UPSCALE | cifar10:ROOT | folder:ROOT:SIZE"
    )
    rt.add_argument("--config", required=True, help="MixedPrecisionConfig JSON (e.g. from bpnas search)")
    rt.add_argument("--float-epochs", type=int, default=30)
    rt.add_argument("--epochs", type=int, default=30)
    rt.add_argument("--seed", type=int, default=0)
    rt.add_argument("--out", default="runs/retrain/model.pt")
    rt.set_defaults(func=_cmd_retrain)

    ex = sub.add_parser("export", help="export a retrained checkpoint to a .bpnas bundle")
    ex.add_argument("checkpoint")
    ex.add_argument("--out", default="runs/model.bpnas")
    ex.add_argument("--data", default="digits", help="data spec, for the example input and labels")
    ex.add_argument("--targets", nargs="+", default=["onnxruntime"])
    ex.add_argument(
        "--no-inspect",
        action="store_true",
        help="skip loading the bundle on the installed targets (and recording their effective precision)",
    )
    ex.set_defaults(func=_cmd_export)

    pr = sub.add_parser("predict", help="classify images with a bundle")
    pr.add_argument("bundle")
    pr.add_argument("images", nargs="+")
    pr.add_argument("--target", default="onnxruntime")
    pr.set_defaults(func=_cmd_predict)

    pf = sub.add_parser("profile", help="latency, BOPs and effective precision of a bundle on one target")
    pf.add_argument("bundle")
    pf.add_argument("--target", default="onnxruntime")
    pf.add_argument("--runs", type=int, default=200)
    pf.add_argument("--warmup", type=int, default=20)
    pf.add_argument("--batch", type=int, default=1)
    pf.add_argument("--threads", type=int, default=None)
    pf.set_defaults(func=_cmd_profile)

    b = sub.add_parser("bench", help="latency of a bundle on every installed target, side by side")
    b.add_argument("bundle")
    b.add_argument("--targets", nargs="*")
    b.add_argument("--runs", type=int, default=100)
    b.add_argument("--warmup", type=int, default=10)
    b.add_argument("--threads", type=int, default=None)
    b.set_defaults(func=_cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bpnas` console script; user errors print one clear line and exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["search"]:  # the search command owns its options (also under torchrun)
        from sdk.nas import run_search_command

        return _guard(lambda: run_search_command(argv[1:]))
    args = _build_parser().parse_args(argv)
    return _guard(lambda: int(args.func(args)))


def _guard(run: Callable[[], int]) -> int:
    try:
        return int(run())
    except BpnasError as e:
        print(f"bpnas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
