"""Publishing a run: its reports (report.json / report.md / report.html), its history line and plots.

:func:`publish` is the one way a run's verdicts reach disk, for a run (probes/session.py, at its end) and for a
merge of several runs' reports (probes/merge.py) alike. A plot or a history that cannot be written is logged and
left out; the verdicts are still written.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import history
from .artifacts import write_atomically
from .log import log
from .render import html, plots, text
from .results import SCHEMA, ClaimResult, RunInfo
from .verdicts import ordered

REPORT_VERSION = SCHEMA  # report.json's version: the results' schema (probes/results.py)


@dataclass
class Published:
    """What :func:`publish` wrote: the report files, and the history file it appended to (None: no history)."""
    reports: list[Path] = field(default_factory=list)
    history_file: Path | None = None


def write_reports(folder: Path, results: list[ClaimResult], info: RunInfo, status: int,
                  trends: dict[str, str] | None = None, forests: dict[str, str] | None = None) -> list[Path]:
    """report.md, report.html and report.json in ``folder`` (each written to a temporary file of this process, then
    renamed). ``trends`` / ``forests``: claim -> PNG (base64) of its effect across runs / by model, in the HTML."""
    folder.mkdir(parents=True, exist_ok=True)
    results = ordered(results, info.models)
    if not info.when:
        info.when = time.strftime("%Y-%m-%d %H:%M:%S")
    files = {"report.md": text.markdown(results, info, status),
             "report.html": html.html_report(results, info, status, trends, forests),
             "report.json": json.dumps({"version": REPORT_VERSION, "meta": info.to_json(), "exit_status": status,
                                        "results": [r.to_json() for r in results]}, indent=1) + "\n"}
    out = []
    for name, body in files.items():
        write_atomically(folder / name, body)
        out.append(folder / name)
    return out


def _history(results: list[ClaimResult], info: RunInfo, status: int, folder: Path | None, specs,
             published: Published) -> list[history.Run]:
    """Append the run to ``folder``'s history (when given) and return the runs its trends are drawn over."""
    record = history.run_record(results, info, status, specs)
    info.provenance, info.packages = record["provenance"], record["packages"]  # in report.json too (merges)
    if folder is None:
        return [history.as_run(record)]
    published.history_file = history.append(folder, record)
    runs, bad = history.load(folder)
    for b in bad:
        log(b)
    info.trend_note = f"the {len(runs)} run(s) in {folder / history.FILE}; x = run date and model version"
    return runs


def publish(folder: Path, results: list[ClaimResult], info: RunInfo, status: int, history_dir: Path | None = None,
            specs=()) -> Published:
    """Write the run's history line (with ``history_dir``), its trend and forest plots and its reports in
    ``folder``. ``specs``: the run's model specs (their provenance, with hashes, goes into the history line; a merge
    passes none and keeps its inputs' provenance)."""
    out = Published()
    runs: list[history.Run] = []
    try:
        runs = _history(results, info, status, history_dir, specs, out)
        trends = plots.trends(runs)
    except Exception as e:  # noqa: BLE001 - history and plots must not hide the verdicts
        trends = {}
        log(f"could not write the history or its plots: {type(e).__name__}: {e}")
    try:
        forests = plots.forests(results, runs if history_dir is not None else None)
    except Exception as e:  # noqa: BLE001 - a plot must not hide the verdicts
        forests = {}
        log(f"could not draw the forest plots: {type(e).__name__}: {e}")
    try:
        out.reports = write_reports(folder, results, info, status, trends, forests)
    except Exception as e:  # noqa: BLE001 - a report that cannot be written must not hide the verdicts above it
        log(f"could not write the reports in {folder}: {type(e).__name__}: {e}")
    return out
