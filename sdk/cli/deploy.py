"""``bpnas export``, ``predict``, ``profile``, ``bench`` and ``targets``: from a checkpoint to numbers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sdk.cli._common import Formatter, floats, progress, say
from sdk.errors import InputError

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    ex = sub.add_parser(
        "export", help="export a quantized checkpoint to a .bpnas bundle", formatter_class=Formatter
    )
    ex.add_argument("checkpoint", help="a checkpoint from bpnas retrain or bpnas quantize")
    ex.add_argument(
        "--out",
        default="runs/model.bpnas",
        help="bundle folder (an existing non-bundle folder gets NAME.bpnas inside)",
    )
    ex.add_argument(
        "--targets", nargs="+", default=["onnxruntime"], help="target names (see `bpnas targets`)"
    )
    ex.add_argument(
        "--data", default=None, help="data spec for the example input and labels (default: the checkpoint's)"
    )
    ex.add_argument("--mean", type=floats, default=None, help="override the recorded preprocessing mean")
    ex.add_argument("--std", type=floats, default=None, help="override the recorded preprocessing std")
    ex.add_argument("--no-inspect", action="store_true", help="skip loading the bundle on installed targets")
    ex.set_defaults(func=cmd_export)

    pr = sub.add_parser("predict", help="top-k labels and probabilities of images", formatter_class=Formatter)
    pr.add_argument("bundle")
    pr.add_argument("images", nargs="+", help="image files, folders and glob patterns")
    pr.add_argument("--target", default="onnxruntime")
    pr.add_argument("--top-k", type=int, default=3, help="labels per image")
    pr.add_argument("--json", action="store_true", help="one JSON document instead of text lines")
    pr.set_defaults(func=cmd_predict)

    pf = sub.add_parser(
        "profile", help="latency, BOPs and effective precision on one target", formatter_class=Formatter
    )
    pf.add_argument("bundle")
    pf.add_argument("--target", default="onnxruntime")
    pf.add_argument("--runs", type=int, default=200)
    pf.add_argument("--warmup", type=int, default=20)
    pf.add_argument("--batch", type=int, default=1)
    pf.add_argument("--threads", type=int, default=None, help="engine threads (default: the engine's)")
    pf.set_defaults(func=cmd_profile)

    b = sub.add_parser(
        "bench", help="one row per target: status, size, bits, accuracy, latency", formatter_class=Formatter
    )
    b.add_argument("bundle")
    b.add_argument("--data", default=None, help="labelled data spec for accuracy (default: top-1 agreement)")
    b.add_argument(
        "--mean", type=floats, default=None, help="normalization mean of --data (default: the bundle's)"
    )
    b.add_argument(
        "--std", type=floats, default=None, help="normalization std of --data (default: the bundle's)"
    )
    b.add_argument("--targets", nargs="*", default=None, help="default: every target the bundle carries")
    b.add_argument("--runs", type=int, default=50)
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--threads", type=int, default=None, help="engine threads (default: the engine's)")
    b.add_argument("-o", "--out", default=None, help="folder for bench.csv, bench.json and bench.md")
    b.set_defaults(func=cmd_bench)

    t = sub.add_parser(
        "targets", help="list targets and whether their engine is installed", formatter_class=Formatter
    )
    t.set_defaults(func=cmd_targets)


def cmd_export(args: argparse.Namespace) -> int:
    import torch

    import sdk
    from sdk.checkpoint import load_checkpoint

    out = _bundle_out(args.out, Path(args.checkpoint).stem)
    qmodel, meta = load_checkpoint(args.checkpoint)
    if meta["kind"] != "quantized":
        raise InputError(
            f"{args.checkpoint!r} is a float checkpoint; quantize it first: `bpnas quantize --from "
            f"{args.checkpoint} --bits 8,8` or `bpnas retrain --from ...`."
        )
    pre, labels, shape = meta.get("preprocess"), meta.get("labels"), meta.get("input_shape")
    if args.data or shape is None:
        if not args.data:
            raise InputError(f"{args.checkpoint!r} does not record its input; pass --data SPEC.")
        from sdk.dataspec import load_data

        data = load_data(args.data, mean=args.mean, std=args.std)
        pre, labels, shape = data.preprocess, data.labels, data.input_shape
    elif pre is not None and (args.mean or args.std):
        pre = {
            **pre,
            **({"mean": list(args.mean)} if args.mean else {}),
            **({"std": list(args.std)} if args.std else {}),
        }
    if pre is None:
        say(
            args,
            "note: no preprocessing recorded (non-image data): predict takes float arrays, not image files",
        )
    from tqdm.auto import tqdm

    with tqdm(
        total=1, desc=f"export {', '.join(args.targets)}", disable=not progress(args), leave=False
    ) as bar:
        bundle = sdk.export(
            qmodel, out, example_input=torch.zeros(tuple(shape)), targets=args.targets,
            preprocess=pre, labels=labels, inspect=not args.no_inspect,
        )  # fmt: skip
        bar.update(1)
    say(args, f"wrote {bundle}")
    return 0


def _bundle_out(out: str, stem: str) -> Path:
    path = Path(out)
    if path.is_dir() and not (path / "manifest.json").is_file():
        return path / f"{stem}.bpnas"
    if path.exists() and not path.is_dir():
        raise InputError(f"--out {out!r} is a file; a bundle is a folder such as model.bpnas.")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def cmd_predict(args: argparse.Namespace) -> int:
    import sdk
    from sdk.classify import classify

    with sdk.load(args.bundle, target=args.target) as p:
        if p.preprocess is None:
            raise InputError(
                f"bundle {args.bundle!r} records no image preprocessing, so image files cannot be classified;"
                " "
                "re-export it from a checkpoint trained on images (folder:ROOT:SIZE), or pass --mean/--std "
                "to `bpnas export --data folder:ROOT:SIZE`."
            )
        results = classify(p, args.images, k=args.top_k)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=1))
        return 0
    for r in results:
        tops = "  ".join(f"{lb} {100 * pr:.1f}%" for lb, pr in zip(r.labels, r.probs))
        print(f"{r.source}\t{tops}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    import sdk

    with sdk.load(args.bundle, target=args.target, threads=args.threads) as p:
        rep = p.profile(runs=args.runs, warmup=args.warmup, batch=args.batch)
    print(rep.table())
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from sdk.bench import bench, eval_arrays
    from sdk.outputs import dir_out

    out = dir_out(args.out) if args.out else None
    data = None
    if args.data:
        mean, std = args.mean, args.std
        if mean is None:
            from runtimes.bundle import read_manifest

            pre = read_manifest(args.bundle).preprocess  # evaluate as the bundle normalizes
            mean, std = (pre["mean"], pre["std"]) if pre else (None, None)
        data = eval_arrays(args.data, mean=mean, std=std)
    table = bench(
        args.bundle, targets=args.targets, data=data, data_name=args.data,
        runs=args.runs, warmup=args.warmup, threads=args.threads,
    )  # fmt: skip
    print(table.markdown())
    if out is not None:
        for path in table.write(out):
            say(args, f"wrote {path}")
    return 0 if any(r.status == "ok" for r in table.rows) else 1


def cmd_targets(args: argparse.Namespace) -> int:
    import targets

    missing = targets.unavailable()  # name -> reason, with the install hint
    for name in targets.names():
        t = targets.get(name)
        print(f"{name:<12} {t.engine:<12} {t.device:<5} {missing.get(name, 'available')}")
    for alias, name in targets.aliases().items():
        print(f"{alias:<12} -> {name}")
    return 0
