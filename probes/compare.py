"""Compare a recorded snapshot with this run's numbers: the walk that finds every move (a :class:`probes.drift.Drift`),
the noise floors that judge a run of a dtype, and the numbers a verdict cell shows.

The walk follows the claim's roles (probes/roles.py): records keyed by their identity field are matched by id,
lists of ids compare as sets with ranks, numbers compare against ``max(declared tolerance, FLOOR_K x floor)`` and,
where replicates are recorded, by the paired test of their change (probes/paired.py). What a move means is
:mod:`probes.drift`'s docstring.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from .drift import FLOOR, FLOOR_K, INTERVAL, STABLE, Drift, IdentitySet, Move, Number
from .paired import Q, is_series
from .paired import test as paired_test
from .roles import (DIAGNOSTIC, EFFECT, IDENTITY, IGNORED, ascending, ident, is_interval, is_number, key_field, pattern,
                    record_ids, role_of)


class _Differ:
    def __init__(self, table: dict[str, str], rel: float, abs_: float, noise: dict | None = None,
                 stab: dict | None = None, mode: str = INTERVAL):
        self.table, self.rel, self.abs = table, rel, abs_
        self.floor = (noise or {}).get("floor", {})
        self.unstable = {k: set(map(str, v)) for k, v in (noise or {}).get("unstable", {}).items()}
        self.stab = stab or {}
        self.mode = mode
        self.drift = Drift(has_effect=EFFECT in table.values(), mode=mode)
        self.leaves: list[tuple] = []  # (path, role, recorded value, interval or None) of every number compared

    def tol(self, path: str, old: float) -> float:
        """A number's tolerance: the claim's declared one or FLOOR_K x its measured noise floor, the larger."""
        return max(self.abs + self.rel * abs(old), FLOOR_K * float(self.floor.get(path, 0.0)))

    def add(self, path, kind, old, new, **kw):
        role = role_of(path, self.table)
        kw.setdefault("sig", self.mode == FLOOR or role == EFFECT)  # structural changes of effects are significant
        self.drift.moves.append(Move(path, role, kind, old, new, **kw))

    def walk(self, old: Any, new: Any, path: str, iv: Any, reps: tuple = (None, None)) -> None:
        """Compare ``old`` with ``new`` at ``path``; ``iv``: the recorded interval there; ``reps``: the recorded
        and this run's kept replicates there (probes/paired.py)."""
        role = role_of(path, self.table) if path else DIAGNOSTIC
        if isinstance(old, dict) and isinstance(new, dict):
            self.walk_dict(old, new, path, iv, reps)
        elif isinstance(old, list) and isinstance(new, list):
            self.walk_list(old, new, path, role, iv, reps)
        elif role == IDENTITY and not isinstance(old, (dict, list)) and not isinstance(new, (dict, list)):
            self.id_set([ident(old)], [ident(new)], path, scalar=True)  # one named component (e.g. the stand-out neuron)
        elif is_number(old) and is_number(new):
            self.number(old, new, path, role, iv, reps)
        elif old != new:
            self.add(path, "changed", old, new)

    def walk_dict(self, old: dict, new: dict, path: str, iv: Any, reps: tuple) -> None:
        old = {k: v for k, v in old.items() if k not in IGNORED}
        new = {k: v for k, v in new.items() if k not in IGNORED}
        for k in sorted(old.keys() - new.keys()):
            self.add(f"{path}.{k}" if path else k, "missing", old[k], None)
        for k in sorted(new.keys() - old.keys()):
            self.add(f"{path}.{k}" if path else k, "new", None, new[k])
        for k in sorted(old.keys() & new.keys()):
            self.walk(old[k], new[k], f"{path}.{k}" if path else k, iv.get(k) if isinstance(iv, dict) else None,
                      tuple(r.get(k) if isinstance(r, dict) else None for r in reps))

    def paired(self, path: str, role: str, reps: tuple, change: float) -> tuple[float, tuple[float, float]] | None:
        """An effect's paired test (p, the change's 95% interval) where both runs kept replicates; None else."""
        if role != EFFECT or not all(is_series(r) for r in reps):
            return None
        tested = paired_test(reps[0], reps[1], change)
        if tested is not None:
            self.drift.tests[path] = tested[0]
            self.drift.resolution[path] = (tested[1][1] - tested[1][0]) / 2
        return tested

    def significant(self, role: str, tested: tuple | None, new: float, interval: tuple[float, float] | None,
                    tol: float) -> bool:
        """Whether a move beyond its floor is a change (see :mod:`probes.drift`)."""
        if self.mode == FLOOR:
            return True
        if role != EFFECT:
            return False  # diagnostics are reported, never a change on their own
        if tested is not None:
            return tested[0] < Q  # the paired test (adjusted over the run later: results.adjust)
        if interval is not None:
            return new < interval[0] - tol or new > interval[1] + tol  # recorded without replicates: leaving it
        return True  # an effect without a recorded interval: beyond its noise floor is a change

    def number(self, old: float, new: float, path: str, role: str, iv: Any, reps: tuple) -> None:
        interval = (min(iv), max(iv)) if is_interval(iv) else None
        self.leaves.append((path, role, old, iv if interval is not None else None))
        d = new - old
        tol = self.tol(path, old)
        tested = self.paired(path, role, reps, d)
        if abs(d) <= tol:
            return
        width = d / ((interval[1] - interval[0]) / 2) if interval is not None and interval[1] > interval[0] else None
        self.add(path, "value", old, new, change=d, pct=100.0 * d / abs(old) if old else None,
                 tol=abs(d) / tol if tol else None, sig=self.significant(role, tested, new, interval, tol),
                 width=width, interval=interval, p=tested[0] if tested else None,
                 change_ci=tested[1] if tested else None)

    def walk_list(self, old: list, new: list, path: str, role: str, iv: Any, reps: tuple = (None, None)) -> None:
        key = key_field(path, self.table, old)
        if key is not None and key_field(path, self.table, new) == key:
            self.keyed(old, new, path, key, iv, reps)
            return
        if role == IDENTITY and not any(isinstance(x, dict) for x in old + new):
            self.id_set([ident(x) for x in old], [ident(x) for x in new], path)
            return
        if len(old) != len(new):
            self.add(path, "length", len(old), len(new))
        ivs = iv if isinstance(iv, list) and len(iv) == len(old) and not is_interval(iv) else [None] * len(old)
        ro, rn = (r if isinstance(r, list) and len(r) == len(x) and not is_series(r) else [None] * len(x)
                  for r, x in zip(reps, (old, new)))
        for i, (a, b) in enumerate(zip(old, new)):
            self.walk(a, b, f"{path}[{i}]", ivs[i], (ro[i], rn[i]))

    def id_set(self, old: list[str], new: list[str], path: str, scalar: bool = False) -> IdentitySet:
        """Old vs new ids as multisets (a token may recur), with the rank changes of ids that occur once. The change
        is significant when a component that was stable in the set left it, or one that was stably out entered
        (``_stability``); without recorded stabilities, when an id changed that float noise does not change."""
        co, cn = Counter(old), Counter(new)
        once = [i for i in old if co[i] == 1 and cn[i] == 1]
        ranks = [[i, old.index(i) + 1, new.index(i) + 1] for i in once if old.index(i) != new.index(i)]
        if ascending(old) and ascending(new):
            ranks = []  # a sorted set (e.g. layers), not a ranking: its order says nothing
        s = IdentitySet(path, len(old), len(new), sum((co & cn).values()), list((cn - co).elements()),
                        list((co - cn).elements()), ranks, scalar)
        self.drift.identities.append(s)
        if s.entered or s.left:
            changed = {str(i) for i in s.entered + s.left}
            unstable = self.unstable.get(path, set())
            s.floor_noise = changed <= unstable
            stab = self.stab.get(pattern(path)) or self.stab.get(path)
            if s.floor_noise:
                s.sig = False
            elif self.mode == FLOOR or not isinstance(stab, dict):
                s.sig = True
            else:
                s.sig = any(stab.get(str(i), 1.0) >= STABLE for i in s.left) or \
                    any(str(i) in stab and stab[str(i)] <= 1 - STABLE for i in s.entered)
            if not s.floor_noise:
                self.drift.moves.append(Move(path, IDENTITY, "set", old, new, sig=s.sig))
        return s

    def keyed(self, old: list[dict], new: list[dict], path: str, key: str, iv: Any,
              reps: tuple = (None, None)) -> None:
        """Records matched by their id field: the id set (overlap, entered, left, ranks), then each kept record's
        other fields compared with the same record in the snapshot (intervals: a list aligned with the recorded
        records)."""
        ids_old, ids_new = record_ids(old, key), record_ids(new, key)
        ids = self.id_set(ids_old, ids_new, path)
        eff = [f for f in {f for x in old for f in x} if role_of(f"{path}[].{f}", self.table) == EFFECT]
        if eff:
            def weight(rec):
                return sum(abs(rec[f]) for f in eff if is_number(rec.get(f)))
            total = sum(weight(x) for x in old)
            ids.lost_share = sum(weight(x) for i, x in zip(ids_old, old) if i in ids.left) / total if total else 0.0
        by_new = dict(zip(ids_new, new))
        ivs = iv if isinstance(iv, list) and len(iv) == len(old) else [None] * len(old)
        ro, rn = (r if isinstance(r, list) and len(r) == len(x) else [None] * len(x) for r, x in zip(reps, (old, new)))
        rep_new = dict(zip(ids_new, rn))
        for i, rec, riv, rold in zip(ids_old, old, ivs, ro):
            if i in by_new:
                rnew = rep_new[i]
                rest_old = {f: v for f, v in rec.items() if f != key}
                rest_new = {f: v for f, v in by_new[i].items() if f != key}
                for f in sorted(rest_old.keys() | rest_new.keys()):
                    p = f"{path}[{i}].{f}"
                    if f not in rest_new:
                        self.add(p, "missing", rest_old[f], None)
                    elif f not in rest_old:
                        self.add(p, "new", None, rest_new[f])
                    else:
                        self.walk(rest_old[f], rest_new[f], p, riv.get(f) if isinstance(riv, dict) else None,
                                  tuple(r.get(f) if isinstance(r, dict) else None for r in (rold, rnew)))


