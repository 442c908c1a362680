"""What changed between a recorded snapshot and this run, and whether it matters: the types of a drift and their
judgement (significance, severity). probes/compare.py finds the moves (walking a snapshot by the roles of
probes/roles.py); probes/drift_text.py words them.

A claim's numbers have **roles** (effect, identity, diagnostic: probes/roles.py, which also parses their paths).

:func:`probes.compare.diff` returns a :class:`Drift`: every move beyond tolerance (a value with its
change in percent of its own recorded value and in units of the tolerance, a set with the ids that entered or
left), the identity overlap of every id list, and one line for the claim (``effect -7% (top_heads: 7 kept, +1,
-1)``). A pure reorder of components is a rank change inside an unchanged set, never a change of sign or of
identity.

**Noise is not change.** A snapshot may carry, beside its numbers (never compared as numbers):

- ``_noise``: each number's measured **noise floor** (``floor``: path -> the largest move seen when the claim was
  re-measured under float32-rounding perturbations: other SIMD kernels, MKL code paths, thread counts, a 1e-6
  weight jitter; scripts/calibrate.py) and the component ids that changed under them (``unstable``). A number
  moves only beyond ``max(declared tolerance, FLOOR_K x floor)``; ids that float noise moves never count.
  ``_noise.bfloat16`` / ``_noise.float16`` (same shape): the floors of a run in that half precision against these
  numbers, measured as the largest move between the recorded values and half-precision runs under perturbations at
  that precision's rounding scale (scripts/calibrate.py --dtype); they judge a half-precision run.
- ``_intervals``: the claim's 95% bootstrap intervals over its stimuli, in the shape of the numbers they belong
  to (a number -> ``[lo, hi]``; a list -> a list of those; records -> a list of dicts aligned with the records).
- ``_stability``: per identity path, each component's share of bootstrap resamples in which it is in the set.
- ``_replicates``: per effect number with an interval, its first bootstrap draws (probes/paired.py), drawn with
  the seeded indices a new run draws again: the paired test of a change.

A move of an effect is **significant** when the paired test of its change on the same stimuli says so (its
p-value, Benjamini-Hochberg-adjusted over every effect of the run by :func:`probes.results.adjust`, below 0.05;
the move exists only beyond the number's noise floor); an effect recorded without replicates: when it leaves its
recorded interval; an effect without an interval: as soon as it moves beyond its floor. A change of identities is
significant when a component that was stable in its set (>= STABLE of the resamples) leaves it or
one stably out enters; an effect number that appears, vanishes or changes type is too; diagnostics are reported and
never significant. With ``mode="floor"`` every move beyond the floor is significant: how this project's own tests
catch a change of its measuring code that moves recorded numbers on the same model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from . import drift_text
from .roles import EFFECT, is_number

LARGE, MEDIUM, SMALL, NOISE = "large", "medium", "small", "noise"
LEVELS = [LARGE, MEDIUM, SMALL, NOISE]
FLOOR_K = 4.0    # a number moves only beyond max(declared tolerance, FLOOR_K x its measured noise floor)
STABLE = 0.95    # a component is stable in a top set when it is there in >= 95% of the bootstrap resamples
INTERVAL, FLOOR = "interval", "floor"  # significance: leaving the recorded interval, or any move beyond the floor
LARGE_EFFECT, MEDIUM_EFFECT = 20.0, 5.0  # percent of the recorded effect
LARGE_LOSS = 0.25                        # fraction of an id set that left


@dataclass(frozen=True)
class Move:
    """One change beyond tolerance (the larger of the declared one and FLOOR_K x the number's noise floor).
    ``pct``: the change in percent of the number's own recorded value; ``tol``: the change in units of that
    tolerance; ``sig``: whether it is significant (see :func:`probes.compare.diff`); ``width``: the change in half-widths of
    the recorded interval; ``interval``: the recorded interval. Data only: :func:`probes.drift_text.move_text` writes
    the line."""
    path: str
    role: str
    kind: str  # value | set | changed | missing | new | length
    old: Any = None
    new: Any = None
    change: float | None = None
    pct: float | None = None
    tol: float | None = None
    sig: bool = True     # significant: the paired test (or, unpaired, leaving the recorded interval; stable ids left)
    width: float | None = None  # the change in half-widths of the recorded interval (effects with an interval)
    interval: tuple[float, float] | None = None
    p: float | None = None         # the paired test's two-sided p-value (probes/paired.py; None: not tested)
    p_adj: float | None = None     # ... adjusted (Benjamini-Hochberg over every effect tested in the run)
    change_ci: tuple[float, float] | None = None  # the change's own 95% interval, from the paired replicates


@dataclass
class IdentitySet:
    """One list of component ids, old vs new: overlap, ids that entered or left, rank changes of the kept ones."""
    path: str
    n_old: int
    n_new: int
    same: int
    entered: list = field(default_factory=list)
    left: list = field(default_factory=list)
    ranks: list = field(default_factory=list)  # [id, old rank, new rank] (1-based), kept ids whose rank changed

    scalar: bool = False  # one named component (e.g. the stand-out neuron), not a list
    lost_share: float | None = None  # records with effect values: the share of the recorded effect the ids that
    #                                  left carried (a swap at the tail of a top-k list carries little)
    sig: bool = True    # the change involves a component that was stable in the set (or whose stability is unknown)
    floor_noise: bool = False  # every id that entered or left also did so under float-noise perturbations


@dataclass
class Drift:
    moves: list[Move] = field(default_factory=list)
    identities: list[IdentitySet] = field(default_factory=list)
    has_effect: bool = False  # whether the claim declares effect numbers
    tests: dict[str, float] = field(default_factory=dict)  # path -> the paired test's p of every effect number
    #                                compared with replicates, moved or not (the run adjusts them together)
    mode: str = "interval"    # the significance mode it was judged in (INTERVAL or FLOOR)
    resolution: dict[str, float] = field(default_factory=dict)  # path -> the half-width of the change's 95%
    #                                interval (paired replicates): the smallest change of it these stimuli resolve

    @property
    def moved(self) -> bool:
        """Some number moved beyond its noise floor (significant or not)."""
        return bool(self.moves)

    @property
    def significant(self) -> bool:
        """Some move is significant: an effect left its recorded interval, a stable component left its set, an
        effect number appeared, vanished or changed type (or, with significance "floor", anything moved beyond
        its floor). Diagnostics never are, except under "floor"."""
        return any(m.sig for m in self.moves)

    def _effect_moves(self) -> list[Move]:
        moves = [m for m in self.moves if m.role == EFFECT and m.pct is not None]
        sig = [m for m in moves if m.sig]
        return sig or moves

    @property
    def effect(self) -> float | None:
        """The signed largest change of an effect number (significant ones first), in percent of that number's own
        recorded value (None: none moved)."""
        moves = self._effect_moves()
        return max(moves, key=lambda m: abs(m.pct or 0.0)).pct if moves else None

    @property
    def effect_path(self) -> str | None:
        moves = self._effect_moves()
        return max(moves, key=lambda m: abs(m.pct or 0.0)).path if moves else None

    @property
    def level(self) -> str:
        """Significance first, size second. noise: nothing significant moved (every move within its recorded
        interval, or of a diagnostic, or of an unstable component). Among significant moves: large: an effect moved
        >= 20% of its own recorded value, or >= 25% of an id set left (for records with effect values: ids carrying
        >= 25% of the recorded effect), or an effect number appeared, vanished or changed type; medium: an effect
        moved >= 5%, or a stable id entered or left; small: the rest."""
        if not self.significant:
            return NOISE
        sig = [m for m in self.moves if m.sig]
        e = max((abs(m.pct) for m in sig if m.role == EFFECT and m.pct is not None), default=0.0)
        top = [s for s in self.identities if "[" not in s.path and s.sig and (s.entered or s.left)]
        lost = max((s.lost_share if s.lost_share is not None else len(s.left) / s.n_old  # the id lists inside kept
                    for s in top if s.n_old), default=0.0)                              # records are details
        minor = all(s.lost_share is not None and s.lost_share < MEDIUM_EFFECT / 100 for s in top)
        structural = any(m.role == EFFECT and m.kind in ("missing", "new", "length", "changed") for m in sig)
        if e >= LARGE_EFFECT or lost >= LARGE_LOSS or structural:
            return LARGE
        if e >= MEDIUM_EFFECT or not minor:
            return MEDIUM
        return SMALL

    def to_json(self) -> dict:
        """The drift as JSON: its moves and identity sets (data), and for readers of report.json its level,
        significance, largest effect change and summary (derived: :meth:`from_json` recomputes them)."""
        return {"has_effect": self.has_effect, "tests": self.tests, "resolution": self.resolution, "mode": self.mode,
                "level": self.level, "significant": self.significant,
                "effect_pct": self.effect, "effect_path": self.effect_path, "summary": drift_text.summary(self),
                "id_summary": drift_text.id_summary(self), "identities": [asdict(s) for s in self.identities],
                "moves": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(m).items()}
                          for m in self.moves]}

    @classmethod
    def from_json(cls, d: dict) -> "Drift":
        """A drift from :meth:`to_json` (or from a version-2 report, whose moves carry their text: recomputed)."""
        mf = {f for f in Move.__dataclass_fields__}
        sf = {f for f in IdentitySet.__dataclass_fields__}
        def move(m: dict[str, Any]) -> Move:
            kw: dict[str, Any] = {k: (tuple(v) if k in ("interval", "change_ci") and v else v) for k, v in m.items()
                                  if k in mf}
            return Move(**kw)
        moves = [move(m) for m in d.get("moves") or []]
        ids = [IdentitySet(**{k: v for k, v in s.items() if k in sf}) for s in d.get("identities") or []]
        has = d.get("has_effect", any(m.role == EFFECT for m in moves) or d.get("effect_pct") is not None)
        return cls(moves=moves, identities=ids, has_effect=bool(has), tests=dict(d.get("tests") or {}),
                   mode=d.get("mode") or INTERVAL, resolution=dict(d.get("resolution") or {}))


@dataclass(frozen=True)
class Number:
    """One effect number as a cell shows it: its path (``top_heads[L5.H1].delta``), value and 95% interval, the
    recorded value and interval beside it, and the change in percent of the recorded value."""
    path: str
    value: Any
    ci: tuple[float, float] | None = None
    old: Any = None
    old_ci: tuple[float, float] | None = None
    pct: float | None = None
    pct_ci: tuple[float, float] | None = None  # the change's own 95% interval in percent (paired replicates)
    p_adj: float | None = None                 # its paired test's p-value, adjusted over the run (else raw)
    resolves: float | None = None              # the half-width of that interval in percent of the recorded value:
    #                                            the smallest change of this number the stimuli resolve here

    def to_json(self) -> dict:
        return {"path": self.path, "value": self.value, "ci": list(self.ci) if self.ci else None, "old": self.old,
                "old_ci": list(self.old_ci) if self.old_ci else None, "pct": self.pct,
                "pct_ci": list(self.pct_ci) if self.pct_ci else None, "p_adj": self.p_adj, "resolves": self.resolves}

    @classmethod
    def from_json(cls, d: dict | None) -> "Number | None":
        if not d or d.get("value") is None:
            return None
        ci, old_ci = d.get("ci"), d.get("old_ci")
        pct = d.get("pct")
        if pct is None and is_number(d.get("value")) and is_number(d.get("old")) and d["old"]:
            pct = 100.0 * (d["value"] - d["old"]) / abs(d["old"])  # a schema-2 headline: computed as schema 3 does
        pct_ci = d.get("pct_ci")
        return cls(d["path"], d["value"], tuple(ci) if ci else None, d.get("old"),
                   tuple(old_ci) if old_ci else None, pct, tuple(pct_ci) if pct_ci else None, d.get("p_adj"),
                   d.get("resolves"))
