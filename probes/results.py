"""What a claim x model's run leaves behind, typed: its :class:`Verdict`, its :class:`ClaimResult` and the run's :class:`RunInfo`.

The suite's data flow one way: a claim hands its numbers to ``claim_snapshot`` (a frozen measurement, probes/
plugin.py), comparison with its snapshot yields a typed :class:`probes.drift.Drift`, and the run makes a frozen
:class:`ClaimResult` of the test's outcome, the drift and the cell's numbers (:class:`Number`). That result is
what crosses from an xdist worker to the controller, and what ``report.json``, the history and ``probes.merge``
hold, through one :meth:`ClaimResult.to_json` / :meth:`ClaimResult.from_json` with a schema version
(:data:`SCHEMA`). The renderers (probes/render/) read its attributes, never keys.

Schema 3 (this version) adds to schema 2 (``report.json`` ``"version": 2``): the drift's moves without their text
(the renderers write it), ``largest`` (the effect number that moved most), the headline's change in percent, and
``schema`` on every result. Version 2 reports and history lines are read (their drift rebuilt from its moves);
version 1 ones are named and skipped (:func:`readable`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from enum import Enum
from typing import Any

from . import drift_text, paired
from .drift import Drift, Number

SCHEMA = 3
READS = (2, 3)  # report.json / history versions this one reads


class Verdict(str, Enum):
    """A claim x model's verdict (probes/verdicts.py says what each means). A ``str``: it is written to JSON, and
    compared with it, as its text."""
    BROKEN = "broken"
    PRECONDITION = "precondition failed"
    ERROR = "error"
    NEWLY = "newly holds"
    MOVED = "holds but changed"
    UNRECORDED = "holds without snapshot"
    NOISE = "holds within noise"
    KNOWN = "known failure"
    HOLDS = "holds"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value

    @property
    def rank(self) -> int:
        """Worst first: broken 0 ... skipped 9 (the order of rows and of a cell's verdicts)."""
        return ORDER.index(self)


ORDER = list(Verdict)                                                     # worst first
DRIFT = frozenset({Verdict.MOVED, Verdict.UNRECORDED})                    # exit 6
SHOWN = frozenset({Verdict.MOVED, Verdict.UNRECORDED, Verdict.NOISE})     # listed under "what moved"
HARD = frozenset({Verdict.BROKEN, Verdict.PRECONDITION, Verdict.ERROR, Verdict.NEWLY})


def verdict(text: str) -> Verdict:
    """A verdict from its text (reports and history lines); an unknown text is an error naming the known ones."""
    try:
        return Verdict(text)
    except ValueError:
        raise ValueError(f"verdict {text!r} is not one of: {', '.join(v.value for v in Verdict)}") from None


@dataclass(frozen=True)
class ClaimResult:
    """One claim x model (x layer) of a run, as every report reads it."""
    claim: str
    model: str
    verdict: Verdict
    baseline: str | None = None      # a candidate's registry id
    layer: int | None = None         # a per-layer claim's layer
    message: str = ""                # broken / error / precondition / known failure / newly holds: why, one line
    drift: Drift | None = None       # against the recorded snapshot (None: not compared)
    headline: Number | None = None   # the claim's headline effect (probes/compare.py: effect_numbers)
    largest: Number | None = None    # the effect number that moved most, when it is not the headline
    numbers: dict | None = None      # every number of this run (plain JSON), as recorded
    roles: dict | None = None        # the role table: path pattern -> effect / identity (the rest: diagnostics)
    snapshot: str = ""               # the snapshot file it was compared with (as the user reads the path)
    against: str = ""                # a snapshot of another dtype (or no measured half floors): how it was judged
    figures: tuple[str, ...] = ()
    source: str = ""
    null: str = ""
    criterion: str = ""
    doc: str = ""
    nodeid: str = ""
    duration: float = 0.0            # seconds, the claim's setup (its fixtures) included

    @property
    def level(self) -> str | None:
        """A drifted result's severity: large / medium / small, noise when nothing moved significantly,
        unrecorded; None for the others."""
        if self.verdict == Verdict.UNRECORDED:
            return "unrecorded"
        if self.verdict == Verdict.NOISE:
            return "noise"
        return self.drift.level if self.verdict == Verdict.MOVED and self.drift is not None else None

    def to_json(self) -> dict:
        out: dict[str, Any] = {"schema": SCHEMA}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (Number, Drift)):
                v = v.to_json()
            elif isinstance(v, Verdict):
                v = v.value
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        out["moved"] = drift_text.lines(self.drift) if self.drift is not None else []  # derived, for readers of
        #                                                                             report.json: a move per line
        return out

    @classmethod
    def from_json(cls, d: dict) -> "ClaimResult":
        """A result of schema 3, or of schema 2 (report.json version 2 and its history lines)."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        kw["verdict"] = verdict(d["verdict"])
        kw["drift"] = Drift.from_json(d["drift"]) if d.get("drift") else None
        kw["headline"] = Number.from_json(d.get("headline"))
        kw["largest"] = Number.from_json(d.get("largest"))
        kw["figures"] = tuple(d.get("figures") or ())
        kw["message"] = d.get("message") or ""
        kw["duration"] = float(d.get("duration") or 0.0)
        return cls(**kw)


@dataclass(frozen=True)
class Measurement:
    """What a claim handed to ``claim_snapshot``: its numbers as plain JSON (finite; with their ``_intervals`` and
    ``_stability``), the role table parsed once from its ``effect=`` / ``identity=`` paths, its tolerance (and its
    tolerance against float32 in half precision), and where the numbers were measured (``_recorded_with``)."""
    numbers: dict
    roles: dict
    rel: float
    abs: float
    half: tuple[float, float]
    recorded_with: dict

    def recorded(self) -> dict:
        """The snapshot these numbers make (as it is written and compared: plain JSON, keys sorted)."""
        import json

        from .snapshot import serialize
        return json.loads(serialize({**self.numbers, "_recorded_with": self.recorded_with}))


@dataclass
class RunInfo:
    """What a report says about its run (report.json's ``meta``, the report's head line, the history line): what
    ran, on what, how it was judged. A run fills it in :meth:`probes.session.ClaimsSession.finish`; a merge of
    several runs' reports in :func:`probes.merge.merge` (``merged_from``, ``lost``, ``skipped``)."""
    models: list[str] = field(default_factory=list)    # the run's models, as their results name them
    device: str | None = None                          # --device as given
    dtype: str | None = None                           # --dtype as given
    device_used: str = ""                              # what --device resolved to
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (model or input, why)
    precision: list[str] = field(default_factory=list)  # how a half-precision run was judged (one line)
    when: str = ""
    command: str = ""
    lock_diff: list[str] = field(default_factory=list)  # installed packages that differ from the CI lock
    machine: dict = field(default_factory=dict)
    wall_s: float | None = None
    provenance: list = field(default_factory=list)     # per model: where its weights came from, with hashes
    packages: dict = field(default_factory=dict)
    trend_note: str = ""                               # what the trend plots' x axis is
    merged_from: int | None = None                     # a merged report: how many reports it merged
    lost: list[tuple[str, str]] = field(default_factory=list)     # (input, why): inputs a merge could not read
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (input, why): inputs not reports of a read version

    def to_json(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for k in ("left_out", "lost", "skipped"):
            out[k] = [list(x) for x in out[k]]
        if self.merged_from is None:
            for k in ("merged_from", "lost", "skipped"):
                del out[k]
        return out

    @classmethod
    def from_json(cls, d: dict | None) -> RunInfo:
        """A report's ``meta`` (keys this version does not know are left out; missing ones take their defaults)."""
        d = d or {}
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known and v is not None}
        for k in ("left_out", "lost", "skipped"):
            kw[k] = [tuple(x) for x in d.get(k) or []]
        return cls(**kw)


