"""A verdict per claim x model, separate from the numbers, and the run's reports.

The claim's criterion decides holds vs broken; the snapshot decides whether the numbers moved:

    holds                   criterion held, every number within tolerance of the recorded snapshot
    holds, numbers moved    criterion held, some numbers moved beyond tolerance (listed: old, new, change, tolerance)
    holds, no snapshot      criterion held, nothing recorded yet for this claim x model (record with --record)
    broken                  the criterion failed (an assertion of the claim)
    known failure           the registry records that it does not hold for this model, and it still does not
    newly holds             a registry known failure now holds (remove it from fixtures/models.toml)
    error                   the claim could not be measured (load failure, bad stimulus, NaN, corrupt snapshot, ...)
    skipped                 not run

Exit status of the run (``pytest_sessionfinish`` in conftest.py): 0 every claim holds with its numbers (known
failures still failing as recorded); 1 some claim is broken, errored or newly holds, or a test outside claims/ failed;
6 every claim holds but some numbers moved or have no snapshot yet; pytest's own 2-5 otherwise.
"""
from __future__ import annotations

import base64
import html
import json
import time
from collections import defaultdict
from pathlib import Path

HOLDS, MOVED, UNRECORDED = "holds", "holds, numbers moved", "holds, no snapshot"
BROKEN, KNOWN, NEWLY, ERROR, SKIPPED = "broken", "known failure", "newly holds", "error", "skipped"
ORDER = [BROKEN, ERROR, NEWLY, MOVED, UNRECORDED, KNOWN, HOLDS, SKIPPED]
DRIFT = {MOVED, UNRECORDED}
HARD = {BROKEN, ERROR, NEWLY}
EXIT_DRIFT = 6
EXIT_MEANING = {
    0: "every claim holds with its recorded numbers (known failures still fail as recorded)",
    1: "a claim is broken, errored or newly holds (or a test outside claims/ failed)",
    6: "every claim holds, but some numbers moved beyond tolerance or have no snapshot yet",
}
COLOURS = {HOLDS: "#d9f2d9", MOVED: "#fff1c2", UNRECORDED: "#fff1c2", BROKEN: "#f8c9c9", ERROR: "#f8c9c9",
           NEWLY: "#cfe2ff", KNOWN: "#eeeeee", SKIPPED: "#ffffff"}


class SnapshotDrift(Exception):
    """The claim's criterion held but its numbers differ from the recorded snapshot (or none is recorded).

    Not an AssertionError: a registry known failure (a strict xfail on AssertionError) must not count a drift as
    the expected failure of its criterion."""

    def __init__(self, message: str, lines: list[str], recorded: bool):
        super().__init__(message)
        self.lines, self.recorded = lines, recorded


def classify(when: str, outcome: str, excinfo, xfail_reason: str | None, strict_xpass: bool) -> str:
    """The verdict of one test report (``when``: setup/call; ``excinfo``: the call's exception info or None)."""
    if when == "setup":
        return ERROR if outcome == "failed" else SKIPPED
    if xfail_reason is not None and outcome == "skipped":
        return KNOWN
    if strict_xpass:
        return NEWLY
    if outcome == "passed":
        return HOLDS
    if outcome == "skipped":
        return SKIPPED
    exc = excinfo.value if excinfo is not None else None
    if isinstance(exc, SnapshotDrift):
        return MOVED if exc.recorded else UNRECORDED
    if isinstance(exc, AssertionError):
        return BROKEN
    return ERROR


def exit_status(pytest_status: int, results: list[dict], other_failures: int) -> int:
    """The run's exit status: pytest's, except that a run whose only failures are drifts exits 6."""
    if pytest_status != 1 or other_failures:
        return pytest_status
    verdicts = {r["verdict"] for r in results}
    if verdicts & HARD or not verdicts & DRIFT:
        return pytest_status
    return EXIT_DRIFT


def _cell(results: list[dict]) -> str:
    """One claim x model cell: the verdict, or for per-layer claims the count of each verdict and the layers
    that did not hold with their numbers."""
    if len(results) == 1 and results[0].get("layer") is None:
        return results[0]["verdict"]
    by = defaultdict(list)
    for r in results:
        by[r["verdict"]].append(r.get("layer"))
    parts = []
    for v in ORDER:
        if v in by:
            layers = "" if v in (HOLDS, KNOWN, SKIPPED) else " (L" + ", L".join(str(l) for l in sorted(by[v])) + ")"
            parts.append(f"{v} {len(by[v])}/{len(results)}{layers}")
    return "; ".join(parts)


