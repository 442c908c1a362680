"""Tolerance-aware JSON snapshots: one store rooted where the project says (its ini option ``claims_snapshots``),
which reads, validates and records them; the syrupy extension :class:`ToleranceJSONSnapshot` serialises and
compares them the same way.

One JSON file per claim x model: ``snapshots/<test module>/<test name>[<model>].json``. The plugin compares a
claim's numbers with it after the claim's body has run (so figures are written first), with
:func:`probes.compare.diff` under the claim's roles (lists of components by id, a severity per move); a candidate
(``id@label``) reads the registry model's file; a half-precision run reads its own (``<model>-bfloat16``) when one
is recorded, else the float32 one, judged by the half-precision floors measured against it.
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
from typing import Any, Callable, Iterator, NoReturn

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from . import drift_text
from .compare import HALF_DTYPES, diff
from .errors import SnapshotFileError

# the tolerance of a claim's numbers, (rel, abs): |new - old| <= abs + rel * |old|, unless its claims module declares
# TOLERANCE = (rel, abs) or the claim passes rel= / abs_= (probes/plugin.py claim_snapshot)
REL_TOL, ABS_TOL = 1e-3, 1e-4


class NonFiniteNumber(ValueError):
    """A NaN or inf handed to a snapshot; ``path`` names it."""

    def __init__(self, path: str, value: float):
        super().__init__(f"{path or 'the value'} is {value!r}")
        self.path, self.value = path, value


def plain(x: Any, allow_nan: bool = False, path: str = "") -> Any:
    """Convert numpy/torch scalars and arrays to plain Python types (and check nothing exotic is left). A NaN or
    inf raises :class:`NonFiniteNumber` naming its path, or with ``allow_nan`` becomes null (JSON has no NaN; a
    claim that can measure nothing for a component says so explicitly)."""
    if isinstance(x, dict):
        return {str(k): plain(v, allow_nan, f"{path}.{k}" if path else str(k)) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v, allow_nan, f"{path}[{i}]") for i, v in enumerate(x)]
    if hasattr(x, "tolist"):
        return plain(x.tolist(), allow_nan, path)
    if isinstance(x, float):
        if not math.isfinite(x):
            if allow_nan:
                return None
            raise NonFiniteNumber(path, x)
        return x
    if x is None or isinstance(x, (bool, int, str)):
        return x
    raise TypeError(f"snapshot values must be plain numbers, strings, lists or dicts; got {type(x).__name__}"
                    + (f" at {path}" if path else ""))


def compare(old: Any, new: Any, rel: float, abs_: float) -> Iterator[str]:
    """Yield one line per difference beyond tolerance, with no roles declared (lists compare by position): the
    same comparison as :func:`probes.compare.diff`, which the plugin (probes/plugin.py) runs with the claim's roles."""
    for m in diff(old, new, rel, abs_).moves:
        yield drift_text.move_text(m)


def _fix(location: str) -> str:
    return (f"Restore it with `git checkout -- {location}`, or re-record the claim with --record (it writes only "
            "claims that pass their criterion).")


def _no_constants(name: str):
    raise ValueError(f"{name} where a number is recorded (JSON has no {name})")


def parse(text: str, location: str = "snapshot") -> Any:
    """A snapshot file's JSON (NaN and Infinity refused: JSON has none)."""
    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as e:
        raise SnapshotFileError(f"snapshot file {location} is corrupt (not valid JSON: {e}). {_fix(location)}") from None
    except ValueError as e:
        raise SnapshotFileError(f"snapshot file {location} is corrupt ({e}). {_fix(location)}") from None


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _failure(location: str) -> Callable[[str, str], NoReturn]:
    """``fail(path, what)``: raise :class:`SnapshotFileError` naming the file ``location``, the path and the fix."""
    def fail(path: str, what: str) -> NoReturn:
        raise SnapshotFileError(f"snapshot file {location} is corrupt ({what} at {path or 'the top'}). "
                                f"{_fix(location)}")
    return fail


