"""``bpnas search ...``: float pre-training (reshaped), BP-NAS search, optional retraining, on a zoo model.

Works under ``torchrun --nproc_per_node=N -m sdk.cli search ...`` (or ``-m sdk.nas``): the process group
is initialised from the environment, search and retraining run data-parallel, rank 0 writes the outputs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sdk.cli._common import add_search_args, search_keywords

__all__ = ["run_search_command", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bpnas search", description="BP-NAS mixed-precision search (Algorithm 1)."
    )
    p.add_argument("--model", default="digits_cnn", help="zoo model name")
    p.add_argument(
        "--data", default="digits", help="digits | digits:UPSCALE | cifar10:ROOT | folder:ROOT:SIZE"
    )
    p.add_argument("--batch-size", type=int, default=64)
    add_search_args(p)
    p.add_argument("--mode", choices=("full", "sampled"), default="full")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-dir", default=None, help="resume/checkpoint directory")
    p.add_argument("--float-epochs", type=int, default=20, help="float pre-training epochs with reshaping")
    p.add_argument("--out", default="runs/search", help="output directory")
    p.add_argument("--dump-ranks", action="store_true", help="every rank writes rank<R>.json (theta, config)")
    p.add_argument("--no-progress", action="store_true")
    return p


def run_search_command(argv: Sequence[str]) -> int:
    """Parse ``argv`` (the words after ``bpnas search``), run, write outputs; returns the exit code."""
    words = list(argv)
    if words[:1] == ["--"]:  # `bpnas search -- --b-max 3` (how argparse REMAINDER passes options through)
        words = words[1:]
    args = build_parser().parse_args(words)
    import torch

    import sdk
    from sdk.checkpoint import data_from_spec
    from sdk.nas import distributed as ddp
    from sdk.nas.api import search
    from sdk.nas.qat import retrain
    from sdk.training import evaluate

    ddp.init_from_env()
    rank = ddp.rank()
    out = Path(args.out)
    data = data_from_spec(args.data, seed=args.seed, batch_size=args.batch_size)
    model = sdk.models.create(args.model, num_classes=data.num_classes, in_channels=data.input_shape[1])
    if args.float_epochs > 0:
        _float_train(model, data, args.float_epochs, args.seed)
    _broadcast_(model)
    weights, arch = data.search_split()
    result = search(
        model, weights, arch, **search_keywords(args, progress=not args.no_progress and rank == 0)
    )
    summary: dict[str, Any] = {"avg_bits": result.avg_bits, "repaired": result.repaired}
    if args.retrain_epochs > 0:
        qmodel = retrain(
            model,
            result.config,
            data.train,
            data.val,
            args.retrain_epochs,
            seed=args.seed,
            progress=not args.no_progress and rank == 0,
        )
        summary["test_acc"] = evaluate(qmodel, data.test)
        if rank == 0:
            from sdk.checkpoint import save_checkpoint

            save_checkpoint(
                out / "model.pt",
                qmodel,
                model=args.model,
                num_classes=data.num_classes,
                in_channels=data.input_shape[1],
            )
    if args.dump_ranks:
        out.mkdir(parents=True, exist_ok=True)
        dump = {"theta": {k: list(v) for k, v in result.theta.items()}, "config": result.config.to_dict()}
        (out / f"rank{rank}.json").write_text(json.dumps(dump))
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        result.config.to_json(out / "config.json")
        result.to_json(out / "result.json")
        print(result.certificate.table())
        print(result.summary())
        if "test_acc" in summary:
            print(f"retrained test accuracy {100 * summary['test_acc']:.2f}%")
        print(f"wrote {out / 'config.json'}")
    ddp.barrier()
    del torch
    return 0


def _float_train(model: Any, data: Any, epochs: int, seed: int) -> None:
    from sdk.training import train

    train(model, data.train, data.val, epochs=epochs, reshape=True, progress=False, seed=seed)


def _broadcast_(model: Any) -> None:
    """Make every rank hold rank 0's float weights (float training is repeated, not sharded)."""
    from sdk.nas import distributed as ddp

    if not ddp.is_distributed():
        return
    import torch.distributed as dist

    for t in model.state_dict().values():
        dist.broadcast(t, src=0)