def ordered(results: list[dict], models: list[str] | None = None) -> list[dict]:
    """Results by claim id, then model (in the order given, e.g. --models'), then layer."""
    models = list(models or []) + [m for m in dict.fromkeys(r["model"] for r in results) if m not in (models or [])]
    return sorted(results, key=lambda r: (r["claim"], models.index(r["model"]),
                                          -1 if r.get("layer") is None else r["layer"]))


def table(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    """(models, rows): one row per claim, [claim id, cell per model] (models in order of first appearance)."""
    models = list(dict.fromkeys(r["model"] for r in results))
    grid: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        grid[r["claim"]][r["model"]].append(r)
    rows = [[claim] + [_cell(grid[claim][m]) if grid[claim][m] else "-" for m in models] for claim in grid]
    return models, rows


def counts(results: list[dict]) -> dict[str, int]:
    c = defaultdict(int)
    for r in results:
        c[r["verdict"]] += 1
    return {v: c[v] for v in ORDER if c[v]}


def _label(r: dict) -> str:
    layer = "" if r.get("layer") is None else f" L{r['layer']}"
    return f"{r['claim']}{layer} x {r['model']}"


def terminal_lines(results: list[dict], status: int | None = None) -> list[str]:
    """The verdict table and every moved number, untruncated, for the terminal summary."""
    if not results:
        return []
    models, rows = table(results)
    widths = [max(len(x[i]) for x in [["claim"] + models] + rows) for i in range(len(models) + 1)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format("claim", *models), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*row) for row in rows]
    out.append("verdicts: " + ", ".join(f"{n} {v}" for v, n in counts(results).items()))
    for r in results:
        if r["verdict"] in DRIFT:
            out.append(f"{r['verdict']}: {_label(r)} (vs {r.get('snapshot')})")
            out += [f"    {ln}" for ln in r.get("moved", [])]
    for r in results:
        if r["verdict"] in HARD:
            out.append(f"{r['verdict']}: {_label(r)}: {r.get('message', '')}")
    if status is not None:
        out.append(f"exit status {status}: {EXIT_MEANING.get(status, 'see pytest exit codes')}")
    return out


