"""A verdict per claim x model, separate from the numbers, and the run's reports.

The claim's criterion decides holds vs broken; the snapshot decides whether the numbers changed, measured against
their noise (probes/drift.py: noise floors, bootstrap intervals, component stabilities):

    holds                    criterion held, every number within its noise floor of the recorded snapshot
    holds within noise       criterion held, some numbers moved beyond their floor, none significantly (effects
                             whose paired change on the same stimuli is not significant after Benjamini-Hochberg,
                             diagnostics, unstable components): reported, exit 0
    holds but changed        criterion held, an effect changed significantly (its paired test, probes/paired.py,
                             adjusted over the run) beyond its floor, or a stable component left its set (the cell
                             and the terminal give the headline effect, its change with the change's interval, and
                             what moved)
    holds without snapshot   criterion held, nothing recorded yet for this claim x model (record with --record)
    broken                   the criterion failed (an assertion of the claim); its numbers, compared with the
                             snapshot (never recorded), and its figure are in the reports
    precondition failed      the behaviour the claim dissects is absent (e.g. no IOI to patch): nothing to test
    known failure            the registry records that it does not hold for this model, and it still does not
    newly holds              a registry known failure now holds (remove it from the registry's known failures)
    error                    the claim could not be measured (load failure, bad stimulus, NaN, corrupt snapshot)
    skipped                  not run

Exit status of the run (``pytest_sessionfinish`` in probes/plugin.py): 0 every claim holds and nothing moved
significantly (known failures still failing as recorded); 1 some claim is broken, lost its precondition, errored or
newly holds, or a test outside claims/ failed; 6 every claim holds but an effect or a stable component changed
significantly, or has no snapshot yet; pytest's own 2-5 otherwise. A drift is not a test failure: pytest counts such
a claim as 'changed' or 'unrecorded' (pytest_report_teststatus in probes/plugin.py). Counts are of claims x models
(a per-layer claim: one per layer).
"""
from __future__ import annotations

import base64
import html
import json
import time
from collections import defaultdict
from pathlib import Path

from .artifacts import write_atomically
from .errors import PreconditionFailed
from . import drift_text
from .results import DRIFT, HARD, ORDER, SCHEMA, SHOWN, ClaimResult, Number, Verdict

HOLDS, NOISE, MOVED, UNRECORDED = Verdict.HOLDS, Verdict.NOISE, Verdict.MOVED, Verdict.UNRECORDED
BROKEN, PRECONDITION = Verdict.BROKEN, Verdict.PRECONDITION
KNOWN, NEWLY, ERROR, SKIPPED = Verdict.KNOWN, Verdict.NEWLY, Verdict.ERROR, Verdict.SKIPPED
EXIT_DRIFT = 6
REPORT_VERSION = SCHEMA  # report.json's version: the results' schema (probes/results.py)
EXIT_MEANING = {
    0: "every claim holds and nothing changed beyond its noise (known failures still fail as recorded)",
    1: "a claim is broken, lost its precondition, errored or newly holds (or a test outside claims/ failed)",
    4: "usage error: an option, a registry entry or a claim's marker is wrong (the fix is named above)",
    6: "every claim holds, but an effect or a stable component changed significantly, or has no snapshot yet",
}
COLOURS = {HOLDS: "#d9f2d9", NOISE: "#e8f5e0", PRECONDITION: "#f3d9c9", MOVED: "#fff1c2", UNRECORDED: "#fff1c2", BROKEN: "#f8c9c9", ERROR: "#f8c9c9",
           NEWLY: "#cfe2ff", KNOWN: "#eeeeee", SKIPPED: "#ffffff"}


def classify(when: str, outcome: str, excinfo, xfail_reason: str | None, strict_xpass: bool,
             settled: Verdict | None = None) -> Verdict:
    """The verdict of one test report (``when``: setup/call; ``excinfo``: the call's exception info or None;
    ``settled``: the snapshot comparison's verdict of a claim whose body passed)."""
    if when == "setup":
        return ERROR if outcome == "failed" else SKIPPED
    if xfail_reason is not None and outcome == "skipped":
        return KNOWN
    if strict_xpass:
        return NEWLY
    if outcome == "passed":
        return settled or HOLDS
    if outcome == "skipped":
        return SKIPPED
    exc = excinfo.value if excinfo is not None else None
    if isinstance(exc, PreconditionFailed):
        return PRECONDITION
    if isinstance(exc, AssertionError):
        return BROKEN
    return ERROR


