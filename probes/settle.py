"""Settle, the third stage of a run: a claim's measurement against its snapshot, and the claim's frozen result.

:func:`settle` compares the numbers a claim handed to ``claim_snapshot`` with its recorded snapshot (or records
them, with --record) and gives a :class:`Settled`: the verdict of a claim whose criterion held, the typed drift
(probes/compare.py) and the cell's numbers. :func:`result` makes the test's outcome and that into the frozen
:class:`probes.results.ClaimResult` that crosses from an xdist worker to the controller.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import compare
from .drift import Drift, Number
from .log import log
from .registry import ModelSpec
from .results import ClaimResult, Measurement, Verdict
from .selection import Options
from .snapshot import SnapshotStore, check_snapshot
from .verdicts import classify


@dataclass(frozen=True)
class Settled:
    """A measurement settled against its snapshot: the verdict it gives a claim whose criterion held, the drift,
    and the cell's numbers."""
    verdict: Verdict | None = None
    drift: Drift | None = None
    headline: Number | None = None
    largest: Number | None = None
    against: str = ""  # a snapshot of another dtype, or half precision without measured floors: how it was judged


def snapshot_path(store: SnapshotStore, opt: Options, module: str, test: str, model: str,
                  layer: int | None) -> Path:
    """The snapshot a claim x model is compared with: ``model`` is the registry model's id (a candidate uses its
    registry model's). A bf16/fp16 run uses its own (``[<model>-bfloat16]``) when one is recorded, and records
    there; else it is compared with the float32 one."""
    suffix = "" if layer is None else f"-L{layer}"
    if opt.half:
        own = store.path(module, f"{test}[{model}-{opt.dtype_name}{suffix}]")
        if opt.record or own.exists():
            return own
    return store.path(module, f"{test}[{model}{suffix}]")


def tolerance(opt: Options, old: dict, m: Measurement) -> tuple[float, float, str]:
    """The declared tolerance that judges this run against ``old`` (floors come with it: compare.noise_for), and
    how it was judged when the run's dtype is not the snapshot's ('' when it is, with measured floors).

    With floors measured for the run's dtype (the snapshot's own, or the half-precision floors that
    scripts/calibrate.py --dtype measured against float32 numbers), the claim's float32 tolerance and those
    floors judge it. Without them a half-precision run falls back to the claim's declared half-precision
    tolerance (``half=``, default HALF_TOL), and says so."""
    dtype, rec = opt.dtype_name, compare.recorded_dtype(old)
    measured = compare.noise_for(old, dtype)[1]
    if not opt.half or measured:
        return m.rel, m.abs, (f"{rec} snapshot, {dtype} floors" if rec != dtype else "")
    rel, abs_ = max(m.rel, m.half[0]), max(m.abs, m.half[1])
    return rel, abs_, f"{rec} snapshot, no {dtype} floors measured: declared tolerance {rel:g} rel / {abs_:g} abs"


def settle(store: SnapshotStore, opt: Options, path: Path, shown: str, m: Measurement,
           record_ok: bool = True) -> Settled:
    """Compare the claim's numbers with its snapshot at ``path`` (``shown``: as the user reads it): holds, holds
    within noise, holds but changed, or holds without snapshot; or, with --record, write them (the test body,
    criterion and figure included, has passed). A drift is not a test failure: the claim holds; the verdict, the
    exit status (6, for a significant change) and the reports say that its numbers moved. ``record_ok=False`` (a
    broken claim): compare only."""
    new = m.recorded()
    if opt.record and record_ok:
        changed = store.record(path, new, m.rel, m.abs)
        log(f"recorded {shown}" if changed else f"{shown} unchanged (within tolerance)")
        return Settled(Verdict.HOLDS, None, *compare.effect_numbers(new, m.roles))
    old = store.read(path)
    if old is None:
        return Settled(Verdict.UNRECORDED, None, *compare.effect_numbers(new, m.roles))
    check_snapshot(old, new, shown)
    rel, abs_, against = tolerance(opt, old, m)
    drift = compare.diff(old, new, rel, abs_, m.roles, opt.significance, dtype=opt.dtype_name)
    verdict = Verdict.HOLDS if not drift.moved else Verdict.MOVED if drift.significant else Verdict.NOISE
    return Settled(verdict, drift, *compare.effect_numbers(new, m.roles, old, drift), against=against)


def _message(verdict: Verdict, rep, exc, spec: ModelSpec) -> str:
    """Why, in one line: the exception of a broken / errored claim, the registry's reason of a known failure."""
    if verdict in (Verdict.BROKEN, Verdict.PRECONDITION, Verdict.ERROR):
        return (exc.exconly() if exc is not None else str(rep.longrepr)[-600:]).split("\n")[0]
    if verdict == Verdict.KNOWN:
        return rep.wasxfail
    if verdict == Verdict.NEWLY:
        return (f"holds now; remove it from the registry's known_failures "
                f"({os.path.basename(spec.origin) if spec.origin else 'the registry'})")
    return ""


def result(item, rep, call, settled: Settled | None, measurement: Measurement | None, *, spec: ModelSpec,
           model: str, snapshot: str, figures: tuple[str, ...], setup_s: float) -> ClaimResult:
    """The frozen result of one claim x model report (setup that failed, or call). ``model``: its test id (with
    the dtype), ``snapshot`` and ``figures``: paths as the user reads them."""
    exc = call.excinfo
    mark = item.get_closest_marker("claim")
    in_call = rep.when == "call"
    verdict = classify(rep.when, rep.outcome, exc, getattr(rep, "wasxfail", None), in_call and rep.failed and
                       exc is None, settled.verdict if rep.passed and settled is not None else None)
    s = settled or Settled()
    numbers = measurement.numbers if measurement is not None and in_call else None
    if numbers is not None and "_replicates" in numbers:  # kept in the snapshot, not in every report
        numbers = {k: v for k, v in numbers.items() if k != "_replicates"}
    return ClaimResult(
        claim=mark.kwargs.get("id"), model=model, verdict=verdict, baseline=spec.baseline,
        layer=item.callspec.params.get("layer"), message=_message(verdict, rep, exc, spec)[:2000],
        drift=s.drift if in_call else None, headline=s.headline, largest=s.largest, numbers=numbers,
        roles=measurement.roles if measurement is not None and numbers is not None else None, snapshot=snapshot,
        against=s.against if in_call else "", figures=figures, source=mark.kwargs.get("source", ""),
        null=mark.kwargs.get("null", ""), criterion=mark.kwargs.get("criterion", ""),
        doc=(item.obj.__doc__ or "").strip().split("\n\n")[0], nodeid=item.nodeid,
        duration=round(rep.duration + (setup_s if in_call else 0.0), 2))
