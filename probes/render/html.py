"""The run's report as one self-contained HTML page (figures embedded)."""
from __future__ import annotations

import base64
import html
from collections import defaultdict
from pathlib import Path

from .. import drift_text
from ..results import HARD, ORDER, SHOWN, ClaimResult, RunInfo, Verdict
from ..verdicts import EXIT_MEANING, LEVEL_ORDER
from .cells import cell, moved_lines, table, verdict_counts
from .colours import CELL, LEVEL

MOVED, KNOWN = Verdict.MOVED, Verdict.KNOWN

CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #bbb;padding:4px 8px;vertical-align:top;font-size:14px}th{background:#f4f4f4}
.moved{background:#fff1c2;font-family:monospace;white-space:pre-wrap;font-size:12px;margin:2px 0}
.claim{margin-top:2em;border-top:2px solid #888}.crit{color:#444;font-size:14px}
.claim table{width:100%;table-layout:fixed}img{max-width:100%;display:block;margin-top:4px}.msg{font-family:monospace;font-size:12px;white-space:pre-wrap}"""


def colour(rs: list[ClaimResult], worst: int) -> str:
    """A cell's background: its worst verdict's colour; numbers that moved shaded by their severity."""
    if ORDER[worst] == MOVED:
        lv = min((r.level for r in rs if r.level in LEVEL), key=LEVEL_ORDER.index, default="medium")
        return LEVEL[lv]
    return CELL[ORDER[worst]]


def img(path: str) -> str:
    p = Path(path)
    if p.suffix != ".png" or not p.is_file():
        return f'<div><a href="{html.escape(str(p))}">{html.escape(p.name)}</a></div>'
    data = base64.b64encode(p.read_bytes()).decode()
    return f'<img alt="{html.escape(p.name)}" src="data:image/png;base64,{data}">'


def verdict_table_html(results: list[ClaimResult], info: RunInfo, status: int) -> list[str]:
    """The head of the HTML report: the document's start, the run's line and the verdict table (the picture
    README shows is this part, rendered: scripts/docs.py)."""
    models, rows = table(results)
    e = html.escape
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Interpretability claims report</title>",
           f"<style>{CSS}</style></head><body>",
           f"<h1>Interpretability claims: {e(', '.join(models) or 'no model')}</h1>",
           f"<p>{e(info.when)} · device {e(str(info.device))} · dtype {e(str(info.dtype))} · "
           f"exit status <b>{status}</b>: {e(EXIT_MEANING.get(status, 'see pytest exit codes'))}</p>",
           "<p>" + e(verdict_counts(results)) + "</p>"]
    out += [f"<p>left out {e(mid)}: {e(why)}</p>" for mid, why in info.left_out]
    out += [f"<p>{e(line)}</p>" for line in info.precision]
    out.append("<table id='verdicts'><tr><th>claim</th>" + "".join(f"<th>{e(m)}</th>" for m in models) + "</tr>")
    by_claim: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        by_claim[r.claim][r.model].append(r)
    for row in rows:
        cells = []
        for m, c in zip(models, row[1:]):
            rs = by_claim[row[0]].get(m, [])
            worst = min((r.verdict.rank for r in rs), default=len(ORDER) - 1)
            cells.append(f"<td style='background:{colour(rs, worst)}'>{e(c)}</td>")
        out.append(f"<tr><td><a href='#{e(row[0])}'>{e(row[0])}</a></td>{''.join(cells)}</tr>")
    out.append("</table>")
    return out


def _model_cell(rs: list[ClaimResult]) -> str:
    """One model's column of a claim's section: the verdict cell, why it did not hold, every moved number, the
    figures (embedded)."""
    e = html.escape
    parts = [f"<b>{e(cell(rs))}</b>"]
    for r in rs:
        if r.verdict in HARD | {KNOWN}:
            parts.append(f"<div class='msg'>{e(r.message)}</div>")
        if r.verdict in SHOWN or (r.verdict in HARD and bool(moved_lines(r))):
            where = "" if r.layer is None else f"L{r.layer}: "
            summary = drift_text.summary(r.drift) if where and r.drift is not None else ""  # else the cell has it
            head = f"severity {r.level}{': ' + summary if summary else ''}\n" if r.verdict == MOVED else ""
            parts.append(f"<div class='moved'>{e(where + head)}vs {e(r.snapshot)}\n"
                         + e("\n".join(moved_lines(r))) + "</div>")
    parts += [img(f) for f in dict.fromkeys(f for r in rs for f in r.figures)]
    return f"<td style='background:{colour(rs, min(r.verdict.rank for r in rs))}'>{''.join(parts)}</td>"


def _claim_section(claim: str, per_model: dict[str, list[ClaimResult]], models: list[str], info: RunInfo,
                   trends: dict[str, str], forests: dict[str, str]) -> list[str]:
    """A claim's section: its null and criterion, its forest and trend plots, one column per model."""
    e = html.escape
    first = next(iter(per_model.values()))[0]
    out = [f"<div class='claim' id='{e(claim)}'><h2>{e(claim)}</h2>",
           f"<p class='crit'>{e(first.doc)}<br><b>source</b>: {e(first.source)}<br>"
           f"<b>null control</b>: {e(first.null)}<br><b>criterion</b>: {e(first.criterion)}</p>"]
    if claim in forests:
        out.append(f"<div class='forest'><b>headline effect with its 95% interval</b>"
                   f"<img alt='{e(claim)} forest' src='data:image/png;base64,{forests[claim]}'></div>")
    if claim in trends:
        out.append(f"<div class='trend'><b>effect across runs</b> ({e(info.trend_note)})"
                   f"<img alt='{e(claim)} trend' src='data:image/png;base64,{trends[claim]}'></div>")
    shown = [m for m in models if per_model.get(m)]
    out.append("<table><tr>" + "".join(f"<th>{e(m)}</th>" for m in shown) + "</tr><tr>")
    out += [_model_cell(per_model[m]) for m in shown]
    out.append("</tr></table></div>")
    return out


def html_report(results: list[ClaimResult], info: RunInfo, status: int, trends: dict[str, str] | None = None,
                forests: dict[str, str] | None = None) -> str:
    """A self-contained HTML report: verdict table, then per claim its null and criterion and one column per model
    (baseline and candidates side by side) with the verdict, every moved number and the figures, embedded."""
    models = list(dict.fromkeys(r.model for r in results))
    out = verdict_table_html(results, info, status)
    by_claim: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        by_claim[r.claim][r.model].append(r)
    for claim, per_model in by_claim.items():
        out += _claim_section(claim, per_model, models, info, trends or {}, forests or {})
    # once loaded, the page records how many of its figures decoded (read by tests/ in a headless browser)
    out.append("<script>window.addEventListener('load',function(){var i=Array.prototype.slice.call(document.images);"
               "document.body.setAttribute('data-figures',i.length);document.body.setAttribute('data-figures-loaded',"
               "i.filter(function(x){return x.complete&&x.naturalWidth>0;}).length);});</script>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
