"""Tolerance-aware JSON snapshots (a syrupy extension) under the top-level ``snapshots/`` folder (a project's
``claims_snapshots`` folder).

One JSON file per claim x model: ``snapshots/<test module>/<test name>[<model>].json``. The plugin compares a
claim's numbers with it after the claim's body has run (so figures are written first), with
:func:`probes.drift.diff` under the claim's roles (lists of components by id, a severity per move); a candidate
(``id@label``) or a half-precision run reads the registry model's float32 file.
Numbers compare with ``|new - old| <= abs_tol + rel_tol * |old|``. :func:`compare` here is the plain positional
comparison (no roles) that :func:`record` uses to leave a file that matches within tolerance untouched, and the
syrupy extension uses. A corrupt snapshot file raises :class:`SnapshotFileError` naming the
file and the fix; nothing on disk changes unless pytest runs with ``--record``, which writes (atomically) the
snapshot of each claim that passed its criterion in that run and never deletes or touches any other
(:func:`record`). syrupy's own ``--snapshot-update``, which deletes the snapshots of failed, errored, deselected
or interrupted tests, is refused by the plugin (probes/plugin.py).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterator

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from .errors import SnapshotFileError

ROOT = Path(__file__).resolve().parents[1]
# CLAIMS_SNAPSHOT_DIR redirects snapshots (used by tests/ to compare parallel and serial runs in a temp dir)
SNAPSHOTS = Path(os.environ.get("CLAIMS_SNAPSHOT_DIR") or ROOT / "snapshots")
REL_TOL, ABS_TOL = 1e-4, 1e-6


def plain(x: Any) -> Any:
    """Convert numpy/torch scalars and arrays to plain Python types (and check nothing exotic is left)."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if hasattr(x, "tolist"):
        return plain(x.tolist())
    if isinstance(x, float):
        if not math.isfinite(x):
            return repr(x)  # 'nan' / 'inf' as strings: JSON has no NaN
        return x
    if x is None or isinstance(x, (bool, int, str)):
        return x
    raise TypeError(f"snapshot values must be plain numbers, strings, lists or dicts; got {type(x).__name__}")


def compare(old: Any, new: Any, rel: float, abs_: float) -> Iterator[str]:
    """Yield one line per difference beyond tolerance, with no roles declared (lists compare by position): the
    same comparison as :func:`probes.drift.diff`, which the plugin (probes/plugin.py) runs with the claim's roles."""
    from .drift import diff
    for m in diff(old, new, rel, abs_).moves:
        yield m.text


def parse(text: str, location: str = "snapshot") -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SnapshotFileError(
            f"snapshot file {location} is corrupt (not valid JSON: {e}). Restore it with "
            f"`git checkout -- {location}`, or, if you mean to re-record it, run the claim with --record "
            "(it writes only claims that pass their criterion).") from None


def check_snapshot(old: Any, new: Any, location: str = "snapshot") -> None:
    """A recorded snapshot's shape against this run's numbers: an object at the top, and where this run has a
    number the snapshot has a number too (or 'nan'/'inf'); ``_noise`` / ``_intervals`` / ``_stability`` are objects.
    Raises :class:`SnapshotFileError` naming the file, the path and the fix."""
    def fail(path, what):
        raise SnapshotFileError(
            f"snapshot file {location} is corrupt ({what} at {path or 'the top'}). Restore it with "
            f"`git checkout -- {location}`, or re-record the claim with --record (it writes only claims that pass).")

    if not isinstance(old, dict):
        fail("", f"a {type(old).__name__} where an object of numbers is expected")
    for k in ("_noise", "_intervals", "_stability"):
        if k in old and not isinstance(old[k], dict):
            fail(k, f"a {type(old[k]).__name__} where an object is expected")

    def walk(o, n, path):
        if isinstance(n, dict) and isinstance(o, dict):
            for k in o.keys() & n.keys():
                if not k.startswith("_"):
                    walk(o[k], n[k], f"{path}.{k}" if path else k)
        elif isinstance(n, list) and isinstance(o, list):
            for i, (a, b) in enumerate(zip(o, n)):
                walk(a, b, f"{path}[{i}]")
        elif isinstance(n, (int, float)) and not isinstance(n, bool):
            if isinstance(o, str) and o not in ("nan", "inf", "-inf"):
                fail(path, f"the text {o!r} where a number is recorded")
            if o is None or isinstance(o, (bool, list, dict)):
                fail(path, f"{json.dumps(o)} where a number is recorded")
    walk(old, new, "")


