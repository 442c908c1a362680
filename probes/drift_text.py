"""A drift as the reports write it: one line per move, a short phrase per claim (display only).

probes/drift.py holds what changed and judges it (significance, severity); this module only words it. It reads
the drift's fields and imports none of its types, so the types' JSON (report.json's derived ``summary``) can use it.
"""
from __future__ import annotations

import json
from collections import Counter

from .roles import DIAGNOSTIC, EFFECT, IDENTITY


def fmt(x) -> str:
    """A recorded or measured value: floats to 7 significant digits (enough to show any move beyond a 1e-4
    relative tolerance), other values as JSON."""
    if not isinstance(x, float):
        return json.dumps(x)
    t = f"{x:.7g}"
    return t if any(c in t for c in ".einf") else t + ".0"


def _value_text(m) -> str:
    pct_s = f"{m.pct:+.1f}% of its recorded value, " if m.pct is not None else ""
    iv_s = f"recorded interval [{fmt(m.interval[0])}, {fmt(m.interval[1])}], " if m.interval else ""
    if m.change_ci is not None:
        lo, hi = m.change_ci
        q = m.p if m.p_adj is None else m.p_adj
        iv_s = (f"paired change [{lo:+.3g}, {hi:+.3g}], p {m.p:.2g}"
                + (f" (adjusted {q:.2g})" if m.p_adj is not None else "") + ", ")
    return f"{m.path}: {fmt(m.old)} -> {fmt(m.new)} (moved {m.change:+.3g}: {pct_s}{iv_s}{m.tol:.3g}x tolerance)"


def move_text(m) -> str:
    """One move (a :class:`probes.drift.Move`) as one line of the reports."""
    p = m.path
    if m.kind == "missing":
        return f"{p}: missing from this run (was {fmt(m.old)})"
    if m.kind == "new":
        return f"{p}: new key, not in the snapshot ({fmt(m.new)})"
    if m.kind == "length":
        return f"{p}: length {m.old} -> {m.new}"
    if m.kind == "set":
        old, new = Counter(map(str, m.old or [])), Counter(map(str, m.new or []))
        return (f"{p}: {sum((old & new).values())} kept, entered {', '.join((new - old).elements()) or '-'}, "
                f"left {', '.join((old - new).elements()) or '-'}")
    if m.kind == "value" and m.tol:
        return _value_text(m)
    return f"{p}: {fmt(m.old)} -> {fmt(m.new)}"


def identity_label(s) -> str:
    """An identity set (:class:`probes.drift.IdentitySet`) in a few words: ``top_heads: 7 kept, +1, -1``."""
    if s.scalar:
        return f"{s.path} same" if s.same else f"{s.path} {s.left[0]} -> {s.entered[0]}"
    if s.entered or s.left:
        return f"{s.path}: {s.same} kept, +{len(s.entered)}, -{len(s.left)}"
    return f"{s.path}: {s.same} kept"


def identity_text(s) -> str:
    """An identity set as one line: kept, entered, left and rank changes, and whether the change is noise."""
    if s.scalar:
        return f"{s.path}: " + ("same" if s.same else f"{s.left[0]} -> {s.entered[0]}")
    if not s.entered and not s.left:
        what = "same set" + (", reordered: " + ", ".join(f"{i} rank {a} -> {b}" for i, a, b in s.ranks[:6])
                             + (" ..." if len(s.ranks) > 6 else "") if s.ranks else ", same order")
    else:
        what = ", ".join(x for x in (
            ("entered " + ", ".join(map(str, s.entered))) if s.entered else "",
            ("left " + ", ".join(map(str, s.left))) if s.left else "",
            ("rank changes " + ", ".join(f"{i} {a} -> {b}" for i, a, b in s.ranks[:6])) if s.ranks else "") if x)
    note = "" if s.sig else (" (within float noise)" if s.floor_noise else " (within noise: no stable component "
                                                                           "changed)")
    return f"{s.path}: {s.same} kept, +{len(s.entered)}, -{len(s.left)}; {what}{note}"


def summary(d) -> str:
    """A drift (:class:`probes.drift.Drift`) in one short phrase: the effect change and the identity sets' entries
    and exits (``effect -7% (top_heads: 7 kept, +1, -1)``), ``within noise`` when nothing moved significantly."""
    parts = []
    e = d.effect
    if e is not None:
        parts.append(f"effect {e:+.1f}% of {d.effect_path}")
    elif any(m.role == EFFECT for m in d.moves):
        parts.append("effect changed")
    elif d.has_effect:
        parts.append("effect within tolerance")
    n_diag = sum(m.role == DIAGNOSTIC for m in d.moves)
    if n_diag and e is None:
        parts[-1:] = [(parts[-1] + ", " if parts else "") + f"{n_diag} diagnostic{'s' if n_diag > 1 else ''} moved"]
    ids = id_summary(d)
    if ids:
        parts.append(f"({ids})")
    if d.moves and not d.significant:
        parts.append("within noise")
    return " ".join(parts) if parts else "no change"


def id_summary(d) -> str:
    """A drift's identity sets in a few words (``top_heads: 7 kept, +1, -1; 1 more id same``); empty without any."""
    # not the id lists inside matched records, nor sets that are empty before and after
    top = [s for s in d.identities if "[" not in s.path and (s.n_old or s.n_new)]
    changed = [s for s in top if s.entered or s.left]
    same = [s for s in top if not (s.entered or s.left) and not s.scalar]
    shown = changed[:2] + same[:max(0, 1 - len(changed))]
    ids = [identity_label(s) for s in shown]
    if len(changed) > 2:
        ids.append(f"{len(changed) - 2} more changed")
    n = len(top) - len(changed) - len([s for s in shown if s in same])
    if n:
        ids.append(f"{n} {'more ' if shown else ''}id{'s' if n > 1 else ''} same")
    return "; ".join(ids)


def lines(d) -> list[str]:
    """Every move of a drift, one line each: effects, then identities (sets that changed or were reordered), then
    diagnostics; a move that is not significant says so."""
    def of(role):
        return [f"[{role}] {move_text(m)}{'' if m.sig else ' - within noise'}" for m in d.moves
                if m.role == role and m.kind != "set"]
    ids = [f"[identity] {identity_text(s)}" for s in d.identities if s.entered or s.left or s.ranks]
    return of(EFFECT) + ids + of(IDENTITY) + of(DIAGNOSTIC)
