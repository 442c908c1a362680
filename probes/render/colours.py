"""The one colour table of the reports and their plots."""
from __future__ import annotations

from ..results import Verdict

# verdict -> (its cell's background in report.html, its mark in the plots: a forest's dot, a trend's band)
VERDICT = {
    Verdict.BROKEN: ("#f8c9c9", "#c0392b"), Verdict.PRECONDITION: ("#f3d9c9", "#c0392b"),
    Verdict.ERROR: ("#f8c9c9", "#8e44ad"), Verdict.NEWLY: ("#cfe2ff", "#2471a3"),
    Verdict.MOVED: ("#fff1c2", "#d68910"), Verdict.UNRECORDED: ("#fff1c2", "#1f4e79"),
    Verdict.NOISE: ("#e8f5e0", "#1e8449"), Verdict.HOLDS: ("#d9f2d9", "#1e8449"),
    Verdict.KNOWN: ("#eeeeee", "#7f8c8d"), Verdict.SKIPPED: ("#ffffff", "#1f4e79")}
CELL = {v: cell for v, (cell, _) in VERDICT.items()}
MARK = {v: mark for v, (_, mark) in VERDICT.items()}
LEVEL = {"large": "#ffc98a", "medium": "#fff1c2", "small": "#fffbe3", "noise": "#e8f5e0"}  # a moved cell, by severity
RECORDED, HISTORY = "#888888", "#9db4d0"  # a forest's recorded value and its earlier runs
BANDS = (Verdict.BROKEN, Verdict.ERROR, Verdict.KNOWN, Verdict.NEWLY)  # the verdicts a trend plot marks with a band