def validate(old: Any, location: str = "snapshot") -> None:
    """A recorded snapshot on its own: an object at the top; ``_noise`` / ``_intervals`` / ``_stability`` objects;
    every interval a pair ``[lo, hi]`` of finite numbers with ``lo <= hi``; every noise floor a finite number
    ``>= 0``; every stability a share in [0, 1]. Raises :class:`SnapshotFileError` naming the file, the path and
    the fix."""
    fail = _failure(location)
    if not isinstance(old, dict):
        fail("", f"a {type(old).__name__} where an object of numbers is expected")
    for k in ("_noise", "_intervals", "_stability", "_replicates"):
        if k in old and not isinstance(old[k], dict):
            fail(k, f"a {type(old[k]).__name__} where an object is expected")
    _validate_intervals(old, fail)
    _validate_noise(old, fail)
    _validate_stability(old, fail)


def _leaves(x, path: str, is_leaf, check, what: str, fail: Callable[[str, str], NoReturn]) -> None:
    """A nested object or list whose leaves are checked one by one."""
    if is_leaf(x):
        check(x, path)
    elif isinstance(x, (list, dict)):
        for k, v in (enumerate(x) if isinstance(x, list) else x.items()):
            _leaves(v, f"{path}[{k}]" if isinstance(x, list) else f"{path}.{k}", is_leaf, check, what, fail)
    elif x is not None:
        fail(path, f"{json.dumps(x)} where {what} is expected")


def _validate_intervals(old: dict, fail: Callable[[str, str], NoReturn]) -> None:
    """Every interval a pair of finite numbers, not reversed; every replicate series a list of finite numbers."""
    def interval(x, path):
        if not all(math.isfinite(v) for v in x):
            fail(path, f"the interval {x} is not finite")
        if x[0] > x[1]:
            fail(path, f"the interval [{x[0]}, {x[1]}] is reversed (lo > hi)")

    def series(x, path):
        if len(x) < 3 or not all(v is None or math.isfinite(v) for v in x):
            fail(path, "a replicate series that is not a list of finite numbers (or null)")
    _leaves(old.get("_intervals", {}), "_intervals", lambda x: isinstance(x, list) and len(x) == 2 and all(
        _num(v) for v in x), interval, "an interval [lo, hi]", fail)
    _leaves(old.get("_replicates", {}), "_replicates", lambda x: isinstance(x, list) and bool(x) and all(
        v is None or _num(v) for v in x), series, "a list of bootstrap replicates", fail)


def _validate_noise(old: dict, fail: Callable[[str, str], NoReturn]) -> None:
    """Every noise floor, the snapshot's own and those of half-precision runs against it, a finite number >= 0."""
    noise = old.get("_noise", {})
    sections = [("_noise", noise)] + [(f"_noise.{d}", noise[d]) for d in HALF_DTYPES if d in noise]
    for where, section in sections:
        if not isinstance(section, dict):
            fail(where, f"a {type(section).__name__} where an object of floors is expected")
        for k, v in (section.get("floor") or {}).items():
            if not _num(v) or not math.isfinite(v) or v < 0:
                fail(f"{where}.floor.{k}", f"the noise floor {json.dumps(v)} (a floor is a finite number >= 0)")


def _validate_stability(old: dict, fail: Callable[[str, str], NoReturn]) -> None:
    """Every stability a share of resamples, in [0, 1]."""
    for k, shares in old.get("_stability", {}).items():
        for i, v in (shares.items() if isinstance(shares, dict) else []):
            if not _num(v) or not 0 <= v <= 1:
                fail(f"_stability.{k}.{i}", f"the stability {json.dumps(v)} (a share of resamples, in [0, 1])")


def check_snapshot(old: Any, new: Any, location: str = "snapshot") -> None:
    """A recorded snapshot (:func:`validate`) and its shape against this run's numbers: where this run has a number
    the snapshot has a number too. Raises :class:`SnapshotFileError` naming the file, the path and the fix."""
    validate(old, location)
    _check_shape(old, new, "", _failure(location))


