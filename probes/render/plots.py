"""The plots of report.html: each claim's effect across the runs of a history (trends) and its headline effect with
its interval per model (forests), as base64 PNGs, drawn on their own figures (pyplot's state is left alone)."""
from __future__ import annotations

import base64
import io

from ..compare import headline
from ..history import Run, points
from ..results import ClaimResult
from .colours import BANDS, HISTORY, MARK, RECORDED


def png(fig) -> str:
    """A finished figure (a ``matplotlib.figure.Figure``, never pyplot's: the user's matplotlib state is left
    alone) as base64 PNG, embedded in report.html."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode()


def trends(runs: list[Run], min_points: int = 2) -> dict[str, str]:
    """claim -> a PNG (base64) of its effect numbers across the runs / candidates, for each claim with a lineage
    of at least ``min_points`` points."""
    from matplotlib.figure import Figure

    out = {}
    for claim, lineages in points(runs).items():
        lineages = {k: v for k, v in lineages.items() if len(v) >= min_points}
        if not lineages:
            continue
        keys = list(dict.fromkeys(k for pts in lineages.values() for p in pts for k in p["values"]))[:4] or ["(none)"]
        # one x position per (run, position of the model in its lineage in that run), shared by all lineages, so
        # that the lines of several models over several nights line up by run
        slots = sorted({p["slot"] for pts in lineages.values() for p in pts})
        labels = {}
        for sl in slots:
            names = {p["x"] for pts in lineages.values() for p in pts if p["slot"] == sl}
            labels[sl] = names.pop() if len(names) == 1 else \
                next(p["date"] for pts in lineages.values() for p in pts if p["slot"] == sl) + (f" #{sl[1] + 1}"
                                                                                               if sl[1] else "")
        fig = Figure(figsize=(4.2 * len(keys) + 1.0, 3.6))
        axes = fig.subplots(1, len(keys), squeeze=False)
        for ax, key in zip(axes[0], keys):
            for lineage, pts in lineages.items():
                xs = [slots.index(p["slot"]) for p in pts]
                ys = [p["values"].get(key) for p in pts]
                ok = [(x, y) for x, y in zip(xs, ys) if y is not None]
                if ok:
                    ax.plot(*zip(*ok), marker="o", label=lineage)
                for x, p in zip(xs, pts):
                    if p["verdict"] in BANDS:
                        ax.axvline(x, color=MARK[p["verdict"]], alpha=0.25, lw=6)
                        ax.text(x, 0.02, p["verdict"], rotation=90, transform=ax.get_xaxis_transform(),
                                ha="center", va="bottom", fontsize=8, color=MARK[p["verdict"]])
            ax.set_xticks(range(len(slots)), [labels[sl] for sl in slots], rotation=30, ha="right", fontsize=7)
            lo, hi = ax.get_ylim()  # at least 10% of the largest |value| tall: float noise must not look like a cliff
            span = 0.1 * max((abs(p["values"][key]) for pts in lineages.values() for p in pts if key in p["values"]),
                             default=0.0)
            if hi - lo < span:
                mid = (hi + lo) / 2
                ax.set_ylim(mid - span / 2, mid + span / 2)
            ax.set_title(key, fontsize=9)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7, loc="best")
        fig.suptitle(f"{claim}: effect across runs (bands: broken / error / known failure)", fontsize=10)
        out[claim] = png(fig)
    return out


def _forest_rows(results: list[ClaimResult], runs: list[Run] | None) -> dict[str, list[tuple]]:
    """claim -> (label, path, value, interval, kind) per row of its forest plot: the earlier runs of the history
    (kind "history"), then per model this run's value (kind: its verdict) after its recorded value ("recorded")."""
    rows: dict[str, list[tuple]] = {}
    for run in (runs or [])[:-1] if runs else []:  # the last history line is this run: drawn from ``results``
        when = run.when[:16]
        for r in run.results:
            top = headline(r.numbers, r.roles or {}) if r.layer is None and r.numbers else None
            if top is not None:
                rows.setdefault(r.claim, []).append((f"{r.model} {when}", *top, "history"))
    for r in results:
        h = r.headline
        if r.layer is not None or h is None or not isinstance(h.value, (int, float)):
            continue
        label = f"{r.baseline or r.model} (recorded)"  # once per registry model, candidates or not
        if h.old is not None and label not in [x[0] for x in rows.get(r.claim, [])]:
            rows.setdefault(r.claim, []).append((label, h.path, h.old, h.old_ci, "recorded"))
        rows.setdefault(r.claim, []).append((f"{r.model}: {r.verdict}", h.path, h.value, h.ci, r.verdict))
    return rows


def forests(results: list[ClaimResult], runs: list[Run] | None = None) -> dict[str, str]:
    """claim -> a PNG (base64) forest plot of its headline effect with its 95% interval: for every model and
    candidate of this run, the recorded snapshot's value beside it (grey), and with ``runs`` (a history) every
    earlier run's point. Claims whose effect is not one number (per-layer profiles) have none."""
    from matplotlib.figure import Figure

    out = {}
    colours = {"recorded": RECORDED, "history": HISTORY, **{v.value: c for v, c in MARK.items()}}
    for claim, rs in _forest_rows(results, runs).items():
        fig = Figure(figsize=(6.5, 0.45 * len(rs) + 1.2))
        ax = fig.subplots()
        for i, (_, _, v, ci, kind) in enumerate(rs):
            y = len(rs) - 1 - i
            c = colours.get(str(kind), "#1f4e79")
            if ci:
                ax.plot(ci, [y, y], color=c, lw=2.5, alpha=0.8)
            ax.plot([v], [y], "o", color=c, ms=6)
        ax.set_yticks(range(len(rs)), [r[0] for r in rs][::-1], fontsize=8)
        ax.set_xlabel(f"{rs[0][1]}: dot = value, bar = 95% bootstrap interval", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(f"{claim}: headline effect by model", fontsize=9)
        out[claim] = png(fig)
    return out