def diff(old: Any, new: Any, rel: float, abs_: float, table: dict[str, str] | None = None,
         mode: str = INTERVAL, dtype: str | None = None) -> Drift:
    """Compare a recorded snapshot with this run's numbers under the claim's roles and tolerance, the snapshot's
    measured noise floors (``_noise``; for a run in another ``dtype`` than the snapshot's, that dtype's floors:
    :func:`noise_for`), intervals (``_intervals``) and stabilities (``_stability``). ``mode``:
    ``interval`` (a move is significant when an effect leaves its recorded interval or a stable component leaves
    its set) or ``floor`` (any move beyond the noise floor is: a regression test of the measuring code on the
    same model)."""
    if mode not in (INTERVAL, FLOOR):
        raise ValueError(f"significance {mode!r}: use {INTERVAL!r} or {FLOOR!r}")
    o = old if isinstance(old, dict) else {}
    noise = noise_for(o, dtype)[0] if dtype else o.get("_noise")
    d = _Differ(table or {}, rel, abs_, noise, o.get("_stability"), mode)
    d.walk(old, new, "", o.get("_intervals"), (o.get("_replicates"), new.get("_replicates") if isinstance(new, dict)
                                               else None))
    return d.drift


HALF_DTYPES = ("bfloat16", "float16")


