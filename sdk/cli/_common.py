"""What the verbs share: the model/data/device options, reading configs, and quiet-aware printing."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from sdk.errors import InputError

__all__ = [
    "Formatter",
    "add_model_args",
    "add_data_args",
    "say",
    "progress",
    "float_model",
    "read_config",
    "check_device",
    "pair",
    "floats",
    "add_search_args",
    "search_keywords",
]


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default in --help (unless its help already says it); keeps line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "(default" in text or action.default is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


def say(args: argparse.Namespace, *parts: Any) -> None:
    """A status line on stdout, unless --quiet."""
    if not getattr(args, "quiet", False):
        print(*parts, flush=True)


def progress(args: argparse.Namespace) -> bool:
    """Whether to draw progress bars (stderr): not with --quiet."""
    return not getattr(args, "quiet", False)


def pair(text: str) -> tuple[int, int]:
    """``4,4`` or ``4x4`` -> (4, 4): a (weight bits, activation bits) pair."""
    try:
        w, a = (int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected W,A like 4,4, got {text!r}") from None
    return w, a


def floats(text: str) -> tuple[float, ...]:
    """``0.485,0.456,0.406`` -> a tuple of floats."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_model_args(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    p.add_argument(
        "--model",
        required=required,
        default=None,
        help="zoo name (see `bpnas models`), package.module:Class or path/to/file.py:Class",
    )
    p.add_argument(
        "--model-args", default=None, help="JSON object of the model constructor's keyword arguments"
    )
    p.add_argument(
        "--weights", default=None, help="float weights: a state_dict file or a checkpoint holding one"
    )


def add_data_args(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    p.add_argument(
        "--data",
        required=required,
        default=None,
        help="digits | cifar10:ROOT | folder:ROOT:SIZE (ROOT/CLASS/* or ROOT/train|val/CLASS/*)",
    )
    p.add_argument(
        "--mean", type=floats, default=None, help="per-channel RGB mean in [0,1] units (default: data's)"
    )
    p.add_argument(
        "--std", type=floats, default=None, help="per-channel RGB std in [0,1] units (default: data's)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="training batch size")


def check_device(device: str) -> str:
    """Refuse a CUDA device on a machine (or torch build) without CUDA, naming the fix."""
    from sdk.device import check_device as check

    return check(device)


def load_data(args: argparse.Namespace, spec: str) -> Any:
    from sdk.dataspec import load_data as load

    data = load(spec, mean=args.mean, std=args.std, seed=args.seed, batch_size=args.batch_size)
    if data.preprocess is not None and args.mean is None:
        say(
            args,
            f"normalizing with the training images' own mean {_fmt(data.mean)} / std {_fmt(data.std)} "
            "(recorded in checkpoints and bundles; --mean/--std to fix them)",
        )
    return data


def _fmt(values: Any) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


def float_model(args: argparse.Namespace, data: Any) -> tuple[Any, Any]:
    """(float model with --weights loaded and functional adds as modules, its ModelSpec)."""
    from sdk.modelspec import ModelSpec, build_model, load_weights, parse_model_args
    from sdk.quant.functional_adds import modularize_adds

    if not args.model:
        raise InputError("--model is required: a zoo name, package.module:Class or path/to/file.py:Class.")
    spec = ModelSpec.parse(args.model, parse_model_args(args.model_args))
    model = build_model(spec, num_classes=data.num_classes, in_channels=data.input_shape[1])
    if args.weights:
        load_weights(model, args.weights)
    return modularize_adds(model), spec


def read_config(path: str | os.PathLike[str]) -> Any:
    """A MixedPrecisionConfig from config.json, a search's result.json, or a search run folder."""
    from sdk.config import MixedPrecisionConfig

    where = Path(path)
    if where.is_dir():
        where = where / "config.json"
    if not where.is_file():
        raise InputError(
            f"config {os.fspath(where)!r} does not exist; pass config.json or a search run folder."
        )
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"config {os.fspath(where)!r} is not JSON ({e}).") from e
    if isinstance(data, dict) and isinstance(data.get("config"), dict):  # a search's result.json
        data = data["config"]
    return MixedPrecisionConfig.from_dict(data)


# -- bpnas search (and its torchrun entry, sdk.nas.command) ---------------------------------------------
def add_search_args(p: argparse.ArgumentParser) -> None:
    """The flags both search entry points share: the budget (``--b-max``, ``--target``, ``--weight-kb``,
    ``--cycles``), the candidates and groups, the search's length and start, and the retraining epochs."""
    p.add_argument("--b-max", type=float, default=3.0, help="budget in average bits (Eq. 4)")
    p.add_argument(
        "--candidates", type=pair, nargs="+", default=None, help="W,A pairs (default: the paper's 8)"
    )
    p.add_argument("--epochs", type=int, default=20, help="search epochs")
    p.add_argument("--groups", choices=("layer", "block"), default="layer")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="cap on search steps per epoch")
    p.add_argument("--retrain-epochs", type=int, default=0, help="QAT epochs of the result (0: skip)")
    p.add_argument(
        "--target",
        default=None,
        help="restrict candidates to a target's native pairs; prices --weight-kb and --cycles",
    )
    p.add_argument(
        "--weight-kb",
        type=float,
        default=None,
        help="weight memory limit in KB (1024 bytes) at the bits --target stores (packed on integer)",
    )
    p.add_argument(
        "--cycles", type=float, default=None, help="limit on cycles per sample on --target's MAC array"
    )
    p.add_argument(
        "--start",
        choices=("sensitivity", "hinge"),
        default=None,
        help="theta start: the measured-sensitivity knapsack leads (default) or the cost-only hinge",
    )


def search_keywords(args: argparse.Namespace, *, progress: bool) -> dict[str, Any]:
    """The keywords of ``sdk.search`` from parsed ``bpnas search`` arguments (both entry points)."""
    from sdk.nas.space import PAPER_CANDIDATES

    budget = {k: v for k, v in (("weight_kb", args.weight_kb), ("cycles", args.cycles)) if v is not None}
    kw: dict[str, Any] = {
        "b_max": args.b_max,
        "candidates": args.candidates or PAPER_CANDIDATES,
        "epochs": args.epochs,
        "groups": args.groups,
        "target": args.target,
        "seed": args.seed,
        "progress": progress,
        "steps_per_epoch": args.steps_per_epoch,
        "budget": budget or None,
    }
    for name in ("checkpoint_dir", "mode", "device", "start"):
        if getattr(args, name, None) is not None:
            kw[name] = getattr(args, name)
    return kw
