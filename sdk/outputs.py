"""Where the CLI writes, by one rule, and how: every file atomically (temp file in the same folder + rename).

The rule: a verb that writes one file takes ``--out FILE``; when FILE is an existing directory (or ends in a
path separator) the verb's default file name is used inside it. A verb that writes several files (search,
bench, report) takes ``--out DIR`` and writes them inside it. A bundle is one output that is a directory.
Destinations are checked before any long work starts.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from sdk.errors import InputError

__all__ = ["file_out", "dir_out", "write_atomic", "write_text_atomic"]


def file_out(out: str | os.PathLike[str], default_name: str) -> Path:
    """The file a one-file verb writes for ``--out out``; creates its folder, refuses a non-folder parent."""
    text = os.fspath(out)
    path = Path(text)
    if path.is_dir() or text.endswith(("/", os.sep)):
        path = path / default_name
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(f"cannot write {os.fspath(path)!r}: {os.fspath(parent)!r} is a file, not a folder.")
    parent.mkdir(parents=True, exist_ok=True)
    if not os.access(parent, os.W_OK):
        raise InputError(f"cannot write into {os.fspath(parent)!r} (permission denied); pick another --out.")
    return path


def dir_out(out: str | os.PathLike[str]) -> Path:
    """The folder a several-files verb writes into; created, and refused when ``out`` is a file."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InputError(f"--out {os.fspath(path)!r} is a file; this command writes a folder, pass a folder.")
    path.mkdir(parents=True, exist_ok=True)
    if not os.access(path, os.W_OK):
        raise InputError(f"cannot write into {os.fspath(path)!r} (permission denied); pick another --out.")
    return path


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temp path next to ``path``, then rename it into place (removed on failure)."""
    dest = Path(path)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}-{secrets.token_hex(3)}")
    try:
        write(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
