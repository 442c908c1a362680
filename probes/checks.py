"""Checks of what a claim hands the plugin that no schema sees: the role paths of ``claim_snapshot`` (an effect,
identity, interval or stability path must name a recorded number) and a claim that records no numbers.

Each mistake is one line naming the thing and the fix (probes/errors.py); none of them may pass silently: an effect
path with a typo would judge nothing as an effect, and a claim without numbers can never be compared with a later
version of its model."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .roles import split_pattern
from .errors import ClaimSnapshotError, nearest

RECORDS_NOTHING = ("records no numbers: a later version cannot be compared (hand its numbers to claim_snapshot, or "
                   "mark it @pytest.mark.claim(..., records=False) if it records nothing on purpose)")


def _has(node: Any, dotted: str) -> tuple[bool, Any, str, list[str]]:
    """Whether the dotted key path exists in nested dicts: (found, the node there; else the prefix that names
    nothing, and the keys recorded where it failed)."""
    parts = dotted.split(".") if dotted else []
    for i, k in enumerate(parts):
        if not isinstance(node, dict) or k not in node:
            return False, None, ".".join(parts[:i + 1]), sorted(node) if isinstance(node, dict) else []
        node = node[k]
    return True, node, "", []


def _missing(data: dict, path: str) -> tuple[str, list[str]] | None:
    """None when ``path`` (``a``, ``a.b``, ``list[].field``) names something recorded in ``data``; else (the part that
    names nothing, the keys recorded there). A list of records that is empty in this run cannot be checked (None)."""
    head, field = split_pattern(path)
    found, node, failed, keys = _has(data, head)
    if not found:
        return failed, keys
    if not field or "[" in field:  # a list inside records: not checked here
        return None
    records = [x for x in node if isinstance(x, dict)] if isinstance(node, list) else None
    if records is None:
        return f"{head}[]", []  # not a list: it has no records to take a field of
    if not node or any(_has(r, field)[0] for r in records):
        return None
    first = field.split(".")[0]
    if any(first in r for r in records):  # a nested field that names nothing below its first key
        return f"{head}[].{field}", []
    return f"{head}[].{first}", sorted({k for r in records for k in r})


def _interval_keys(iv: Any, data: Any, at: str) -> list[tuple[str, tuple[str, ...]]]:
    """Keys of ``intervals`` (in the shape of the numbers) that name nothing recorded: (path, the keys there)."""
    out: list[tuple[str, tuple[str, ...]]] = []  # hashable: duplicates dropped below
    if isinstance(iv, dict):
        if not isinstance(data, dict):
            return [(at, ())]
        for k, v in iv.items():
            p = f"{at}.{k}" if at else str(k)
            out += _interval_keys(v, data[k], p) if k in data else [(p, tuple(sorted(data)))]
    elif isinstance(iv, list) and isinstance(data, list) and any(isinstance(x, dict) for x in iv):
        recs = [x for x in data if isinstance(x, dict)]
        keys = {k for r in recs for k in r}
        for x in iv:
            for k in x if isinstance(x, dict) and recs else []:
                if k not in keys:
                    out.append((f"{at}[].{k}", tuple(sorted(keys))))
    return list(dict.fromkeys(out))


def check_paths(numbers: dict, effect=(), identity=()) -> None:
    """``claim_snapshot``'s role paths against the numbers it was handed (plain JSON, with their ``_intervals`` and
    ``_stability``): an ``effect=`` / ``identity=`` path, or a key of the intervals (in the shape of the numbers) or
    of the stabilities, that names no recorded number is an error naming the path, the keys recorded there and the
    nearest of them (a typo would leave the effect unjudged, and the claim would hold without a word)."""
    data = {k: v for k, v in numbers.items() if not str(k).startswith("_")}  # _intervals, _stability, ...: not numbers
    intervals, stability = numbers.get("_intervals"), numbers.get("_stability")
    wrong: list[tuple[str, str, str, Sequence[str]]] = []
    for role, paths in (("effect", effect), ("identity", identity)):
        for p in [paths] if isinstance(paths, str) else paths or ():
            miss = _missing(data, p) if isinstance(p, str) else None
            if miss is not None:
                wrong.append((f"{role} path {p!r}", p, *miss))
    for part, there in _interval_keys(intervals or {}, data, "") if isinstance(intervals, dict) else []:
        wrong.append((f"intervals key {part!r}", part, part, there))
    for k in (stability or {}) if isinstance(stability, dict) else ():
        miss = _missing(data, split_pattern(k)[0])
        if miss is not None:
            wrong.append((f"stability key {k!r}", k, *miss))
    if not wrong:
        return
    what, path, part, keys = wrong[0]
    name = part.rsplit(".", 1)[-1].split("[]")[0]
    where = f" at {part.rsplit('.', 1)[0]}" if "." in part else ""
    near = nearest(name, keys)
    fix = (f"write {part[:len(part) - len(name)] + near + path[len(part):]!r}, or name " if near and
           part.endswith(name) and path.startswith(part) else "name ")
    more = f" ({len(wrong) - 1} more: {', '.join(w[0] for w in wrong[1:])})" if len(wrong) > 1 else ""
    raise ClaimSnapshotError(
        f"claim_snapshot: {what} names no recorded number (numbers{where}: {', '.join(keys) or 'none'}){more}: "
        f"{fix}a key of the numbers handed to claim_snapshot (a.b for a nested key, list[].field for a field of a "
        "list of records)")


def records_nothing_lines(results) -> list[str]:
    """The terminal's line per claim that held without handing any number to ``claim_snapshot`` (and was not marked
    ``records=False``): nothing recorded, so a later version of the model can never be compared with it."""
    by_claim: dict[str, list[str]] = {}
    for r in results:
        if r.numbers is None and r.message == RECORDS_NOTHING:
            by_claim.setdefault(r.claim, []).append(r.model + ("" if r.layer is None else f" L{r.layer}"))
    return [f"{claim} ({', '.join(dict.fromkeys(models))}) {RECORDS_NOTHING}" for claim, models in by_claim.items()]
