"""The `bpnas` command line: one module per group of verbs; heavy imports happen inside the verbs.

Conventions: every ``--help`` shows defaults; ``--quiet`` keeps only results (no status lines or progress
bars); user errors print one ``bpnas: error:`` line and exit 2, with the traceback under ``--debug``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from sdk.cli._common import Formatter
from sdk.errors import BpnasError

__all__ = ["main", "build_parser"]


def _flags(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="results only: no status lines or progress bars",
    )
    p.add_argument("--debug", action="store_true", default=default, help="show the traceback of errors")


def build_parser() -> argparse.ArgumentParser:
    from sdk import __version__
    from sdk.cli import deploy, info, train

    p = argparse.ArgumentParser(
        prog="bpnas",
        description="Mixed-precision search and deployment of CNNs (BP-NAS).",
        formatter_class=Formatter,
    )
    p.add_argument("--version", action="version", version=f"bpnas {__version__}")
    _flags(p, False)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train.add_parsers(sub)
    deploy.add_parsers(sub)
    info.add_parsers(sub)
    for child in sub.choices.values():  # the flags work after the verb too
        _flags(child, argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bpnas` console script; user errors print one clear line and exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["search", "--"]:  # the old pass-through form, `bpnas search -- --b-max 3`
        del argv[1]
    if argv[:1] == ["search"] and int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under torchrun: data-parallel
        from sdk.nas import run_search_command

        return _guard(lambda: run_search_command(argv[1:]), debug="--debug" in argv)
    args = build_parser().parse_args(argv)
    return _guard(lambda: int(args.func(args)), debug=args.debug)


def _guard(run: Callable[[], int], *, debug: bool) -> int:
    try:
        return int(run())
    except BpnasError as e:
        if debug:
            traceback.print_exc()
        print(f"bpnas: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
