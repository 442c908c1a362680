"""What changed between a recorded snapshot and this run, and whether it matters.

A claim's numbers have **roles** (declared with ``claim_snapshot(data, effect=[...], identity=[...])``):

- *effect*: the numbers the finding is about (an IOI logit difference, the top heads' deltas, a top-k share, a
  restoration);
- *identity*: which components (heads, neurons, layers, tokens). A list of plain ids (``"significant_layers"``)
  compares as a set with ranks; a field of a list of records (``"top_heads[].head"``) keys that list, so its records
  are matched by id, never by position;
- *diagnostic*: everything else (null quantiles, counts, p-values, sizes).

Paths name keys with dots and list elements with ``[]``: ``"gap"``, ``"mean_norm_by_layer"`` (and everything under
it), ``"top_heads[].delta"``. :func:`diff` returns a :class:`Drift`: every move beyond tolerance (a value with its
change in percent of its own recorded value and in units of the tolerance, a set with the ids that entered or
left), the identity overlap of every id list, and one line for the claim (``effect -7% (top_heads: 7 kept, +1,
-1)``). A pure reorder of components is a rank change inside an unchanged set, never a change of sign or of
identity.

**Noise is not change.** A snapshot may carry, beside its numbers (never compared as numbers):

- ``_noise``: each number's measured **noise floor** (``floor``: path -> the largest move seen when the claim was
  re-measured under float32-rounding perturbations: other SIMD kernels, MKL code paths, thread counts, a 1e-6
  weight jitter; scripts/calibrate.py) and the component ids that changed under them (``unstable``). A number
  moves only beyond ``max(declared tolerance, FLOOR_K x floor)``; ids that float noise moves never count.
  ``_noise.bfloat16`` / ``_noise.float16`` (same shape): the floors of a run in that half precision against these
  numbers, measured as the largest move between the recorded values and half-precision runs under perturbations at
  that precision's rounding scale (scripts/calibrate.py --dtype); they judge a half-precision run.
- ``_intervals``: the claim's 95% bootstrap intervals over its stimuli, in the shape of the numbers they belong
  to (a number -> ``[lo, hi]``; a list -> a list of those; records -> a list of dicts aligned with the records).
- ``_stability``: per identity path, each component's share of bootstrap resamples in which it is in the set.
- ``_replicates``: per effect number with an interval, its first bootstrap draws (probes/paired.py), drawn with
  the seeded indices a new run draws again: the paired test of a change.

A move of an effect is **significant** when the paired test of its change on the same stimuli says so (its
p-value, Benjamini-Hochberg-adjusted over every effect of the run by :func:`probes.results.adjust`, below 0.05;
the move exists only beyond the number's noise floor); an effect recorded without replicates: when it leaves its
recorded interval; an effect without an interval: as soon as it moves beyond its floor. A change of identities is
significant when a component that was stable in its set (>= STABLE of the resamples) leaves it or
one stably out enters; an effect number that appears, vanishes or changes type is too; diagnostics are reported and
never significant. With ``mode="floor"`` every move beyond the floor is significant: how this project's own tests
catch a change of its measuring code that moves recorded numbers on the same model.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from .paired import Q, is_series
from .paired import test as paired_test

EFFECT, IDENTITY, DIAGNOSTIC = "effect", "identity", "diagnostic"
IGNORED = {"_recorded_with", "_roles", "_noise", "_intervals", "_stability", "_replicates"}  # provenance, roles,
#                  floors, intervals, stabilities and replicates: recorded beside the numbers, never compared as numbers
LARGE, MEDIUM, SMALL, NOISE = "large", "medium", "small", "noise"
LEVELS = [LARGE, MEDIUM, SMALL, NOISE]
FLOOR_K = 4.0    # a number moves only beyond max(declared tolerance, FLOOR_K x its measured noise floor)
STABLE = 0.95    # a component is stable in a top set when it is there in >= 95% of the bootstrap resamples
INTERVAL, FLOOR = "interval", "floor"  # significance: leaving the recorded interval, or any move beyond the floor
LARGE_EFFECT, MEDIUM_EFFECT = 20.0, 5.0  # percent of the recorded effect
LARGE_LOSS = 0.25                        # fraction of an id set that left


def _pattern(path: str) -> str:
    return re.sub(r"\[[^\]]*\]", "[]", path)


def roles(effect=(), identity=()) -> dict[str, str]:
    """The role table a claim declares: path pattern -> role."""
    out = {}
    for role, paths in ((EFFECT, effect), (IDENTITY, identity)):
        for p in [paths] if isinstance(paths, str) else paths:
            if not isinstance(p, str) or not p:
                raise ValueError(f"claim_snapshot roles: {p!r} is not a path (e.g. 'gap' or 'top_heads[].delta')")
            out[_pattern(p)] = role
    return out


def split_pattern(pattern: str) -> tuple[str, str]:
    """A role path's parts: ``"top_heads[].delta"`` -> ``("top_heads", "delta")``, ``"gap"`` -> ``("gap", "")``,
    ``"a.b"`` -> ``("a.b", "")`` (the one parser of the ``a[].b`` paths)."""
    head, _, field = _pattern(pattern).partition("[].")
    return head.replace("[]", ""), field


def effect_patterns(table: dict[str, str]) -> list[tuple[str, str]]:
    """The declared effect paths of a role table, split (:func:`split_pattern`)."""
    return [split_pattern(p) for p, role in (table or {}).items() if role == EFFECT]


def node_at(data: Any, head: str) -> Any:
    """The value at a dotted path of nested objects (None where there is none)."""
    node = data
    for k in head.split("."):
        node = node.get(k) if isinstance(node, dict) else None
    return node


def role_of(path: str, table: dict[str, str]) -> str:
    """The declared role of a path, or of the nearest declared path above it; diagnostic otherwise."""
    p = _pattern(path)
    while p:
        if p in table:
            return table[p]
        if p.endswith("[]"):
            p = p[:-2]
            continue
        cut = max(p.rfind("."), p.rfind("["))
        p = p[:cut] if cut > 0 else ""
    return DIAGNOSTIC


def _key_field(path: str, table: dict[str, str], items: list) -> str | None:
    """The identity field of a list of records at ``path`` (declared ``path[].field``), if any."""
    if not items or not all(isinstance(x, dict) for x in items):
        return None
    base = _pattern(path) + "[]."
    for pat, role in table.items():
        if role == IDENTITY and pat.startswith(base) and "." not in pat[len(base):] and "[" not in pat[len(base):]:
            f = pat[len(base):]
            if all(f in x for x in items):
                return f
    return None


def _record_ids(items: list[dict], key: str) -> list[str]:
    """The records' ids; an id that recurs is numbered by occurrence (`` his``, `` his#2``), so that records keyed
    by a token that appears twice (e.g. one record per token of a text) still match the same occurrence."""
    seen: Counter = Counter()
    out = []
    for x in items:
        i = _id(x[key])
        seen[i] += 1
        out.append(i if seen[i] == 1 else f"{i}#{seen[i]}")
    return out


def _ascending(ids: list[str]) -> bool:
    try:
        vals = [json.loads(i) for i in ids]
        return all(a <= b for a, b in zip(vals, vals[1:]))
    except (json.JSONDecodeError, TypeError):
        return False


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _fmt(x) -> str:
    """A recorded or measured value: floats to 7 significant digits (enough to show any move beyond a 1e-4
    relative tolerance), other values as JSON."""
    if not isinstance(x, float):
        return json.dumps(x)
    t = f"{x:.7g}"
    return t if any(c in t for c in ".einf") else t + ".0"


def _id(x) -> str:
    return x if isinstance(x, str) else json.dumps(x, separators=(",", ":"))


@dataclass(frozen=True)
class Move:
    """One change beyond tolerance (the larger of the declared one and FLOOR_K x the number's noise floor).
    ``pct``: the change in percent of the number's own recorded value; ``tol``: the change in units of that
    tolerance; ``sig``: whether it is significant (see :func:`diff`); ``width``: the change in half-widths of
    the recorded interval; ``interval``: the recorded interval. Data only: :attr:`text` writes the line."""
    path: str
    role: str
    kind: str  # value | set | changed | missing | new | length
    old: Any = None
    new: Any = None
    change: float | None = None
    pct: float | None = None
    tol: float | None = None
    sig: bool = True     # significant: the paired test (or, unpaired, leaving the recorded interval; stable ids left)
    width: float | None = None  # the change in half-widths of the recorded interval (effects with an interval)
    interval: tuple[float, float] | None = None
    p: float | None = None         # the paired test's two-sided p-value (probes/paired.py; None: not tested)
    p_adj: float | None = None     # ... adjusted (Benjamini-Hochberg over every effect tested in the run)
    change_ci: tuple[float, float] | None = None  # the change's own 95% interval, from the paired replicates

    @property
    def text(self) -> str:
        """The move as one line of the reports."""
        p = self.path
        if self.kind == "missing":
            return f"{p}: missing from this run (was {_fmt(self.old)})"
        if self.kind == "new":
            return f"{p}: new key, not in the snapshot ({_fmt(self.new)})"
        if self.kind == "length":
            return f"{p}: length {self.old} -> {self.new}"
        if self.kind == "set":
            old, new = Counter(map(str, self.old or [])), Counter(map(str, self.new or []))
            return (f"{p}: {sum((old & new).values())} kept, entered {', '.join((new - old).elements()) or '-'}, "
                    f"left {', '.join((old - new).elements()) or '-'}")
        if self.kind == "value" and self.tol:
            pct_s = f"{self.pct:+.1f}% of its recorded value, " if self.pct is not None else ""
            iv_s = f"recorded interval [{_fmt(self.interval[0])}, {_fmt(self.interval[1])}], " if self.interval \
                else ""
            if self.change_ci is not None:
                lo, hi = self.change_ci
                q = self.p if self.p_adj is None else self.p_adj
                iv_s = (f"paired change [{lo:+.3g}, {hi:+.3g}], p {self.p:.2g}"
                        + (f" (adjusted {q:.2g})" if self.p_adj is not None else "") + ", ")
            return (f"{p}: {_fmt(self.old)} -> {_fmt(self.new)} (moved {self.change:+.3g}: {pct_s}{iv_s}"
                    f"{self.tol:.3g}x tolerance)")
        return f"{p}: {_fmt(self.old)} -> {_fmt(self.new)}"


@dataclass
class IdentitySet:
    """One list of component ids, old vs new: overlap, ids that entered or left, rank changes of the kept ones."""
    path: str
    n_old: int
    n_new: int
    same: int
    entered: list = field(default_factory=list)
    left: list = field(default_factory=list)
    ranks: list = field(default_factory=list)  # [id, old rank, new rank] (1-based), kept ids whose rank changed

    scalar: bool = False  # one named component (e.g. the stand-out neuron), not a list
    lost_share: float | None = None  # records with effect values: the share of the recorded effect the ids that
    #                                  left carried (a swap at the tail of a top-k list carries little)
    sig: bool = True    # the change involves a component that was stable in the set (or whose stability is unknown)
    floor_noise: bool = False  # every id that entered or left also did so under float-noise perturbations

    @property
    def label(self) -> str:
        if self.scalar:
            return f"{self.path} same" if self.same else f"{self.path} {self.left[0]} -> {self.entered[0]}"
        if self.entered or self.left:
            return f"{self.path}: {self.same} kept, +{len(self.entered)}, -{len(self.left)}"
        return f"{self.path}: {self.same} kept"

    def text(self) -> str:
        if self.scalar:
            return f"{self.path}: " + ("same" if self.same else f"{self.left[0]} -> {self.entered[0]}")
        if not self.entered and not self.left:
            what = "same set" + (", reordered: " + ", ".join(f"{i} rank {a} -> {b}" for i, a, b in self.ranks[:6])
                                 + (" ..." if len(self.ranks) > 6 else "") if self.ranks else ", same order")
        else:
            what = ", ".join(x for x in (
                ("entered " + ", ".join(map(str, self.entered))) if self.entered else "",
                ("left " + ", ".join(map(str, self.left))) if self.left else "",
                ("rank changes " + ", ".join(f"{i} {a} -> {b}" for i, a, b in self.ranks[:6])) if self.ranks else "")
                             if x)
        note = "" if self.sig else (" (within float noise)" if self.floor_noise else " (within noise: no stable "
                                                                                 "component changed)")
        return f"{self.path}: {self.same} kept, +{len(self.entered)}, -{len(self.left)}; {what}{note}"


@dataclass
class Drift:
    moves: list[Move] = field(default_factory=list)
    identities: list[IdentitySet] = field(default_factory=list)
    has_effect: bool = False  # whether the claim declares effect numbers
    tests: dict[str, float] = field(default_factory=dict)  # path -> the paired test's p of every effect number
    #                                compared with replicates, moved or not (the run adjusts them together)
    mode: str = "interval"    # the significance mode it was judged in (INTERVAL or FLOOR)
    resolution: dict[str, float] = field(default_factory=dict)  # path -> the half-width of the change's 95%
    #                                interval (paired replicates): the smallest change of it these stimuli resolve

    @property
    def moved(self) -> bool:
        """Some number moved beyond its noise floor (significant or not)."""
        return bool(self.moves)

    @property
    def significant(self) -> bool:
        """Some move is significant: an effect left its recorded interval, a stable component left its set, an
        effect number appeared, vanished or changed type (or, with significance "floor", anything moved beyond
        its floor). Diagnostics never are, except under "floor"."""
        return any(m.sig for m in self.moves)

    def _effect_moves(self) -> list[Move]:
        moves = [m for m in self.moves if m.role == EFFECT and m.pct is not None]
        sig = [m for m in moves if m.sig]
        return sig or moves

    @property
    def effect(self) -> float | None:
        """The signed largest change of an effect number (significant ones first), in percent of that number's own
        recorded value (None: none moved)."""
        moves = self._effect_moves()
        return max(moves, key=lambda m: abs(m.pct)).pct if moves else None

    @property
    def effect_path(self) -> str | None:
        moves = self._effect_moves()
        return max(moves, key=lambda m: abs(m.pct)).path if moves else None

    @property
    def level(self) -> str:
        """Significance first, size second. noise: nothing significant moved (every move within its recorded
        interval, or of a diagnostic, or of an unstable component). Among significant moves: large: an effect moved
        >= 20% of its own recorded value, or >= 25% of an id set left (for records with effect values: ids carrying
        >= 25% of the recorded effect), or an effect number appeared, vanished or changed type; medium: an effect
        moved >= 5%, or a stable id entered or left; small: the rest."""
        if not self.significant:
            return NOISE
        sig = [m for m in self.moves if m.sig]
        e = max((abs(m.pct) for m in sig if m.role == EFFECT and m.pct is not None), default=0.0)
        top = [s for s in self.identities if "[" not in s.path and s.sig and (s.entered or s.left)]
        lost = max((s.lost_share if s.lost_share is not None else len(s.left) / s.n_old  # the id lists inside kept
                    for s in top if s.n_old), default=0.0)                              # records are details
        minor = all(s.lost_share is not None and s.lost_share < MEDIUM_EFFECT / 100 for s in top)
        structural = any(m.role == EFFECT and m.kind in ("missing", "new", "length", "changed") for m in sig)
        if e >= LARGE_EFFECT or lost >= LARGE_LOSS or structural:
            return LARGE
        if e >= MEDIUM_EFFECT or not minor:
            return MEDIUM
        return SMALL

    def summary(self) -> str:
        """One short phrase: the effect change and the identity sets' entries and exits
        (``effect -7% (top_heads: 7 kept, +1, -1)``), ``within noise`` when nothing moved significantly."""
        parts = []
        e = self.effect
        if e is not None:
            parts.append(f"effect {e:+.1f}% of {self.effect_path}")
        elif any(m.role == EFFECT for m in self.moves):
            parts.append("effect changed")
        elif self.has_effect:
            parts.append("effect within tolerance")
        n_diag = sum(m.role == DIAGNOSTIC for m in self.moves)
        if n_diag and e is None:
            parts[-1:] = [(parts[-1] + ", " if parts else "") + f"{n_diag} diagnostic{'s' if n_diag > 1 else ''} moved"]
        ids = self.id_summary()
        if ids:
            parts.append(f"({ids})")
        if self.moves and not self.significant:
            parts.append("within noise")
        return " ".join(parts) if parts else "no change"

    def id_summary(self) -> str:
        """The identity sets in a few words (``top_heads: 7 kept, +1, -1; 1 more id same``); empty without any."""
        # not the id lists inside matched records, nor sets that are empty before and after
        top = [s for s in self.identities if "[" not in s.path and (s.n_old or s.n_new)]
        changed = [s for s in top if s.entered or s.left]
        same = [s for s in top if not (s.entered or s.left) and not s.scalar]
        shown = changed[:2] + same[:max(0, 1 - len(changed))]
        ids = [s.label for s in shown]
        if len(changed) > 2:
            ids.append(f"{len(changed) - 2} more changed")
        n = len(top) - len(changed) - len([s for s in shown if s in same])
        if n:
            ids.append(f"{n} {'more ' if shown else ''}id{'s' if n > 1 else ''} same")
        return "; ".join(ids)

    def lines(self) -> list[str]:
        """Every move, one line each: effects, then identities (sets that changed or were reordered), then
        diagnostics; a move that is not significant says so."""
        def of(role):
            return [f"[{role}] {m.text}{'' if m.sig else ' - within noise'}" for m in self.moves
                    if m.role == role and m.kind != "set"]
        ids = [f"[identity] {s.text()}" for s in self.identities if s.entered or s.left or s.ranks]
        return of(EFFECT) + ids + of(IDENTITY) + of(DIAGNOSTIC)

    def to_json(self) -> dict:
        """The drift as JSON: its moves and identity sets (data), and for readers of report.json its level,
        significance, largest effect change and summary (derived: :meth:`from_json` recomputes them)."""
        return {"has_effect": self.has_effect, "tests": self.tests, "resolution": self.resolution, "mode": self.mode,
                "level": self.level, "significant": self.significant,
                "effect_pct": self.effect, "effect_path": self.effect_path, "summary": self.summary(),
                "id_summary": self.id_summary(), "identities": [asdict(s) for s in self.identities],
                "moves": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(m).items()}
                          for m in self.moves]}

    @classmethod
    def from_json(cls, d: dict) -> "Drift":
        """A drift from :meth:`to_json` (or from a version-2 report, whose moves carry their text: recomputed)."""
        mf = {f for f in Move.__dataclass_fields__}
        sf = {f for f in IdentitySet.__dataclass_fields__}
        moves = [Move(**{k: (tuple(v) if k in ("interval", "change_ci") and v else v) for k, v in m.items()
                         if k in mf}) for m in d.get("moves") or []]
        ids = [IdentitySet(**{k: v for k, v in s.items() if k in sf}) for s in d.get("identities") or []]
        has = d.get("has_effect", any(m.role == EFFECT for m in moves) or d.get("effect_pct") is not None)
        return cls(moves=moves, identities=ids, has_effect=bool(has), tests=dict(d.get("tests") or {}),
                   mode=d.get("mode") or INTERVAL, resolution=dict(d.get("resolution") or {}))


def _is_interval(x) -> bool:
    return isinstance(x, list) and len(x) == 2 and all(_num(v) for v in x)


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
            old = {k: v for k, v in old.items() if k not in IGNORED}
            new = {k: v for k, v in new.items() if k not in IGNORED}
            for k in sorted(old.keys() - new.keys()):
                p = f"{path}.{k}" if path else k
                self.add(p, "missing", old[k], None)
            for k in sorted(new.keys() - old.keys()):
                p = f"{path}.{k}" if path else k
                self.add(p, "new", None, new[k])
            for k in sorted(old.keys() & new.keys()):
                self.walk(old[k], new[k], f"{path}.{k}" if path else k, iv.get(k) if isinstance(iv, dict) else None,
                          tuple(r.get(k) if isinstance(r, dict) else None for r in reps))
        elif isinstance(old, list) and isinstance(new, list):
            self.walk_list(old, new, path, role, iv, reps)
        elif role == IDENTITY and not isinstance(old, (dict, list)) and not isinstance(new, (dict, list)):
            self.id_set([_id(old)], [_id(new)], path, scalar=True)  # one named component (e.g. the stand-out neuron)
        elif _num(old) and _num(new):
            self.leaves.append((path, role, old, iv if _is_interval(iv) else None))
            d = new - old
            tol = self.tol(path, old)
            tested = None
            if role == EFFECT and all(is_series(r) for r in reps):
                tested = paired_test(reps[0], reps[1], d)
                if tested is not None:
                    self.drift.tests[path] = tested[0]
                    self.drift.resolution[path] = (tested[1][1] - tested[1][0]) / 2
            if abs(d) > tol:
                pct = 100.0 * d / abs(old) if old else None
                lo, hi = (min(iv), max(iv)) if _is_interval(iv) else (None, None)
                width = d / ((hi - lo) / 2) if lo is not None and hi > lo else None
                if self.mode == FLOOR:
                    sig = True
                elif role != EFFECT:
                    sig = False  # diagnostics are reported, never a change on their own
                elif tested is not None:
                    sig = tested[0] < Q  # the paired test (adjusted over the run later: results.adjust)
                elif lo is not None:
                    sig = new < lo - tol or new > hi + tol  # recorded without replicates: leaving its interval
                else:
                    sig = True  # an effect without a recorded interval: beyond its noise floor is a change
                self.add(path, "value", old, new, change=d, pct=pct, tol=abs(d) / tol if tol else None,
                         sig=sig, width=width, interval=(min(iv), max(iv)) if _is_interval(iv) else None,
                         p=tested[0] if tested else None, change_ci=tested[1] if tested else None)
        elif old != new:
            self.add(path, "changed", old, new)

    def walk_list(self, old: list, new: list, path: str, role: str, iv: Any, reps: tuple = (None, None)) -> None:
        key = _key_field(path, self.table, old)
        if key is not None and _key_field(path, self.table, new) == key:
            return self.keyed(old, new, path, key, iv, reps)
        if role == IDENTITY and not any(isinstance(x, dict) for x in old + new):
            return self.id_set([_id(x) for x in old], [_id(x) for x in new], path)
        if len(old) != len(new):
            self.add(path, "length", len(old), len(new))
        ivs = iv if isinstance(iv, list) and len(iv) == len(old) and not _is_interval(iv) else [None] * len(old)
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
        if _ascending(old) and _ascending(new):
            ranks = []  # a sorted set (e.g. layers), not a ranking: its order says nothing
        s = IdentitySet(path, len(old), len(new), sum((co & cn).values()), list((cn - co).elements()),
                        list((co - cn).elements()), ranks, scalar)
        self.drift.identities.append(s)
        if s.entered or s.left:
            changed = {str(i) for i in s.entered + s.left}
            unstable = self.unstable.get(path, set())
            s.floor_noise = changed <= unstable
            stab = self.stab.get(_pattern(path)) or self.stab.get(path)
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
        ids_old, ids_new = _record_ids(old, key), _record_ids(new, key)
        ids = self.id_set(ids_old, ids_new, path)
        eff = [f for f in {f for x in old for f in x} if role_of(f"{path}[].{f}", self.table) == EFFECT]
        if eff:
            def weight(rec):
                return sum(abs(rec[f]) for f in eff if _num(rec.get(f)))
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
    noise = old.get("_noise") if isinstance(old.get("_noise"), dict) else {}
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


@dataclass(frozen=True)
class Number:
    """One effect number as a cell shows it: its path (``top_heads[L5.H1].delta``), value and 95% interval, the
    recorded value and interval beside it, and the change in percent of the recorded value."""
    path: str
    value: Any
    ci: tuple[float, float] | None = None
    old: Any = None
    old_ci: tuple[float, float] | None = None
    pct: float | None = None
    pct_ci: tuple[float, float] | None = None  # the change's own 95% interval in percent (paired replicates)
    p_adj: float | None = None                 # its paired test's p-value, adjusted over the run (else raw)
    resolves: float | None = None              # the half-width of that interval in percent of the recorded value:
    #                                            the smallest change of this number the stimuli resolve here

    def to_json(self) -> dict:
        return {"path": self.path, "value": self.value, "ci": list(self.ci) if self.ci else None, "old": self.old,
                "old_ci": list(self.old_ci) if self.old_ci else None, "pct": self.pct,
                "pct_ci": list(self.pct_ci) if self.pct_ci else None, "p_adj": self.p_adj, "resolves": self.resolves}

    @classmethod
    def from_json(cls, d: dict | None) -> "Number | None":
        if not d or d.get("value") is None:
            return None
        ci, old_ci = d.get("ci"), d.get("old_ci")
        pct = d.get("pct")
        if pct is None and _num(d.get("value")) and _num(d.get("old")) and d["old"]:
            pct = 100.0 * (d["value"] - d["old"]) / abs(d["old"])  # a schema-2 headline: computed as schema 3 does
        pct_ci = d.get("pct_ci")
        return cls(d["path"], d["value"], tuple(ci) if ci else None, d.get("old"),
                   tuple(old_ci) if old_ci else None, pct, tuple(pct_ci) if pct_ci else None, d.get("p_adj"),
                   d.get("resolves"))


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
        if _num(o):
            scale[_pattern(p)] = max(scale.get(_pattern(p), 0.0), abs(o))
    return max(moves, key=lambda m: abs(m.change) / (scale.get(_pattern(m.path)) or abs(m.old or 0) or 1.0)).path


def _sorted_iv(iv) -> tuple | None:
    return (float(min(iv)), float(max(iv))) if _is_interval(iv) else None


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
        v = data.get(pat)
        if _num(v):
            i = iv.get(pat)
            return pat, float(v), ([float(min(i)), float(max(i))] if _is_interval(i) else None)
    return None