def recorded_dtype(old: dict) -> str:
    """The dtype a snapshot was recorded in (``_recorded_with.dtype``; float32 when not written)."""
    return str((old.get("_recorded_with") or {}).get("dtype") or "float32")


def noise_for(old: dict, dtype: str) -> tuple[dict | None, bool]:
    """The noise floors that judge a run in ``dtype`` against the snapshot ``old``, and whether they were measured
    for that dtype: the snapshot's own ``_noise`` when it was recorded in ``dtype``; for a run in another dtype
    (a bfloat16 run against float32 numbers), ``_noise[dtype]``: the largest move of each number between the
    recorded values and runs in that dtype under perturbations (scripts/calibrate.py --dtype). Without those,
    the snapshot's own floors and False: the caller falls back to the claim's declared half-precision tolerance."""
    noise: dict = old["_noise"] if isinstance(old.get("_noise"), dict) else {}
    if dtype == recorded_dtype(old):
        return noise or None, bool(noise.get("runs"))
    own = noise.get(dtype)
    if isinstance(own, dict):
        return own, True
    return noise or None, False


def leaves(data: dict, table: dict[str, str] | None = None) -> list[tuple]:
    """Every number of a snapshot as the comparison names it: (path, role, value, interval or None)."""
    o = data if isinstance(data, dict) else {}
    d = _Differ(table or {}, 0.0, 0.0, None, None)
    d.walk(data, data, "", o.get("_intervals"))
    return d.leaves


