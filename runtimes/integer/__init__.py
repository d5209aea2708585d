"""The "integer" runtime: a bit-exact integer-only executor of the QDQ ONNX artifact (FPGA-style)."""

from __future__ import annotations

from runtimes.integer.session import *  # noqa: F403
from runtimes.integer.session import __all__  # noqa: F401
