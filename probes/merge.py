"""Merge the report.json files of several runs (e.g. the nightly workflow's matrix jobs) into one report.

    python -m probes.merge OUT_DIR reports/small/report.json reports/gpt2-large/report.json [--history DIR]

Writes OUT_DIR/report.md, report.html and report.json with one verdict table over every model (through the
same :func:`probes.publish.publish` as a run's own reports), prints the table, and with ``--history DIR`` appends the merged run to
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
from collections.abc import Sequence
from pathlib import Path

from .publish import publish
from .render import text
from .results import ClaimResult, RunInfo, readable
from .verdicts import EXIT_LOST, combined_status, ordered


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


def merge(reports: list[dict], lost: Sequence[Sequence[str]] = (),
          skipped: Sequence[Sequence[str]] = ()) -> tuple[list[ClaimResult], RunInfo, int]:
    """(results, run info, exit status) of several runs' report.json contents (checked with :func:`check_report`).
    ``lost``: (file, why) of the inputs that could not be read (exit status 2), ``skipped``: of those that are not
    reports of a version this one reads; both named in the info (a merged report's own are kept)."""
    infos = [RunInfo.from_json(rep.get("meta")) for rep in reports]
    gone: list[tuple[str, str]] = list(dict.fromkeys([x for i in infos for x in i.lost] + [(f, w) for f, w in lost]))
    passed: list[tuple[str, str]] = list(dict.fromkeys([x for i in infos for x in i.skipped]
                                                        + [(f, w) for f, w in skipped]))
    results = [ClaimResult.from_json(r) for rep in reports for r in rep.get("results", [])]
    models: list[str] = []
    left_out: list[tuple[str, str]] = []
    for i in infos:
        models += [m for m in i.models if m not in models]
        left_out += [x for x in i.left_out if x not in left_out]
    left_out += [x for f, why in gone if (x := (f"input {f}", f"lost: {why}; its verdicts are not in this report"))
                 not in left_out]
    left_out += [x for f, why in passed if (x := (f"input {f}", f"skipped: {why}")) not in left_out]
    first = infos[0] if infos else RunInfo()
    info = RunInfo(models=models, device=first.device, dtype=first.dtype, left_out=left_out,
                   command=" ; ".join(i.command for i in infos if i.command), merged_from=len(reports),
                   provenance=[p for i in infos for p in i.provenance], packages=first.packages,
                   when=max((i.when for i in infos), default=""), lost=gone, skipped=passed,
                   trend_note="the models of the merged runs in order")
    status = combined_status([int(rep.get("exit_status", 1)) for rep in reports], lost=bool(gone))
    return results, info, status


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
        wrong = check_report(rep)
        if wrong:
            print(f"warning: skipped {f}: {wrong}", file=sys.stderr)
            skipped.append((str(f), wrong))
            continue
        loaded.append(rep)
    if not loaded:
        print("error: no input is a readable report.json of this version; nothing to merge", file=sys.stderr)
        return EXIT_LOST
    results, info, status = merge(loaded, lost, skipped)
    out = publish(a.out, results, info, status, a.history)
    if out.history_file is not None:
        print(f"history: run appended to {out.history_file}")
    for f in out.reports:
        print(f"report: {f}")
    for line in text.terminal_lines(ordered(results, info.models), None if info.lost else status,
                                    str(a.out / "report.md")):
        print(line)
    if info.lost:
        print(f"exit status {EXIT_LOST}: {len(info.lost)} input(s) lost, their verdicts are not in the merged "
              "report: " + "; ".join(f"{f} ({why})" for f, why in info.lost))
    return status


if __name__ == "__main__":
    sys.exit(main())
