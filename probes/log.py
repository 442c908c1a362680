"""Progress lines of the library on standard error (``[probes] ...``), one place for their form."""
from __future__ import annotations

import sys


def log(msg: str) -> None:
    print(f"[probes] {msg}", file=sys.stderr, flush=True)