def _check_shape(o: Any, n: Any, path: str, fail: Callable[[str, str], NoReturn]) -> None:
    """Where this run's ``n`` has a number, the recorded ``o`` has no text, boolean, list or object."""
    if isinstance(n, dict) and isinstance(o, dict):
        for k in o.keys() & n.keys():
            if not k.startswith("_"):
                _check_shape(o[k], n[k], f"{path}.{k}" if path else k, fail)
    elif isinstance(n, list) and isinstance(o, list):
        for i, (a, b) in enumerate(zip(o, n)):
            _check_shape(a, b, f"{path}[{i}]", fail)
    elif _num(n):
        if isinstance(o, str):
            fail(path, f"the text {o!r} where a number is recorded")
        if isinstance(o, (bool, list, dict)):
            fail(path, f"{json.dumps(o)} where a number is recorded")


class SnapshotStore:
    """The project's recorded snapshots: ``<root>/<test module>/<test name>[<model>].json`` (root: the ini option
    ``claims_snapshots``, relative to the project root). Reads (parsed and validated), and records (atomically,
    only what a passing claim hands over)."""

    def __init__(self, root: Path, shown=str):
        self.root = Path(root)
        self.shown = shown  # how a path is named in messages (relative to the project root)

    def path(self, module: str, test_name: str) -> Path:
        return self.root / module / f"{test_name}.json"

    def read(self, path: Path) -> dict | None:
        """The recorded snapshot, validated; None when none is recorded."""
        if not path.exists():
            return None
        where = self.shown(path)
        data = parse(path.read_text(), where)
        validate(data, where)
        return data

    def record(self, path: Path, data: Any, rel: float = REL_TOL, abs_: float = ABS_TOL) -> bool:
        return record(path, data, rel, abs_)


class ToleranceJSONSnapshot(SingleFileSnapshotExtension):
    """Syrupy extension: JSON files in top-level snapshots/, compared with tolerance."""
    _write_mode = WriteMode.TEXT
    file_extension = "json"
    rel_tol = REL_TOL
    abs_tol = ABS_TOL
    root: Path | None = None  # the snapshot folder (a subclass sets it); None: syrupy's own, beside the test file

    @classmethod
    def dirname(cls, *, test_location) -> str:
        if cls.root is None:
            return super().dirname(test_location=test_location)
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
    """A snapshot's text: sorted keys, one number per line (a diff names the number that moved), except the
    bootstrap replicate series under ``_replicates``, one line each (200 numbers that are read by the paired test,
    never by a reviewer)."""
    data = plain(data)
    series: list[str] = []

    def inline(x):
        if isinstance(x, dict):
            return {k: inline(v) for k, v in x.items()}
        if isinstance(x, list) and x and all(v is None or _num(v) for v in x):
            series.append(json.dumps(x, separators=(",", ":")))
            return f"\x00{len(series) - 1}\x00"
        return [inline(v) for v in x] if isinstance(x, list) else x
    if isinstance(data, dict) and isinstance(data.get("_replicates"), dict):
        data = {**data, "_replicates": inline(data["_replicates"])}
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    for i, line in enumerate(series):
        text = text.replace(f'"\\u0000{i}\\u0000"', line, 1)
    return text


def record(path: Path, data: Any, rel: float = REL_TOL, abs_: float = ABS_TOL) -> bool:
    """Write one snapshot atomically (temporary file + rename: an interrupted run leaves the old file or the new
    one, never half of either), unless the recorded one already matches within tolerance (no churn from float
    noise). Returns whether the file was written."""
    text = serialize(data)
    if path.exists():
        try:
            old = json.loads(path.read_text())
            if not any(compare(old, json.loads(text), rel, abs_)):
                if not (isinstance(old, dict) and isinstance(data, dict) and data.get("_replicates")
                        and not old.get("_replicates")):
                    return False
                # the numbers stand as recorded; the replicates of a paired comparison are added to them (a
                # snapshot recorded before they were kept: its findings unchanged, now testable pair by pair)
                text = serialize({**old, "_replicates": plain(data["_replicates"])})
                data = old
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
