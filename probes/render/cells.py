"""A result in words: the numbers, the verdict cell of a claim x model, the verdict table's rows.

Every report (the terminal, report.md, report.html) writes these same cells; judging is probes/verdicts.py's.
"""
from __future__ import annotations

import json
from collections import defaultdict

from .. import drift_text
from ..results import ORDER, ClaimResult, Number, Verdict
from ..verdicts import counts, severity_key

HOLDS, NOISE, MOVED, UNRECORDED = Verdict.HOLDS, Verdict.NOISE, Verdict.MOVED, Verdict.UNRECORDED
KNOWN, SKIPPED = Verdict.KNOWN, Verdict.SKIPPED


def g(x) -> str:
    """A number as a cell shows it: a count as an integer (``1440``), a large value without exponent (``1416`` for
    1415.98), others to 3 significant digits."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int) or (1000 <= abs(x) < 1e7):
        return f"{x:.0f}"
    return f"{x:.3g}"


def ci_text(ci) -> str:
    return f" [{g(ci[0])}, {g(ci[1])}]" if ci else ""


def number_text(h: Number, was: bool = True) -> str:
    """One effect number: ``top_score 0.901 [0.896, 0.906]``, with ``was`` the recorded value, its interval and the
    change in percent of it: ``(was 0.902 [0.898, 0.906], -0.1%)``; where the change was tested on the same
    stimuli, its own 95% interval and adjusted p-value: ``(was 4.75 [4.46, 5.07]; change -3.1% [-3.4, -2.8],
    p_adj 1e-40)``."""
    out = f"{h.path} {g(h.value)}{ci_text(h.ci)}"
    if was and h.old is not None:
        change = f", {h.pct:+.1f}%" if h.pct else ""
        if h.pct and h.pct_ci is not None:  # the change's own interval, from the paired replicates
            change = (f"; change {h.pct:+.1f}% [{h.pct_ci[0]:+.1f}, {h.pct_ci[1]:+.1f}]"
                      + (f", p_adj {h.p_adj:.2g}" if h.p_adj is not None else ""))
        out += f" (was {g(h.old)}{ci_text(h.old_ci)}{change})"
    return out


def effect_text(r: ClaimResult, was: bool = True) -> str:
    """The headline effect of one result: ``mean_logit_diff 4.75 [4.52, 4.98]``, with the recorded value beside it
    for a candidate, a run compared with a snapshot of another dtype, or a result whose numbers moved (``(was 4.75 [4.52, 4.98], +0.2%)``); empty when the claim
    declares no effect number."""
    if r.headline is None:
        return ""
    show_was = was and r.verdict not in (UNRECORDED, KNOWN) and (r.verdict != HOLDS or bool(r.baseline)
                                                                 or bool(r.against))
    return number_text(r.headline, show_was)


def precision_lines(results: list[ClaimResult], dtype: str) -> list[str]:
    """How a half-precision run was judged, in one line: how many claims x models were compared with their own
    ``dtype`` snapshots, and how many with float32 snapshots under the ``dtype`` floors measured against them; and
    how many had no measured ``dtype`` floors (judged by the declared half-precision tolerance), with the fix."""
    compared = [r for r in results if r.verdict in (HOLDS, NOISE, MOVED)]
    if not compared:
        return []
    own = [r for r in compared if not r.against or r.against.startswith(f"{dtype} snapshot")]
    declared = sum(1 for r in compared if "declared" in r.against)
    parts = [f"{n} {what}" for n, what in (
        (len(own), f"with their own {dtype} snapshots"),
        (len(compared) - len(own), "with float32 snapshots")) if n]
    line = f"{dtype} run: claims x models compared " + " and ".join(parts)
    if declared:
        line += (f"; {declared} of them without measured {dtype} floors, under the declared half-precision "
                 f"tolerance (measure them: python scripts/calibrate.py --dtype {dtype})")
    else:
        line += f", judged by the {dtype} noise floors measured against them"
    return [line]


def largest_text(r: ClaimResult) -> str:
    """The effect number that moved most, when it is not the headline: ``largest move: top_heads[L3.H2].score 0.61
    [0.58, 0.64] (was 0.62 [0.6, 0.65], -1.9%)``."""
    return f"largest move: {number_text(r.largest)}" if r.largest is not None else ""


def ids_text(r: ClaimResult) -> str:
    return drift_text.id_summary(r.drift) if r.drift is not None else ""


def lead(r: ClaimResult) -> Number | None:
    """The number that says most about a per-layer result: its largest move, else its headline."""
    return r.largest or r.headline


def moved_cell(rs: list[ClaimResult], of: int = 1) -> str:
    """The short phrase of moved results: the numbers that moved and the identity overlap, or for the layers of a
    per-layer claim (``of`` of them in all) the layer that moved most, by name, with its number:
    ``12/30 layers, most: L4 r_split 0.95 [0.93, 0.97] (was 0.97 [0.96, 0.98], -2.1%)``."""
    if len(rs) == 1 and rs[0].layer is None:
        r = rs[0]
        text = "; ".join(x for x in (largest_text(r), ids_text(r)) if x)
        if text or r.headline is not None:  # the headline (shown before this phrase) names the number and its change
            return text
        return drift_text.summary(r.drift) if r.drift is not None else "numbers moved"
    moved = [(r, h) for r in rs if (h := lead(r)) is not None and h.pct is not None]
    if moved:
        r, h = max(moved, key=lambda x: abs(x[1].pct or 0.0))
        return f"{len(rs)}/{of} layers, most: L{r.layer} {number_text(h)}"
    eff = [(r.drift.effect, r.layer) for r in rs if r.drift is not None and r.drift.effect is not None]
    worst = max(eff, key=lambda x: abs(x[0]), default=None)
    return f"{len(rs)}/{of} layers" + (f", max effect {worst[0]:+.1f}% (L{worst[1]})" if worst
                                       else ", effect within tolerance")


def cell(results: list[ClaimResult]) -> str:
    """One claim x model cell: the verdict with the headline effect and its interval (``holds: mean_logit_diff 4.75
    [4.52, 4.98]``; a change or a candidate: the recorded value beside it, the number that moved most and the
    identity overlap), or for per-layer claims the count of each verdict, the layers that did not hold, the layer
    that moved most with its number, and (nothing moved) the layer with the largest headline."""
    if len(results) == 1 and results[0].layer is None:
        r = results[0]
        eff = effect_text(r)
        if r.verdict in (MOVED, NOISE):
            return f"{r.verdict}: " + "; ".join(x for x in (eff, moved_cell([r])) if x)
        return f"{r.verdict}: {eff}" if eff else str(r.verdict)
    by = defaultdict(list)
    for r in results:
        by[r.verdict].append(r)
    parts = []
    for v in ORDER:
        if v not in by:
            continue
        n = f"{len(by[v])}/{len(results)}"
        if v in (MOVED, NOISE):
            parts.append(f"{v} " + moved_cell(by[v], len(results)))
        elif v in (HOLDS, KNOWN, SKIPPED, UNRECORDED):
            parts.append(f"{v} {n}")
        else:
            parts.append(f"{v} {n} (L" + ", L".join(str(r.layer) for r in by[v]) + ")")
    if not by.keys() & {MOVED, NOISE}:
        heads = [(r, h.value) for r in results if (h := r.headline) is not None and isinstance(h.value, (int, float))]
        if heads:
            r = max(heads, key=lambda x: abs(x[1]))[0]
            parts.append(f"largest: L{r.layer} {effect_text(r)}")
    return "; ".join(parts)


def table(results: list[ClaimResult]) -> tuple[list[str], list[list[str]]]:
    """(models, rows): one row per claim, [claim id, cell per model] (models in order of first appearance), sorted by
    the worst verdict of the row, then by severity within it (the largest effect change first)."""
    models = list(dict.fromkeys(r.model for r in results))
    grid: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        grid[r.claim][r.model].append(r)
    claims = sorted(grid, key=lambda c: severity_key([r for rs in grid[c].values() for r in rs]))
    rows = [[claim] + [cell(grid[claim][m]) if grid[claim][m] else "-" for m in models] for claim in claims]
    return models, rows


def verdict_counts(results: list[ClaimResult]) -> str:
    """``verdicts (claims x models; a per-layer claim counts each layer): 3 holds, 1 broken``"""
    return ("verdicts (claims x models; a per-layer claim counts each layer): "
            + ", ".join(f"{n} {v}" for v, n in counts(results).items()))


def label(r: ClaimResult) -> str:
    layer = "" if r.layer is None else f" L{r.layer}"
    return f"{r.claim}{layer} x {r.model}"


def group_label(rs: list[ClaimResult]) -> str:
    return f"{rs[0].claim} x {rs[0].model}"


def unrecorded_lines(r: ClaimResult) -> list[str]:
    """The numbers of a claim without snapshot, as they would be recorded (to review before --record)."""
    if r.verdict != UNRECORDED or not r.numbers:
        return []
    return json.dumps(r.numbers, indent=1, sort_keys=True).splitlines()


def moved_lines(r: ClaimResult) -> list[str]:
    """Every move of a result's numbers, one line each; a result without snapshot: its numbers as they would be
    recorded."""
    return (drift_text.lines(r.drift) if r.drift is not None else []) or unrecorded_lines(r)