def _md(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def markdown(results: list[dict], meta: dict, status: int) -> str:
    models, rows = table(results)
    out = [f"# Interpretability claims: {', '.join(models) or 'no model'}", "",
           f"{meta.get('when', '')} · device {meta.get('device')} · dtype {meta.get('dtype')} · "
           f"exit status **{status}**: {EXIT_MEANING.get(status, 'see pytest exit codes')}", "",
           "verdicts: " + ", ".join(f"{n} {v}" for v, n in counts(results).items()), ""]
    for mid, why in meta.get("left_out", []):
        out.append(f"- left out {mid}: {why}")
    out += ["", "| claim | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    out += ["| `" + row[0] + "` | " + " | ".join(_md(c) for c in row[1:]) + " |" for row in rows]
    drift = [r for r in results if r["verdict"] in DRIFT]
    if drift:
        out += ["", "## Numbers that moved", ""]
        for r in drift:
            out += [f"**{_md(_label(r))}** ({r['verdict']}; snapshot `{r.get('snapshot')}`)", "", "```"]
            out += r.get("moved", []) + ["```", ""]
    hard = [r for r in results if r["verdict"] in HARD | {KNOWN}]
    if hard:
        out += ["", "## Broken, errors, newly holding and known failures", ""]
        out += [f"- **{r['verdict']}** {_md(_label(r))}: {_md(r.get('message', ''))}" for r in hard]
    figs = [f for r in results for f in r.get("figures", [])]
    if figs:
        out += ["", f"## Figures written ({len(set(figs))})", ""] + [f"- `{f}`" for f in dict.fromkeys(figs)]
    return "\n".join(out) + "\n"


CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #bbb;padding:4px 8px;vertical-align:top;font-size:14px}th{background:#f4f4f4}
.moved{background:#fff1c2;font-family:monospace;white-space:pre-wrap;font-size:12px;margin:2px 0}
.claim{margin-top:2em;border-top:2px solid #888}.crit{color:#444;font-size:14px}
.claim table{width:100%;table-layout:fixed}img{max-width:100%;display:block;margin-top:4px}.msg{font-family:monospace;font-size:12px;white-space:pre-wrap}"""


def _img(path: str) -> str:
    p = Path(path)
    if p.suffix != ".png" or not p.is_file():
        return f'<div><a href="{html.escape(str(p))}">{html.escape(p.name)}</a></div>'
    data = base64.b64encode(p.read_bytes()).decode()
    return f'<img alt="{html.escape(p.name)}" src="data:image/png;base64,{data}">'


def html_report(results: list[dict], meta: dict, status: int) -> str:
    """A self-contained HTML report: verdict table, then per claim its null and criterion and one column per model
    (baseline and candidates side by side) with the verdict, every moved number and the figures, embedded."""
    models, rows = table(results)
    e = html.escape
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Interpretability claims report</title>",
           f"<style>{CSS}</style></head><body>",
           f"<h1>Interpretability claims: {e(', '.join(models) or 'no model')}</h1>",
           f"<p>{e(meta.get('when', ''))} · device {e(str(meta.get('device')))} · dtype {e(str(meta.get('dtype')))} · "
           f"exit status <b>{status}</b>: {e(EXIT_MEANING.get(status, 'see pytest exit codes'))}</p>",
           "<p>verdicts: " + e(", ".join(f"{n} {v}" for v, n in counts(results).items())) + "</p>"]
    out += [f"<p>left out {e(mid)}: {e(why)}</p>" for mid, why in meta.get("left_out", [])]
    out.append("<table id='verdicts'><tr><th>claim</th>" + "".join(f"<th>{e(m)}</th>" for m in models) + "</tr>")
    by_claim: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        by_claim[r["claim"]][r["model"]].append(r)
    for row in rows:
        cells = []
        for m, c in zip(models, row[1:]):
            rs = by_claim[row[0]].get(m, [])
            worst = min((ORDER.index(r["verdict"]) for r in rs), default=len(ORDER) - 1)
            cells.append(f"<td style='background:{COLOURS[ORDER[worst]]}'>{e(c)}</td>")
        out.append(f"<tr><td><a href='#{e(row[0])}'>{e(row[0])}</a></td>{''.join(cells)}</tr>")
    out.append("</table>")
    for claim, per_model in by_claim.items():
        first = next(iter(per_model.values()))[0]
        out.append(f"<div class='claim' id='{e(claim)}'><h2>{e(claim)}</h2>")
        out.append(f"<p class='crit'>{e(first.get('doc', ''))}<br><b>source</b>: {e(first.get('source', ''))}<br>"
                   f"<b>null control</b>: {e(first.get('null', ''))}<br><b>criterion</b>: "
                   f"{e(first.get('criterion', ''))}</p>")
        out.append("<table><tr>" + "".join(f"<th>{e(m)}</th>" for m in models if per_model.get(m)) + "</tr><tr>")
        for m in models:
            if not per_model.get(m):
                continue
            rs = per_model[m]
            worst = min(ORDER.index(r["verdict"]) for r in rs)
            parts = [f"<b>{e(_cell(rs))}</b>"]
            for r in rs:
                if r["verdict"] in DRIFT:
                    where = "" if r.get("layer") is None else f"L{r['layer']}: "
                    parts.append(f"<div class='moved'>{e(where)}vs {e(str(r.get('snapshot')))}\n"
                                 + e("\n".join(r.get("moved", []))) + "</div>")
                elif r["verdict"] in HARD | {KNOWN}:
                    parts.append(f"<div class='msg'>{e(r.get('message', ''))}</div>")
            for f in dict.fromkeys(f for r in rs for f in r.get("figures", [])):
                parts.append(_img(f))
            out.append(f"<td style='background:{COLOURS[ORDER[worst]]}'>{''.join(parts)}</td>")
        out.append("</tr></table></div>")
    # once loaded, the page records how many of its figures decoded (read by tests/ in a headless browser)
    out.append("<script>window.addEventListener('load',function(){var i=Array.prototype.slice.call(document.images);"
               "document.body.setAttribute('data-figures',i.length);document.body.setAttribute('data-figures-loaded',"
               "i.filter(function(x){return x.complete&&x.naturalWidth>0;}).length);});</script>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_reports(folder: Path, results: list[dict], meta: dict, status: int) -> list[Path]:
    """report.md, report.html and report.json in ``folder`` (each written to a temporary file, then renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    results = ordered(results, meta.get("models"))
    meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), **meta}
    files = {"report.md": markdown(results, meta, status), "report.html": html_report(results, meta, status),
             "report.json": json.dumps({"meta": meta, "exit_status": status, "results": results}, indent=1) + "\n"}
    out = []
    for name, text in files.items():
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(folder / name)
        out.append(folder / name)
    return out