def exit_status(pytest_status: int, results: list[ClaimResult], other_failures: int) -> int:
    """The run's exit status: pytest's, except that a run in which every claim holds (or fails as the registry
    records) but some numbers moved or have no snapshot exits 6. Drifts are not test failures (pytest counts them
    as 'moved' / 'unrecorded'), so such a run reaches here with pytest's 0."""
    if pytest_status != 0 or other_failures:
        return pytest_status
    verdicts = {r.verdict for r in results}
    if verdicts & HARD or not verdicts & DRIFT:
        return pytest_status
    return EXIT_DRIFT


def severity_key(rs: list[ClaimResult]) -> tuple:
    """Sort key of a group of results: worst verdict first, then within a verdict the largest severity, then the
    largest effect change."""
    worst = min(r.verdict.rank for r in rs)
    lv = [LEVEL_ORDER.index(r.level) for r in rs if r.level in LEVEL_ORDER]
    eff = [abs(r.drift.effect or 0.0) if r.drift is not None else 0.0 for r in rs]
    return worst, min(lv, default=len(LEVEL_ORDER)), -max(eff, default=0.0)


LEVEL_ORDER = ["large", "medium", "small", "unrecorded", "noise"]


def _g(x) -> str:
    """A number as a cell shows it: a count as an integer (``1440``), a large value without exponent (``1416`` for
    1415.98), others to 3 significant digits."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int) or (1000 <= abs(x) < 1e7):
        return f"{x:.0f}"
    return f"{x:.3g}"


def _ci(ci) -> str:
    return f" [{_g(ci[0])}, {_g(ci[1])}]" if ci else ""


def number_text(h: Number, was: bool = True) -> str:
    """One effect number: ``top_score 0.901 [0.896, 0.906]``, with ``was`` the recorded value, its interval and the
    change in percent of it: ``(was 0.902 [0.898, 0.906], -0.1%)``; where the change was tested on the same
    stimuli, its own 95% interval and adjusted p-value: ``(was 4.75 [4.46, 5.07]; change -3.1% [-3.4, -2.8],
    p_adj 1e-40)``."""
    out = f"{h.path} {_g(h.value)}{_ci(h.ci)}"
    if was and h.old is not None:
        change = f", {h.pct:+.1f}%" if h.pct else ""
        if h.pct and h.pct_ci is not None:  # the change's own interval, from the paired replicates
            change = (f"; change {h.pct:+.1f}% [{h.pct_ci[0]:+.1f}, {h.pct_ci[1]:+.1f}]"
                      + (f", p_adj {h.p_adj:.2g}" if h.p_adj is not None else ""))
        out += f" (was {_g(h.old)}{_ci(h.old_ci)}{change})"
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


def _largest_text(r: ClaimResult) -> str:
    """The effect number that moved most, when it is not the headline: ``largest move: top_heads[L3.H2].score 0.61
    [0.58, 0.64] (was 0.62 [0.6, 0.65], -1.9%)``."""
    return f"largest move: {number_text(r.largest)}" if r.largest is not None else ""


def _ids_text(r: ClaimResult) -> str:
    return drift_text.id_summary(r.drift) if r.drift is not None else ""


def _lead(r: ClaimResult) -> Number | None:
    """The number that says most about a per-layer result: its largest move, else its headline."""
    return r.largest or r.headline


def _moved_cell(rs: list[ClaimResult], of: int = 1) -> str:
    """The short phrase of moved results: the numbers that moved and the identity overlap, or for the layers of a
    per-layer claim (``of`` of them in all) the layer that moved most, by name, with its number:
    ``12/30 layers, most: L4 r_split 0.95 [0.93, 0.97] (was 0.97 [0.96, 0.98], -2.1%)``."""
    if len(rs) == 1 and rs[0].layer is None:
        r = rs[0]
        text = "; ".join(x for x in (_largest_text(r), _ids_text(r)) if x)
        if text or r.headline is not None:  # the headline (shown before this phrase) names the number and its change
            return text
        return drift_text.summary(r.drift) if r.drift is not None else "numbers moved"
    leads = [(r, _lead(r)) for r in rs if _lead(r) is not None]
    moved = [(r, h) for r, h in leads if h.pct is not None]
    if moved:
        r, h = max(moved, key=lambda x: abs(x[1].pct))
        return f"{len(rs)}/{of} layers, most: L{r.layer} {number_text(h)}"
    eff = [(r.drift.effect, r.layer) for r in rs if r.drift is not None and r.drift.effect is not None]
    worst = max(eff, key=lambda x: abs(x[0]), default=None)
    return f"{len(rs)}/{of} layers" + (f", max effect {worst[0]:+.1f}% (L{worst[1]})" if worst
                                       else ", effect within tolerance")


def _cell(results: list[ClaimResult]) -> str:
    """One claim x model cell: the verdict with the headline effect and its interval (``holds: mean_logit_diff 4.75
    [4.52, 4.98]``; a change or a candidate: the recorded value beside it, the number that moved most and the
    identity overlap), or for per-layer claims the count of each verdict, the layers that did not hold, the layer
    that moved most with its number, and (nothing moved) the layer with the largest headline."""
    if len(results) == 1 and results[0].layer is None:
        r = results[0]
        eff = effect_text(r)
        if r.verdict in (MOVED, NOISE):
            return f"{r.verdict}: " + "; ".join(x for x in (eff, _moved_cell([r])) if x)
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
            parts.append(f"{v} " + _moved_cell(by[v], len(results)))
        elif v in (HOLDS, KNOWN, SKIPPED, UNRECORDED):
            parts.append(f"{v} {n}")
        else:
            parts.append(f"{v} {n} (L" + ", L".join(str(r.layer) for r in by[v]) + ")")
    if not by.keys() & {MOVED, NOISE}:
        heads = [r for r in results if r.headline is not None and isinstance(r.headline.value, (int, float))]
        if heads:
            r = max(heads, key=lambda r: abs(r.headline.value))
            parts.append(f"largest: L{r.layer} {effect_text(r)}")
    return "; ".join(parts)


def ordered(results: list[ClaimResult], models: list[str] | None = None) -> list[ClaimResult]:
    """Results by claim id, then model (in the order given, e.g. --models'), then layer."""
    models = list(models or []) + [m for m in dict.fromkeys(r.model for r in results) if m not in (models or [])]
    return sorted(results, key=lambda r: (r.claim, models.index(r.model), -1 if r.layer is None else r.layer))


def table(results: list[ClaimResult]) -> tuple[list[str], list[list[str]]]:
    """(models, rows): one row per claim, [claim id, cell per model] (models in order of first appearance), sorted by
    the worst verdict of the row, then by severity within it (the largest effect change first)."""
    models = list(dict.fromkeys(r.model for r in results))
    grid: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        grid[r.claim][r.model].append(r)
    claims = sorted(grid, key=lambda c: severity_key([r for rs in grid[c].values() for r in rs]))
    rows = [[claim] + [_cell(grid[claim][m]) if grid[claim][m] else "-" for m in models] for claim in claims]
    return models, rows


def groups(results: list[ClaimResult]) -> list[list[ClaimResult]]:
    """The results grouped per claim x model (the layers of a per-layer claim together), in severity order."""
    g: dict[tuple, list] = defaultdict(list)
    for r in results:
        g[(r.claim, r.model)].append(r)
    return sorted(g.values(), key=severity_key)


def verdict_counts(results: list[ClaimResult]) -> str:
    """``verdicts (claims x models; a per-layer claim counts each layer): 3 holds, 1 broken``"""
    return ("verdicts (claims x models; a per-layer claim counts each layer): "
            + ", ".join(f"{n} {v}" for v, n in counts(results).items()))


def counts(results: list[ClaimResult]) -> dict[str, int]:
    c = defaultdict(int)
    for r in results:
        c[r.verdict] += 1
    return {v.value: c[v] for v in ORDER if c[v]}


def _label(r: ClaimResult) -> str:
    layer = "" if r.layer is None else f" L{r.layer}"
    return f"{r.claim}{layer} x {r.model}"


def _group_label(rs: list[ClaimResult]) -> str:
    return f"{rs[0].claim} x {rs[0].model}"


def terminal_lines(results: list[ClaimResult], status: int | None = None, report: str | None = None) -> list[str]:
    """The verdict table and one line per claim x model that moved (its severity, effect change, identity overlap
    and largest effect move), then the broken and errored ones. Every moved number is in the reports."""
    if not results:
        return []
    models, rows = table(results)
    widths = [max(len(x[i]) for x in [["claim"] + models] + rows) for i in range(len(models) + 1)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format("claim", *models), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*row) for row in rows]
    out.append(verdict_counts(results))
    drifted = [[r for r in rs if r.verdict in SHOWN] for rs in groups(results)]
    drifted = [rs for rs in drifted if rs]
    if drifted:
        out.append("what moved (significant first: an effect's paired change on the same stimuli is significant "
                   "after Benjamini-Hochberg and beyond its floor, or a stable component left its set; then large = "
                   ">= 20% of its own value or a quarter of a set, medium >= 5% or a component entered/left, small: "
                   "the rest; noise: moved beyond its float floor, not significantly):")
    for rs in drifted:
        if rs[0].verdict == UNRECORDED:
            n = f" ({len(rs)} layers)" if rs[0].layer is not None else ""
            out.append(f"  no snapshot  {_group_label(rs)}{n}: record with --record after reviewing the report")
            continue
        lv = min((r.level for r in rs), key=LEVEL_ORDER.index)
        cell = _moved_cell(rs, sum(r.claim == rs[0].claim and r.model == rs[0].model for r in results))
        head = effect_text(rs[0]) if len(rs) == 1 and rs[0].layer is None else ""
        out.append(f"  {lv:<6} {_group_label(rs)}: " + "; ".join(x for x in (head, cell) if x))
    for r in results:
        if r.verdict in HARD:
            eff = effect_text(r)
            out.append(f"{r.verdict}: {_label(r)}: {r.message}" + (f" [{eff}]" if eff else ""))
    if drifted and report:
        out.append(f"every moved number: {report}")
    if status is not None:
        out.append(f"exit status {status}: {EXIT_MEANING.get(status, 'see pytest exit codes')}")
    return out


