"""Merge the report.json files of several runs (e.g. the nightly workflow's matrix jobs) into one report.

    python -m probes.merge OUT_DIR reports/small/report.json reports/gpt2-large/report.json [--history DIR]

Writes OUT_DIR/report.md, report.html and report.json with one verdict table over every model (the same code as
a run's own reports, probes/verdicts.py), prints the table, and with ``--history DIR`` appends the merged run to
DIR/history.jsonl and plots each claim's effect over the runs there. The exit status is the merged run's: 1 if
any part had a broken, errored or newly holding claim (or failed otherwise), else 6 if numbers moved, else 0.

An input that is **lost** (missing, or not readable JSON: e.g. a job killed while its report was written or
uploaded) never throws the others away: the merged report of every readable input is written, the lost one is named
on the terminal and in the report (``meta.lost``, and a "left out input" line in report.md and report.html), and the
exit status is **2**, in the report too (a merge of merged reports keeps it). An input that is read but is not a
report.json of a version this one reads (a snapshot, a version 1 report) is **skipped**: named on the terminal and
in the report (``meta.skipped``), the status left to the others. When no input is merged, nothing is written and
the exit status is 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import history as H
from . import verdicts as V
from .results import ClaimResult, readable

EXIT_LOST = 2  # an input could not be merged (or no input could be)


def check_report(rep) -> str | None:
    """Why a parsed file is not a report.json this version can merge (None: it is): not a report, of a version it
    does not read (version 2 reports are read), or a result that cannot be read."""
    if not isinstance(rep, dict) or not isinstance(rep.get("results"), list):
        return ("not a report.json (an object with 'results' and 'meta', as a run writes in its --artifacts "
                "folder; a snapshot or history file is not one)")
    why = readable(rep.get("version"))
    if why:
        return f"report.json {why}"
    bad = [i for i, r in enumerate(rep["results"]) if not (isinstance(r, dict) and all(k in r for k in
                                                                                       ("claim", "model", "verdict")))]
    if bad:
        return f"results[{bad[0]}] lacks claim / model / verdict"
    try:
        for r in rep["results"]:
            ClaimResult.from_json(r)
    except (KeyError, TypeError, ValueError) as e:
        return f"a result cannot be read ({type(e).__name__}: {e})"
    return None


def merge(reports: list[dict], lost: list[tuple[str, str]] = (),
          skipped: list[tuple[str, str]] = ()) -> tuple[list[ClaimResult], dict, int]:
    """(results, meta, exit status) of several runs' report.json contents (checked with :func:`check_report`).
    ``lost``: (file, why) of the inputs that could not be read (exit status 2), ``skipped``: of those that are not
    reports of a version this one reads; both named in ``meta`` (a merged report's own are kept)."""
    results, models, left_out, statuses, commands = [], [], [], [], []
    lost = [tuple(x) for rep in reports for x in rep.get("meta", {}).get("lost", [])] + [tuple(x) for x in lost]
    skipped = [tuple(x) for rep in reports for x in rep.get("meta", {}).get("skipped", [])] + \
        [tuple(x) for x in skipped]
    for rep in reports:
        meta = rep.get("meta", {})
        results += [ClaimResult.from_json(r) for r in rep.get("results", [])]
        models += [m for m in meta.get("models", []) if m not in models]
        left_out += [tuple(x) for x in meta.get("left_out", []) if tuple(x) not in left_out]
        statuses.append(int(rep.get("exit_status", 1)))
        commands.append(meta.get("command", ""))
    first = reports[0].get("meta", {}) if reports else {}
    status = 0
    if any(s not in (0, V.EXIT_DRIFT) for s in statuses):
        status = next(s for s in statuses if s not in (0, V.EXIT_DRIFT))
    elif V.EXIT_DRIFT in statuses:
        status = V.EXIT_DRIFT
    if lost:
        status = EXIT_LOST
    left_out += [x for f, why in lost if (x := (f"input {f}", f"lost: {why}; its verdicts are not in this report"))
                 not in left_out]
    left_out += [x for f, why in skipped if (x := (f"input {f}", f"skipped: {why}")) not in left_out]
    meta = {"models": models, "device": first.get("device"), "dtype": first.get("dtype"), "left_out": left_out,
            "command": " ; ".join(c for c in commands if c), "merged_from": len(reports),
            "provenance": [p for r in reports for p in r.get("meta", {}).get("provenance", [])],
            "packages": first.get("packages"),
            "when": max((r.get("meta", {}).get("when", "") for r in reports), default=""),
            "lost": [list(x) for x in dict.fromkeys(lost)], "skipped": [list(x) for x in dict.fromkeys(skipped)]}
    return results, meta, status


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m probes.merge", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="folder for the merged report.md / report.html / report.json")
    ap.add_argument("reports", nargs="+", type=Path, help="report.json files (a folder: its report.json)")
    ap.add_argument("--history", type=Path, default=None,
                    help="append the merged run to DIR/history.jsonl and plot each claim's effect over its runs")
    a = ap.parse_args(argv)
    loaded, lost, skipped = [], [], []
    for p in a.reports:
        f = p / "report.json" if p.is_dir() else p
        try:
            rep = json.loads(f.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            why = (f"not valid JSON, e.g. cut off while its job wrote it ({e})" if isinstance(e, json.JSONDecodeError)
                   else f"cannot be read ({getattr(e, 'strerror', None) or e})")
            print(f"error: cannot read {f}: {e}; its verdicts are not merged (give the report.json that a run "
                  "wrote in its --artifacts folder)", file=sys.stderr)
            lost.append((str(f), why))
            continue
        why = check_report(rep)
        if why:
            print(f"warning: skipped {f}: {why}", file=sys.stderr)
            skipped.append((str(f), why))
            continue
        loaded.append(rep)
    if not loaded:
        print("error: no input is a readable report.json of this version; nothing to merge", file=sys.stderr)
        return EXIT_LOST
    results, meta, status = merge(loaded, lost, skipped)
    run = H.run_record(results, meta, status)
    runs = [H.as_run(run)]
    if a.history is not None:
        print(f"history: run appended to {H.append(a.history, run)}")
        runs, bad = H.load(a.history)
        for b in bad:
            print(f"warning: {b}", file=sys.stderr)
        meta["trend_note"] = f"the {len(runs)} run(s) in {a.history / H.FILE}; x = run date and model version"
    else:
        meta["trend_note"] = "the models of the merged runs in order"
    for f in V.write_reports(a.out, results, meta, status, H.trends(runs)):
        print(f"report: {f}")
    for line in V.terminal_lines(V.ordered(results, meta["models"]), None if meta["lost"] else status,
                                 str(a.out / "report.md")):
        print(line)
    if meta["lost"]:
        print(f"exit status {EXIT_LOST}: {len(meta['lost'])} input(s) lost, their verdicts are not in the merged "
              "report: " + "; ".join(f"{f} ({why})" for f, why in meta["lost"]))
    return status


if __name__ == "__main__":
    sys.exit(main())