def readable(version) -> str | None:
    """Why a report or history line of ``version`` cannot be read here (None: it can)."""
    if version in READS:
        return None
    return (f"written by an interp-claims whose reports are version {version or 1}; this one reads versions "
            f"{' and '.join(map(str, READS))}: re-run the claims with this version")


def adjust(results: list[ClaimResult]) -> list[ClaimResult]:
    """Every result of a run with its effect tests adjusted together (probes/paired.py): each move's ``p_adj``
    (Benjamini-Hochberg over every effect tested in ``results``), its significance (adjusted p < ``paired.Q``;
    moves exist only beyond their noise floors), and the verdict of a result that held with moved numbers: holds but
    changed when a move is still significant, holds within noise otherwise. Results without tests are returned
    as they are."""
    tests = [(i, path, p) for i, r in enumerate(results) if r.drift is not None for path, p in sorted(r.drift.tests.items())]
    adjusted = dict(zip([(i, path) for i, path, _ in tests], paired.bh([p for _, _, p in tests])))
    if not adjusted:
        return list(results)
    out = []
    for i, r in enumerate(results):
        if r.drift is None or not r.drift.tests:
            out.append(r)
            continue
        moves = []
        for m in r.drift.moves:
            if m.p is None:
                moves.append(m)
                continue
            p_adj = adjusted.get((i, m.path), m.p)
            moves.append(replace(m, p_adj=p_adj, sig=m.sig if r.drift.mode == "floor" else p_adj < paired.Q))
        drift = replace(r.drift, moves=moves)
        verdict = r.verdict
        if verdict in (Verdict.MOVED, Verdict.NOISE):
            verdict = Verdict.MOVED if drift.significant else Verdict.NOISE
        by_path = {m.path: m for m in moves if m.p_adj is not None}

        def shown(n):  # the cell's numbers carry the adjusted p of their move
            return replace(n, p_adj=by_path[n.path].p_adj) if n is not None and n.path in by_path else n
        out.append(replace(r, drift=drift, verdict=verdict, headline=shown(r.headline), largest=shown(r.largest)))
    return out
