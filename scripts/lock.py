"""The CI lock: exact versions of every package the test command installs, kept in constraints/ci.txt.

    python scripts/lock.py refresh     # rewrite constraints/ci.txt from this environment (after a reviewed upgrade)
    python scripts/lock.py diff        # the installed packages whose versions differ from the lock (exit 0)

``.ci/run`` installs with ``-c constraints/ci.txt``, so an upstream release cannot turn this project's CI red for
reasons outside the change under test. The nightly workflow installs the newest releases instead and names the
packages that differ from the lock in its report (``diff``; also ``lock_diff`` in report.json's meta).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "constraints" / "ci.txt"
HEADER = ("# The CI lock (scripts/lock.py refresh): exact versions for .ci/run (pip install -c constraints/ci.txt).\n"
          "# torch is the CPU build on disk (torch==2.13.0); local version labels (+cpu) are dropped.\n")


def installed() -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True,
                         check=True).stdout
    pins = {}
    for line in out.splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2).split("+")[0]
    return pins


def locked(path: Path = LOCK) -> dict[str, str]:
    pins = {}
    if path.exists():
        for line in path.read_text().splitlines():
            m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
            if m:
                pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def diff(path: Path = LOCK) -> list[str]:
    """``name locked -> installed`` for every package whose installed version differs from the lock."""
    lock, inst = locked(path), installed()
    return [f"{n} {lock[n]} -> {inst.get(n, 'not installed')}" for n in sorted(lock) if inst.get(n) != lock[n]]


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["refresh"]:
        pins = installed()
        LOCK.parent.mkdir(exist_ok=True)
        LOCK.write_text(HEADER + "".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
        print(f"wrote {LOCK.relative_to(ROOT)}: {len(pins)} packages")
        return 0
    if args[:1] == ["diff"]:
        lines = diff()
        print("\n".join(lines) if lines else f"every locked package is installed at its {LOCK.name} version")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
