"""The run's reports in text: the terminal's section and report.md."""
from __future__ import annotations

from .. import drift_text
from ..results import HARD, SHOWN, ClaimResult, RunInfo, Verdict
from ..verdicts import EXIT_MEANING, LEVEL_ORDER, groups, severity_key
from ..checks import records_nothing_lines
from .cells import (effect_text, group_label, label, moved_cell, moved_lines, precision_lines, table,
                    verdict_counts)

MOVED, NOISE, UNRECORDED, KNOWN = Verdict.MOVED, Verdict.NOISE, Verdict.UNRECORDED, Verdict.KNOWN


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
            out.append(f"  no snapshot  {group_label(rs)}{n}: record with --record after reviewing the report")
            continue
        lv = min((r.level or 'noise' for r in rs), key=LEVEL_ORDER.index)
        cell = moved_cell(rs, sum(r.claim == rs[0].claim and r.model == rs[0].model for r in results))
        head = effect_text(rs[0]) if len(rs) == 1 and rs[0].layer is None else ""
        out.append(f"  {lv:<6} {group_label(rs)}: " + "; ".join(x for x in (head, cell) if x))
    for r in results:
        if r.verdict in HARD:
            eff = effect_text(r)
            out.append(f"{r.verdict}: {label(r)}: {r.message}" + (f" [{eff}]" if eff else ""))
    if drifted and report:
        out.append(f"every moved number: {report}")
    if status is not None:
        out.append(f"exit status {status}: {EXIT_MEANING.get(status, 'see pytest exit codes')}")
    return out


def md(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def markdown(results: list[ClaimResult], info: RunInfo, status: int) -> str:
    models, rows = table(results)
    out = [f"# Interpretability claims: {', '.join(models) or 'no model'}", "",
           f"{info.when} · device {info.device} · dtype {info.dtype} · "
           f"exit status **{status}**: {EXIT_MEANING.get(status, 'see pytest exit codes')}", "",
           verdict_counts(results), ""]
    for mid, why in info.left_out:
        out.append(f"- left out {mid}: {why}")
    out += [f"- {line}" for line in info.precision]
    if info.lock_diff:
        out.append("- packages that differ from the CI lock (constraints/ci.txt): " + ", ".join(info.lock_diff))
    out += ["", "| claim | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    out += ["| `" + row[0] + "` | " + " | ".join(md(c) for c in row[1:]) + " |" for row in rows]
    drift = [r for r in results if r.verdict in SHOWN or (r.verdict in HARD and bool(moved_lines(r)))]
    if drift:
        out += ["", "## Numbers that moved", ""]
        for r in sorted(drift, key=lambda r: severity_key([r])):
            head = f"{r.level}: {drift_text.summary(r.drift) if r.drift is not None else ''}" if r.verdict in (MOVED, NOISE) \
                else str(r.verdict)
            eff = effect_text(r)
            head += f"; {eff}" if eff else ""
            out += [f"**{md(label(r))}** ({md(head)}; snapshot `{r.snapshot}`)", "", "```"]
            out += (moved_lines(r)) + ["```", ""]
    resolved = [r for r in results if r.headline is not None and r.headline.resolves is not None]
    if resolved:
        out += ["", "## What each claim resolves on these stimuli", "",
                "The half-width of the headline's paired 95% change interval, in percent of its recorded value: a "
                "smaller change of it cannot be told from another draw of the stimuli here.", ""]
        out += [f"- {md(label(r))}: `{h.path}` +-{h.resolves:.2g}%" for r in resolved if (h := r.headline)]
    hard = [r for r in results if r.verdict in HARD | {KNOWN}]
    if hard:
        out += ["", "## Broken, errors, newly holding and known failures", ""]
        out += [f"- **{r.verdict}** {md(label(r))}: {md(r.message)}"
                + (f" ({md(effect_text(r))})" if effect_text(r) else "") for r in hard]
    figs = [f for r in results for f in r.figures]
    if figs:
        out += ["", f"## Figures written ({len(set(figs))})", ""] + [f"- `{f}`" for f in dict.fromkeys(figs)]
    return "\n".join(out) + "\n"


def summary_lines(results: list[ClaimResult], status: int | None, opt, models: list[str],
                  left_out: list[tuple[str, str]], artifacts: str, reports: list[str]) -> list[str]:
    """The terminal's section of a run: its models, what was left out, claims that recorded nothing, how a
    half-precision run was judged, the verdict table and what moved, the figures and the reports."""
    out = [f"models: {', '.join(models) or '(none)'}; device {opt.device}, dtype {opt.dtype}"]
    out += [f"left out {mid}: {why}" for mid, why in left_out]
    out += records_nothing_lines(results)  # a claim that held without numbers: never silent
    if opt.half:
        out += precision_lines(results, opt.dtype_name)
    md = next((f for f in reports if f.endswith("report.md")), None)
    out += terminal_lines(results, status, md)
    figs = list(dict.fromkeys(f for r in results for f in r.figures))
    if results:
        out.append(f"figures written: {len(figs)} in {artifacts}/<model>/" if figs else "figures written: none")
    if len(figs) <= 40:
        out += [f"  {f}" for f in figs]
    out += [f"report: {f}" for f in reports]
    return out
