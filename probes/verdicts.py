"""A verdict per claim x model, separate from the numbers, and the run's exit status (judging only: probes/render/
presents them).

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

from collections import defaultdict

from .errors import PreconditionFailed
from .results import DRIFT, HARD, ORDER, ClaimResult, Verdict

HOLDS, NOISE, MOVED, UNRECORDED = Verdict.HOLDS, Verdict.NOISE, Verdict.MOVED, Verdict.UNRECORDED
BROKEN, PRECONDITION = Verdict.BROKEN, Verdict.PRECONDITION
KNOWN, NEWLY, ERROR, SKIPPED = Verdict.KNOWN, Verdict.NEWLY, Verdict.ERROR, Verdict.SKIPPED
EXIT_DRIFT = 6
EXIT_MEANING = {
    0: "every claim holds and nothing changed beyond its noise (known failures still fail as recorded)",
    1: "a claim is broken, lost its precondition, errored or newly holds (or a test outside claims/ failed)",
    4: "usage error: an option, a registry entry or a claim's marker is wrong (the fix is named above)",
    6: "every claim holds, but an effect or a stable component changed significantly, or has no snapshot yet",
}


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


EXIT_LOST = 2  # probes.merge: an input could not be merged (or no input could be)


def combined_status(statuses: list[int], lost: bool = False) -> int:
    """The exit status of several runs merged into one report (probes.merge): a run's hard status (1, 2-5) first,
    else 6 if any run's numbers moved, else 0; ``lost`` (an input could not be read): 2."""
    if lost:
        return EXIT_LOST
    hard = [s for s in statuses if s not in (0, EXIT_DRIFT)]
    if hard:
        return hard[0]
    return EXIT_DRIFT if EXIT_DRIFT in statuses else 0


def ordered(results: list[ClaimResult], models: list[str] | None = None) -> list[ClaimResult]:
    """Results by claim id, then model (in the order given, e.g. --models'), then layer."""
    models = list(models or []) + [m for m in dict.fromkeys(r.model for r in results) if m not in (models or [])]
    return sorted(results, key=lambda r: (r.claim, models.index(r.model), -1 if r.layer is None else r.layer))


def groups(results: list[ClaimResult]) -> list[list[ClaimResult]]:
    """The results grouped per claim x model (the layers of a per-layer claim together), in severity order."""
    g: dict[tuple, list] = defaultdict(list)
    for r in results:
        g[(r.claim, r.model)].append(r)
    return sorted(g.values(), key=severity_key)


def counts(results: list[ClaimResult]) -> dict[str, int]:
    c: dict[Verdict, int] = defaultdict(int)
    for r in results:
        c[r.verdict] += 1
    return {v.value: c[v] for v in ORDER if c[v]}
