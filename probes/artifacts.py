"""The folder one run writes its figures and reports to, and what happens when two runs share one ``--artifacts``.

A run takes an exclusive lock on ``<artifacts>/.interp-claims.lock`` (``fcntl.flock``, released when the run ends
or its process dies) and writes ``report.md``, ``report.html``, ``report.json`` and ``<model>/<claim>.png`` there.
A run that finds the lock held by another live run (two CI steps in one workspace, a run started while another is
going) does not wait and does not overwrite: it writes everything under ``<artifacts>/runs/<date>-<time>-<pid>/``
and says so at its start and in its summary. Both runs keep their verdicts. Every report file is written to a
temporary file of its own process and renamed into place, so a reader never sees half a report.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks here; every run writes to the folder given
    HAVE_FLOCK = False
else:
    HAVE_FLOCK = True

LOCK = ".interp-claims.lock"
RUNS = "runs"


@dataclass
class RunFolder:
    """``path``: where this run writes; ``base``: the folder the user gave; ``other``: the pid (and start) of the
    run that holds ``base`` when this one had to write elsewhere, else None."""
    path: Path
    base: Path
    other: str | None = None
    _fd: int | None = None

    @property
    def own(self) -> bool:
        """Whether this run writes to its own subfolder because another run holds the folder given."""
        return self.path != self.base

    @classmethod
    def take(cls, base: Path) -> "RunFolder":
        """Lock ``base`` for this run, or, when another live run holds it, give this run its own subfolder."""
        base.mkdir(parents=True, exist_ok=True)
        if not HAVE_FLOCK:
            return cls(base, base)
        fd = os.open(base / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.read(fd, 200).decode(errors="replace").strip() or "another run"
            os.close(fd)
            own = base / RUNS / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
            own.mkdir(parents=True, exist_ok=True)
            return cls(own, base, other)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}".encode())
        return cls(base, base, None, fd)

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)  # closing the descriptor releases the lock
            finally:
                self._fd = None

    def note(self, shown: Callable[[Path], str]) -> str:
        """One line on why this run writes where it does (empty when it writes to the folder given); ``shown``: how
        a path is written in messages."""
        if not self.own:
            return ""
        return (f"{shown(self.base)} is in use by another run ({self.other}): this run writes its figures and "
                f"reports to {shown(self.path)} instead, so that neither run overwrites the other's verdicts")


def write_atomically(path: Path, text: str) -> None:
    """``text`` to a temporary file of this process beside ``path``, then renamed over it (atomic on one file
    system): a concurrent reader sees the old file or the new one, two writers never mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
