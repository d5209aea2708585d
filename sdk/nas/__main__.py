"""``python -m sdk.nas ...`` = ``bpnas search ...`` (handy under torchrun)."""

import sys

from sdk.errors import BpnasError
from sdk.nas.command import run_search_command

try:
    sys.exit(run_search_command(sys.argv[1:]))
except BpnasError as e:
    print(f"bpnas search: error: {e}", file=sys.stderr)
    sys.exit(2)
