"""The paired comparison (probes/paired.py): a change measured on the same stimuli is tested by its draw-by-draw
differences, adjusted over the run, and gated by the noise floor."""
import json

import numpy as np
import pytest

from probes import compare, roles
from probes import paired, stats
from probes.drift import Drift, Move
from probes.results import ClaimResult, Verdict, adjust
from probes.snapshot import record, serialize

ROLES = roles.roles(effect=["mean"])


def snapshot(per_item: np.ndarray) -> dict:
    """What a claim records for the mean of per-item values (its interval and kept replicates)."""
    iv = stats.mean_ci(per_item)
    reps = paired.replicates({"mean": iv}, lambda p: roles.role_of(p, ROLES) == roles.EFFECT)
    return json.loads(serialize({"mean": float(per_item.mean()), "_intervals": {"mean": iv}, "_replicates": reps}))


def items(seed=0, n=168):
    return np.random.default_rng(seed).normal(4.75, 2.0, n)  # per-prompt values spread like IOI logit differences


def test_a_small_uniform_change_inside_the_recorded_interval_is_significant():
    old = items()
    new = old * 0.97 + np.random.default_rng(1).normal(0, 0.05, old.size)  # -3%, every prompt alike
    a, b = snapshot(old), snapshot(new)
    lo, hi = a["_intervals"]["mean"]
    assert lo < b["mean"] < hi  # the old rule (leave the recorded interval) called this noise
    d = compare.diff(a, b, 1e-3, 1e-4, ROLES)
    (m,) = d.moves
    assert m.sig and m.p < 1e-10
    assert m.change_ci[0] < b["mean"] - a["mean"] < m.change_ci[1]
    assert -0.05 * a["mean"] < m.change_ci[0] < m.change_ci[1] < -0.01 * a["mean"]  # about -3%, clear of 0
    assert d.tests["mean"] == m.p
    head, _ = compare.effect_numbers(b, ROLES, a, d)  # the cell: the change with its interval, and what it resolves
    assert head.pct_ci[0] < head.pct < head.pct_ci[1] and head.resolves == pytest.approx(
        50 * (m.change_ci[1] - m.change_ci[0]) / abs(a["mean"]))
    assert head.resolves < 1.0  # a 3% change is resolved many times over


def test_an_unchanged_model_moves_nothing_and_float_noise_stays_under_the_floor():
    old = items()
    a = snapshot(old)
    assert not compare.diff(a, snapshot(old), 1e-3, 1e-4, ROLES).moves  # same numbers: no move, p of a zero change is 1
    jittered = snapshot(old * (1 + 1e-7))  # a consistent float shift: "significant", but under the tolerance
    assert not compare.diff(a, jittered, 1e-3, 1e-4, ROLES).moves


def test_a_change_that_the_stimuli_do_not_support_is_not_significant():
    old = items()
    new = old + np.random.default_rng(2).normal(0, 2.0, old.size)  # items move every way: a mean shift by chance
    a, b = snapshot(old), snapshot(new)
    m = next(iter(compare.diff(a, b, 1e-3, 1e-4, ROLES).moves))
    assert m.p > 0.05 and not m.sig


def test_replicates_are_kept_for_effects_only_and_as_plain_lines():
    draws = np.random.default_rng(0).normal(size=(1000, 3))
    ivs = {"mean": stats.interval(draws[:, 0]), "profile": stats.interval(draws[:, 1:]), "count": stats.interval(
        draws[:, 0])}
    reps = paired.replicates(ivs, lambda p: p in ("mean", "profile"))
    assert set(reps) == {"mean", "profile"}
    assert len(reps["mean"]) == paired.N_KEEP and len(reps["profile"]) == 2 and len(reps["profile"][0]) == paired.N_KEEP
    assert reps["mean"][0] == pytest.approx(draws[0, 0], rel=1e-5)
    text = serialize({"x": 1.0, "_replicates": reps})
    assert len(text.splitlines()) < 12  # one line per series, not 200
    assert json.loads(text)["_replicates"]["profile"][1][5] == pytest.approx(draws[5, 2], rel=1e-5)


def _result(p: float, verdict=Verdict.MOVED) -> ClaimResult:
    m = Move("mean", roles.EFFECT, "value", 1.0, 1.1, change=0.1, pct=10.0, tol=5.0, sig=p < paired.Q, p=p,
             change_ci=(0.05, 0.15))
    return ClaimResult(claim="c", model="m", verdict=verdict, drift=Drift(moves=[m], has_effect=True,
                                                                         tests={"mean": p}))


def test_benjamini_hochberg_over_the_run_decides_the_verdicts():
    alone = adjust([_result(0.01)])
    assert alone[0].verdict == Verdict.MOVED and alone[0].drift.moves[0].p_adj == pytest.approx(0.01)
    crowd = [_result(0.01)] + [_result(0.9, Verdict.HOLDS) for _ in range(9)]
    out = adjust(crowd)  # 10 tests: 0.01 x 10 / 1 = 0.1, no longer a discovery
    assert out[0].verdict == Verdict.NOISE and out[0].drift.moves[0].p_adj == pytest.approx(0.1)
    assert [r.verdict for r in out[1:]] == [Verdict.HOLDS] * 9
    back = ClaimResult.from_json(json.loads(json.dumps(out[0].to_json())))  # crosses xdist and report.json
    assert back.drift.moves[0].p_adj == pytest.approx(0.1) and back.drift.tests == {"mean": 0.01}


def test_recording_an_unchanged_claim_adds_its_replicates_and_keeps_its_numbers(tmp_path):
    old = items()
    with_reps = snapshot(old)
    before = {k: v for k, v in with_reps.items() if k != "_replicates"}
    before["_noise"] = {"floor": {"mean": 1e-6}}
    path = tmp_path / "s.json"
    path.write_text(serialize(before))
    now = dict(with_reps, mean=with_reps["mean"] * (1 + 1e-6))  # within tolerance: the recorded number stays
    assert record(path, now, 1e-3, 1e-4)
    after = json.loads(path.read_text())
    assert after["mean"] == before["mean"] and after["_noise"] == before["_noise"]
    assert after["_replicates"] == with_reps["_replicates"]
    assert not record(path, now, 1e-3, 1e-4)  # nothing left to add: untouched
