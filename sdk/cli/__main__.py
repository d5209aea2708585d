"""``python -m sdk.cli ...``: the `bpnas` command."""

import sys

from sdk.cli import main

sys.exit(main())