class ToleranceJSONSnapshot(SingleFileSnapshotExtension):
    """Syrupy extension: JSON files in top-level snapshots/, compared with tolerance."""
    _write_mode = WriteMode.TEXT
    file_extension = "json"
    rel_tol = REL_TOL
    abs_tol = ABS_TOL
    root = SNAPSHOTS

    @classmethod
    def dirname(cls, *, test_location) -> str:
        return str(Path(cls.root) / test_location.basename)

    def serialize(self, data, **kwargs) -> str:
        return serialize(data)

    def read_snapshot_data_from_location(self, *, snapshot_location: str, snapshot_name: str, session_id: str):
        text = super().read_snapshot_data_from_location(snapshot_location=snapshot_location,
                                                        snapshot_name=snapshot_name, session_id=session_id)
        if text is not None:
            parse(text, snapshot_location)  # corrupt files fail loudly, before any comparison
        return text

    def matches(self, *, serialized_data, snapshot_data) -> bool:
        old, new = parse(snapshot_data), parse(serialized_data, "new result")
        return not any(compare(old, new, self.rel_tol, self.abs_tol))

    def diff_lines(self, serialized_data, snapshot_data) -> Iterator[str]:
        if not snapshot_data:
            yield ("no snapshot is recorded for this claim x model yet. The claim's criterion passed; review "
                   "the numbers below and record them with --record (it writes only claims that passed):")
            yield from serialized_data.splitlines()
            return
        old, new = parse(snapshot_data), parse(serialized_data, "new result")
        lines = list(compare(old, new, self.rel_tol, self.abs_tol))
        yield f"{len(lines)} value(s) moved beyond tolerance (snapshot -> this run):"
        yield from (f"  {ln}" for ln in lines)


def serialize(data: Any) -> str:
    return json.dumps(plain(data), indent=1, sort_keys=True) + "\n"


def snapshot_file(module: str, test_name: str, root: Path | None = None) -> Path:
    """This claim x model's snapshot: <root>/<test module>/<test name>[<param>].json (root: the project's snapshot
    folder, default this repository's snapshots/; $CLAIMS_SNAPSHOT_DIR overrides both)."""
    env = os.environ.get("CLAIMS_SNAPSHOT_DIR")
    return Path(env or root or ToleranceJSONSnapshot.root) / module / f"{test_name}.json"


def record(path: Path, data: Any, rel: float = REL_TOL, abs_: float = ABS_TOL) -> bool:
    """Write one snapshot atomically (temporary file + rename: an interrupted run leaves the old file or the new
    one, never half of either), unless the recorded one already matches within tolerance (no churn from float
    noise). Returns whether the file was written."""
    text = serialize(data)
    if path.exists():
        try:
            old = json.loads(path.read_text())
            if not any(compare(old, json.loads(text), rel, abs_)):
                return False
            if isinstance(old, dict) and isinstance(old.get("_noise"), dict) and "_noise" not in data:
                # the measured noise floors stay (a property of the measurement; scripts/calibrate.py re-measures)
                text = serialize({**data, "_noise": old["_noise"]})
        except json.JSONDecodeError:
            pass  # a corrupt snapshot of a claim that now passes is replaced
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:  # interrupted (Ctrl-C) before the rename: the old file stays, the temporary one goes
        tmp.unlink(missing_ok=True)
    return True