def _md(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def markdown(results: list[ClaimResult], meta: dict, status: int) -> str:
    models, rows = table(results)
    out = [f"# Interpretability claims: {', '.join(models) or 'no model'}", "",
           f"{meta.get('when', '')} · device {meta.get('device')} · dtype {meta.get('dtype')} · "
           f"exit status **{status}**: {EXIT_MEANING.get(status, 'see pytest exit codes')}", "",
           verdict_counts(results), ""]
    for mid, why in meta.get("left_out", []):
        out.append(f"- left out {mid}: {why}")
    out += [f"- {line}" for line in meta.get("precision") or []]
    if meta.get("lock_diff"):
        out.append("- packages that differ from the CI lock (constraints/ci.txt): " + ", ".join(meta["lock_diff"]))
    out += ["", "| claim | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    out += ["| `" + row[0] + "` | " + " | ".join(_md(c) for c in row[1:]) + " |" for row in rows]
    drift = [r for r in results if r.verdict in SHOWN or (r.verdict in HARD and r.moved)]
    if drift:
        out += ["", "## Numbers that moved", ""]
        for r in sorted(drift, key=lambda r: severity_key([r])):
            head = f"{r.level}: {drift_text.summary(r.drift) if r.drift is not None else ''}" if r.verdict in (MOVED, NOISE) \
                else str(r.verdict)
            eff = effect_text(r)
            head += f"; {eff}" if eff else ""
            out += [f"**{_md(_label(r))}** ({_md(head)}; snapshot `{r.snapshot}`)", "", "```"]
            out += (r.moved or _unrecorded_lines(r)) + ["```", ""]
    resolved = [r for r in results if r.headline is not None and r.headline.resolves is not None]
    if resolved:
        out += ["", "## What each claim resolves on these stimuli", "",
                "The half-width of the headline's paired 95% change interval, in percent of its recorded value: a "
                "smaller change of it cannot be told from another draw of the stimuli here.", ""]
        out += [f"- {_md(_label(r))}: `{r.headline.path}` +-{r.headline.resolves:.2g}%" for r in resolved]
    hard = [r for r in results if r.verdict in HARD | {KNOWN}]
    if hard:
        out += ["", "## Broken, errors, newly holding and known failures", ""]
        out += [f"- **{r.verdict}** {_md(_label(r))}: {_md(r.message)}"
                + (f" ({_md(effect_text(r))})" if effect_text(r) else "") for r in hard]
    figs = [f for r in results for f in r.figures]
    if figs:
        out += ["", f"## Figures written ({len(set(figs))})", ""] + [f"- `{f}`" for f in dict.fromkeys(figs)]
    return "\n".join(out) + "\n"


CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #bbb;padding:4px 8px;vertical-align:top;font-size:14px}th{background:#f4f4f4}
.moved{background:#fff1c2;font-family:monospace;white-space:pre-wrap;font-size:12px;margin:2px 0}
.claim{margin-top:2em;border-top:2px solid #888}.crit{color:#444;font-size:14px}
.claim table{width:100%;table-layout:fixed}img{max-width:100%;display:block;margin-top:4px}.msg{font-family:monospace;font-size:12px;white-space:pre-wrap}"""


LEVEL_COLOURS = {"large": "#ffc98a", "medium": "#fff1c2", "small": "#fffbe3", "noise": "#e8f5e0"}


def _unrecorded_lines(r: ClaimResult) -> list[str]:
    """The numbers of a claim without snapshot, as they would be recorded (to review before --record)."""
    if r.verdict != UNRECORDED or not r.numbers:
        return []
    return json.dumps(r.numbers, indent=1, sort_keys=True).splitlines()


def _colour(rs: list[ClaimResult], worst: int) -> str:
    """A cell's background: its worst verdict's colour; numbers that moved shaded by their severity."""
    if ORDER[worst] == MOVED:
        lv = min((r.level for r in rs if r.level in LEVEL_COLOURS), key=LEVEL_ORDER.index, default="medium")
        return LEVEL_COLOURS[lv]
    return COLOURS[ORDER[worst]]


def _img(path: str) -> str:
    p = Path(path)
    if p.suffix != ".png" or not p.is_file():
        return f'<div><a href="{html.escape(str(p))}">{html.escape(p.name)}</a></div>'
    data = base64.b64encode(p.read_bytes()).decode()
    return f'<img alt="{html.escape(p.name)}" src="data:image/png;base64,{data}">'


def verdict_table_html(results: list[ClaimResult], meta: dict, status: int) -> list[str]:
    """The head of the HTML report: the document's start, the run's line and the verdict table (the picture
    README shows is this part, rendered: scripts/docs.py)."""
    models, rows = table(results)
    e = html.escape
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Interpretability claims report</title>",
           f"<style>{CSS}</style></head><body>",
           f"<h1>Interpretability claims: {e(', '.join(models) or 'no model')}</h1>",
           f"<p>{e(meta.get('when', ''))} · device {e(str(meta.get('device')))} · dtype {e(str(meta.get('dtype')))} · "
           f"exit status <b>{status}</b>: {e(EXIT_MEANING.get(status, 'see pytest exit codes'))}</p>",
           "<p>" + e(verdict_counts(results)) + "</p>"]
    out += [f"<p>left out {e(mid)}: {e(why)}</p>" for mid, why in meta.get("left_out", [])]
    out += [f"<p>{e(line)}</p>" for line in meta.get("precision") or []]
    out.append("<table id='verdicts'><tr><th>claim</th>" + "".join(f"<th>{e(m)}</th>" for m in models) + "</tr>")
    by_claim: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        by_claim[r.claim][r.model].append(r)
    for row in rows:
        cells = []
        for m, c in zip(models, row[1:]):
            rs = by_claim[row[0]].get(m, [])
            worst = min((r.verdict.rank for r in rs), default=len(ORDER) - 1)
            cells.append(f"<td style='background:{_colour(rs, worst)}'>{e(c)}</td>")
        out.append(f"<tr><td><a href='#{e(row[0])}'>{e(row[0])}</a></td>{''.join(cells)}</tr>")
    out.append("</table>")
    return out


def html_report(results: list[ClaimResult], meta: dict, status: int, trends: dict[str, str] | None = None,
                forests: dict[str, str] | None = None) -> str:
    """A self-contained HTML report: verdict table, then per claim its null and criterion and one column per model
    (baseline and candidates side by side) with the verdict, every moved number and the figures, embedded."""
    e = html.escape
    models = list(dict.fromkeys(r.model for r in results))
    out = verdict_table_html(results, meta, status)
    by_claim: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        by_claim[r.claim][r.model].append(r)
    for claim, per_model in by_claim.items():
        first = next(iter(per_model.values()))[0]
        out.append(f"<div class='claim' id='{e(claim)}'><h2>{e(claim)}</h2>")
        out.append(f"<p class='crit'>{e(first.doc)}<br><b>source</b>: {e(first.source)}<br>"
                   f"<b>null control</b>: {e(first.null)}<br><b>criterion</b>: {e(first.criterion)}</p>")
        if forests and claim in forests:
            out.append(f"<div class='forest'><b>headline effect with its 95% interval</b>"
                       f"<img alt='{e(claim)} forest' src='data:image/png;base64,{forests[claim]}'></div>")
        if trends and claim in trends:
            out.append(f"<div class='trend'><b>effect across runs</b> ({e(meta.get('trend_note', ''))})"
                       f"<img alt='{e(claim)} trend' src='data:image/png;base64,{trends[claim]}'></div>")
        out.append("<table><tr>" + "".join(f"<th>{e(m)}</th>" for m in models if per_model.get(m)) + "</tr><tr>")
        for m in models:
            if not per_model.get(m):
                continue
            rs = per_model[m]
            worst = min(r.verdict.rank for r in rs)
            parts = [f"<b>{e(_cell(rs))}</b>"]
            for r in rs:
                if r.verdict in HARD | {KNOWN}:
                    parts.append(f"<div class='msg'>{e(r.message)}</div>")
                if r.verdict in SHOWN or (r.verdict in HARD and r.moved):
                    where = "" if r.layer is None else f"L{r.layer}: "
                    summary = drift_text.summary(r.drift) if where and r.drift is not None else ""  # the cell has it otherwise
                    head = f"severity {r.level}{': ' + summary if summary else ''}\n" if r.verdict == MOVED else ""
                    parts.append(f"<div class='moved'>{e(where + head)}vs {e(r.snapshot)}\n"
                                 + e("\n".join(r.moved or _unrecorded_lines(r))) + "</div>")
            for f in dict.fromkeys(f for r in rs for f in r.figures):
                parts.append(_img(f))
            out.append(f"<td style='background:{_colour(rs, worst)}'>{''.join(parts)}</td>")
        out.append("</tr></table></div>")
    # once loaded, the page records how many of its figures decoded (read by tests/ in a headless browser)
    out.append("<script>window.addEventListener('load',function(){var i=Array.prototype.slice.call(document.images);"
               "document.body.setAttribute('data-figures',i.length);document.body.setAttribute('data-figures-loaded',"
               "i.filter(function(x){return x.complete&&x.naturalWidth>0;}).length);});</script>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_reports(folder: Path, results: list[ClaimResult], meta: dict, status: int,
                  trends: dict[str, str] | None = None, forests: dict[str, str] | None = None) -> list[Path]:
    """report.md, report.html and report.json in ``folder`` (each written to a temporary file of this process, then
    renamed).
    ``trends``: claim -> PNG (base64) of its effect across runs or candidates (probes/history.py), in the HTML."""
    folder.mkdir(parents=True, exist_ok=True)
    results = ordered(results, meta.get("models"))
    meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), **meta}
    files = {"report.md": markdown(results, meta, status),
             "report.html": html_report(results, meta, status, trends, forests),
             "report.json": json.dumps({"version": REPORT_VERSION, "meta": meta, "exit_status": status,
                                        "results": [r.to_json() for r in results]}, indent=1) + "\n"}
    out = []
    for name, text in files.items():
        write_atomically(folder / name, text)
        out.append(folder / name)
    return out
