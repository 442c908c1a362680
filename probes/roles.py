"""A claim's numbers by role, and the one parser of their paths.

A claim declares the **roles** of its numbers with ``claim_snapshot(data, effect=[...], identity=[...])``:

- *effect*: the numbers the finding is about (an IOI logit difference, the top heads' deltas, a top-k share, a
  restoration);
- *identity*: which components (heads, neurons, layers, tokens). A list of plain ids (``"significant_layers"``)
  compares as a set with ranks; a field of a list of records (``"top_heads[].head"``) keys that list, so its records
  are matched by id, never by position;
- *diagnostic*: everything else (null quantiles, counts, p-values, sizes).

Paths name keys with dots and list elements with ``[]``: ``"gap"``, ``"mean_norm_by_layer"`` (and everything under
it), ``"top_heads[].delta"``. probes/compare.py walks a snapshot by these roles; probes/drift.py holds what it finds.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

EFFECT, IDENTITY, DIAGNOSTIC = "effect", "identity", "diagnostic"
IGNORED = {"_recorded_with", "_roles", "_noise", "_intervals", "_stability", "_replicates"}  # provenance, roles,
#                  floors, intervals, stabilities and replicates: recorded beside the numbers, never compared as numbers


def pattern(path: str) -> str:
    return re.sub(r"\[[^\]]*\]", "[]", path)


def roles(effect=(), identity=()) -> dict[str, str]:
    """The role table a claim declares: path pattern -> role."""
    out = {}
    for role, paths in ((EFFECT, effect), (IDENTITY, identity)):
        for p in [paths] if isinstance(paths, str) else paths:
            if not isinstance(p, str) or not p:
                raise ValueError(f"claim_snapshot roles: {p!r} is not a path (e.g. 'gap' or 'top_heads[].delta')")
            out[pattern(p)] = role
    return out


def split_pattern(path: str) -> tuple[str, str]:
    """A role path's parts: ``"top_heads[].delta"`` -> ``("top_heads", "delta")``, ``"gap"`` -> ``("gap", "")``,
    ``"a.b"`` -> ``("a.b", "")`` (the one parser of the ``a[].b`` paths)."""
    head, _, field = pattern(path).partition("[].")
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
    p = pattern(path)
    while p:
        if p in table:
            return table[p]
        if p.endswith("[]"):
            p = p[:-2]
            continue
        cut = max(p.rfind("."), p.rfind("["))
        p = p[:cut] if cut > 0 else ""
    return DIAGNOSTIC


def key_field(path: str, table: dict[str, str], items: list) -> str | None:
    """The identity field of a list of records at ``path`` (declared ``path[].field``), if any."""
    if not items or not all(isinstance(x, dict) for x in items):
        return None
    base = pattern(path) + "[]."
    for pat, role in table.items():
        if role == IDENTITY and pat.startswith(base) and "." not in pat[len(base):] and "[" not in pat[len(base):]:
            f = pat[len(base):]
            if all(f in x for x in items):
                return f
    return None


def record_ids(items: list[dict], key: str) -> list[str]:
    """The records' ids; an id that recurs is numbered by occurrence (`` his``, `` his#2``), so that records keyed
    by a token that appears twice (e.g. one record per token of a text) still match the same occurrence."""
    seen: Counter = Counter()
    out = []
    for x in items:
        i = ident(x[key])
        seen[i] += 1
        out.append(i if seen[i] == 1 else f"{i}#{seen[i]}")
    return out


def ascending(ids: list[str]) -> bool:
    try:
        vals = [json.loads(i) for i in ids]
        return all(a <= b for a, b in zip(vals, vals[1:]))
    except (json.JSONDecodeError, TypeError):
        return False


def is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def ident(x) -> str:
    return x if isinstance(x, str) else json.dumps(x, separators=(",", ":"))


def is_interval(x) -> bool:
    return isinstance(x, list) and len(x) == 2 and all(is_number(v) for v in x)
