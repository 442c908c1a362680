"""Whether a new version changed: a paired test of the difference on the same stimuli.

A new version of a model is measured on the **same stimuli** as the recorded one, and every interval of a claim
comes from a bootstrap over those stimuli with **seeded** resample indices (probes/stats.py ``boot_index``): the
b-th replicate of the recorded run and the b-th replicate of this run resample the same prompts, words or cases.
The difference of the two replicates, draw by draw, is then the paired bootstrap of the change (Koehn 2004;
Berg-Kirkpatrick et al. 2012): the spread of the finding over other stimuli cancels in it, as it cancels in a
paired comparison of two models on the same items (Miller 2024, "Adding Error Bars to Evals").

- **Recorded:** for every effect number that has a bootstrap interval, ``_replicates`` keeps its first
  :data:`N_KEEP` draws (to :data:`DIGITS` significant digits, one line per number in the snapshot file), in the
  shape of ``_intervals`` with the draws as the last axis (:func:`replicates`).
- **Tested:** the change ``new - old`` of the number against the standard error of the paired replicate
  differences: ``z = change / sd(new_b - old_b)``, a two-sided normal p-value and the change's 95% interval
  ``change +- 1.96 sd`` (:func:`test`). Where the indices were not the same (another number of items), the two
  replicate series are independent and the same formula is the unpaired test: less sensitive, never falsely so.
- **Adjusted:** Benjamini-Hochberg over every effect tested in the run (:func:`probes.results.adjust`, q =
  :data:`Q`).

A move is **significant** when its adjusted p-value is below :data:`Q` **and** it is beyond the number's noise
floor (the larger of the claim's tolerance and 4x the measured float floor, probes/compare.py): a float-rounding
difference between CPUs is a real, consistent difference of the replicates, and the floor keeps it from counting.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special
from scipy import stats as sps

N_KEEP = 200   # replicates kept per effect number: the paired SD to about +-5% (1 / sqrt(2 x 200))
DIGITS = 6     # significant digits of a kept replicate (a 0.01% change of a value resolves)
Q = 0.05       # Benjamini-Hochberg false discovery rate over every effect tested in a run
Z95 = 1.959963984540054


def _round(x: float) -> float | None:
    if not math.isfinite(x):
        return None
    return float(f"{x:.{DIGITS}g}")


def replicates(intervals: Any, is_effect, path: str = "") -> Any:
    """The kept replicates of ``intervals`` (a claim's ``intervals=``, whose :class:`probes.stats.Interval` values
    carry their draws), for the paths that ``is_effect(path)`` says are effects: the same nesting as the intervals,
    each number's interval ``[lo, hi]`` replaced by a list of its first :data:`N_KEEP` draws (None for a non-finite
    draw). None where nothing is kept."""
    draws = getattr(intervals, "draws", None)
    if draws is not None:
        if not is_effect(path):
            return None
        d = np.asarray(draws, dtype=np.float64)[:N_KEEP]
        return np.vectorize(_round, otypes=[object])(np.moveaxis(d, 0, -1)).tolist() if d.ndim > 1 else \
            [_round(float(x)) for x in d]
    if isinstance(intervals, dict):
        out = {k: replicates(v, is_effect, f"{path}.{k}" if path else str(k)) for k, v in intervals.items()}
        out = {k: v for k, v in out.items() if v is not None}
        return out or None
    if isinstance(intervals, list) and not _is_pair(intervals):
        items = [replicates(v, is_effect, f"{path}[{i}]") for i, v in enumerate(intervals)]
        return items if any(v is not None for v in items) else None
    return None


def _is_pair(x) -> bool:
    return len(x) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in x)


def is_series(x) -> bool:
    """A kept replicate series: a flat list of numbers (or None) longer than an interval's two bounds."""
    return isinstance(x, list) and len(x) > 2 and all(v is None or (isinstance(v, (int, float)) and
                                                                     not isinstance(v, bool)) for v in x)


def test(old_reps: list, new_reps: list, change: float) -> tuple[float, tuple[float, float]] | None:
    """The paired test of ``change`` (this run's value minus the recorded one): (two-sided p, the change's 95%
    interval), from the replicate differences drawn with the same indices; None when fewer than 20 pairs are
    finite in both."""
    n = min(len(old_reps), len(new_reps))
    pairs = [(a, b) for a, b in zip(old_reps[:n], new_reps[:n]) if a is not None and b is not None]
    if len(pairs) < 20:
        return None
    d = np.array([b - a for a, b in pairs], dtype=np.float64)
    se = float(d.std(ddof=1))
    if se == 0.0:  # every resample moved alike: a change that no draw of the stimuli explains
        return (0.0 if change else 1.0), (change, change)
    p = float(2 * special.ndtr(-abs(change) / se))
    return p, (change - Z95 * se, change + Z95 * se)


def bh(pvalues: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (scipy.stats.false_discovery_control), in the order given."""
    if not pvalues:
        return []
    return [float(x) for x in sps.false_discovery_control(np.asarray(pvalues, dtype=np.float64), method="bh")]
