"""Presenting a run: the verdict cells (cells.py), the terminal and report.md (text.py), report.html (html.py), the
plots of report.html (plots.py) and their one colour table (colours.py). Nothing here judges: verdicts, drift and
significance are computed below (probes/verdicts.py, probes/drift.py, probes/compare.py)."""