def _most_moved(drift: Drift, was: dict, now: dict) -> str | None:
    """The effect number that moved most for the reader: significant moves first, then the largest change against
    the scale of its own list (the largest recorded magnitude among the numbers of its path pattern), so that a
    near-zero entry of a profile (a restoration of 2e-5 that became 2e-3) does not outrank a real move of its
    largest entries; its percent, shown beside it, stays of its own recorded value."""
    moves = [m for m in drift.moves if m.role == EFFECT and m.kind == "value" and m.path in now
             and m.change is not None]
    moves = [m for m in moves if m.sig] or moves
    if not moves:
        return None
    scale: dict[str, float] = {}
    for p, (o, _) in was.items():
        if is_number(o):
            scale[pattern(p)] = max(scale.get(pattern(p), 0.0), abs(o))
    return max(moves, key=lambda m: abs(m.change or 0.0) / (scale.get(pattern(m.path)) or abs(m.old or 0) or 1.0)).path


def _sorted_iv(iv) -> tuple | None:
    return (float(min(iv)), float(max(iv))) if is_interval(iv) else None


def effect_numbers(new: dict, table: dict[str, str], old: dict | None = None,
                   drift: Drift | None = None) -> tuple[Number | None, Number | None]:
    """The numbers a verdict cell shows, each a :class:`Number` (value, interval, the recorded value and interval,
    the change in percent of the recorded value): the **headline** (the claim's first declared single-number effect; a claim
    whose effects are lists or records: the effect number that moved most, else its largest effect number by
    magnitude, named by its path, e.g. ``ratio[12]``) and the **largest move** (the effect number that moved most,
    when it is another number than the headline; else None)."""
    def table_of(data):
        return {p: (v, iv) for p, role, v, iv in leaves(data, table) if role == EFFECT} if isinstance(data, dict) \
            else {}
    now, was = table_of(new), table_of(old)

    moves = {m.path: m for m in drift.moves} if drift is not None else {}

    def number(path):
        v, iv = now[path]
        o, oiv = was.get(path, (None, None))
        pct = 100.0 * (v - o) / abs(o) if o is not None and o != 0 and v != o else (0.0 if o == v else None)
        m = moves.get(path)
        pct_ci = p = None
        if m is not None and m.change_ci is not None and o:
            pct_ci = tuple(100.0 * x / abs(o) for x in m.change_ci)
            p = m.p if m.p_adj is None else m.p_adj
        half = drift.resolution.get(path) if drift is not None else None
        resolves = 100.0 * half / abs(o) if half is not None and o else None
        return Number(path, v, _sorted_iv(iv), o, _sorted_iv(oiv), pct, pct_ci, p, resolves)
    top = headline(new, table)
    moved = _most_moved(drift, was, now) if drift is not None else None
    if top is not None and top[0] in now:
        head = number(top[0])
    elif moved is not None:
        head = number(moved)
    elif now:
        head = number(max(now, key=lambda p: abs(now[p][0])))
    else:
        return None, None
    return head, (number(moved) if moved is not None and moved != head.path else None)


def headline(data: dict, table: dict[str, str]) -> tuple[str, float, list | None] | None:
    """A claim's headline effect: the first declared effect path that names one number, with its interval if
    recorded (path, value, [lo, hi] or None)."""
    iv = data.get("_intervals") or {}
    for pat, role in table.items():
        if role != EFFECT or "[" in pat or "." in pat:
            continue
        v, i = data.get(pat), iv.get(pat)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return pat, float(v), ([float(min(i)), float(max(i))] if isinstance(i, list) and is_interval(i) else None)
    return None
