"""benchmarks/bench_cost.py: its fit takes counted work exactly to the real depth and never bends it down; its
forced workloads (benchmarks/cost_forced.py) still run the claims' library calls on a random model of a real
config."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_cost  # noqa: E402


def test_counted_work_is_taken_exactly_to_the_real_depth():
    """A family's work that grows as a + bL + cL^2 (a head patched from its own layer) is exact at 30 layers from
    2, 4 and 6; with two points the line through them."""
    f = lambda L: 7 + 3 * L + 0.5 * L * L  # noqa: E731
    assert bench_cost.poly([2, 4, 6], [f(2), f(4), f(6)], 30) == pytest.approx(f(30))
    assert bench_cost.poly([2, 4], [5.0, 9.0], 10) == pytest.approx(21.0)
    assert bench_cost.poly([2], [5.0], 10) == 5.0
    assert bench_cost.growth([2, 4, 6], [0.5 * L * L for L in (2, 4, 6)], 30) == pytest.approx(2.0)
    assert bench_cost.growth([2, 4, 6], [3.0 * L for L in (2, 4, 6)], 30) == pytest.approx(1.0)
    assert bench_cost.growth([2, 4, 6], [9.0, 9.0, 9.0], 30) == pytest.approx(0.0, abs=1e-9)


def test_a_cheaper_selection_at_one_depth_does_not_bend_the_prediction_down():
    """Random models' selections (the top heads of a draw) can make one depth cheaper than a shallower one: the
    fit's coefficients stay non-negative, so the prediction never falls below what was measured."""
    assert bench_cost.poly([2, 4, 6], [10.0, 20.0, 22.0], 30) >= 22.0
    c2, c1, _ = bench_cost.coefficients([2, 4, 6], [10.0, 20.0, 22.0])
    assert c2 >= 0 and c1 >= 0


def test_marginal_rate_takes_the_time_the_added_flops_took():
    """Each family's fixed cost (3 s here, 40 s there) cancels; the added FLOPs' time gives the rate."""
    sums = [{"a": {"flops": 1e11 * L, "seconds": 3 + 1e11 * L / 50e9},
             "b": {"flops": 4e11 * L * L, "seconds": 40 + 4e11 * L * L / 50e9}} for L in (2, 4, 6)]
    assert 1 / bench_cost.marginal_rate(sums) == pytest.approx(50e9, rel=1e-9)


def test_family_sums_add_claims_and_mark_forced_ones():
    rows = [{"claim": "ioi.behaviour", "seconds": 1.0, "flops": 10, "bytes": 5, "ops": 3, "rss_peak": 100},
            {"claim": "ioi.head_patching", "seconds": 2.0, "flops": 20, "bytes": 5, "ops": 4, "rss_peak": 300},
            {"claim": "tracing.subject_site", "seconds": 4.0, "flops": 1, "bytes": 1, "ops": 1, "rss_peak": 50,
             "forced": True}]
    s = bench_cost.family_sums(rows)
    assert s["ioi"]["seconds"] == 3.0 and s["ioi"]["flops"] == 30 and s["ioi"]["rss_peak"] == 300
    assert s["ioi"]["forced"] == [] and s["tracing"]["forced"] == ["tracing.subject_site"]


@pytest.mark.slow
def test_forced_workloads_run_on_a_random_model_of_a_real_config(tmp_path, monkeypatch):
    """The three measurements a random model's preconditions stop still run, through the claims' own stimuli and
    library calls (a renamed stimulus key or function breaks this test, not a benchmark run hours later)."""
    import cost_forced
    monkeypatch.setenv("INTERP_CLAIMS_CACHE", str(tmp_path / "cache"))
    info = bench_cost.build("smollm2-135m", 2, tmp_path / "m", bench_cost.tokenizer_folder())
    assert info["real_layers"] == 30 and info["vocab"] >= info["real_vocab"]
    out = tmp_path / "rows.jsonl"
    assert cost_forced.main([str(tmp_path / "m"), str(out)]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["claim"] for r in rows] == list(cost_forced.WORKLOADS)
    assert all(r["flops"] > 0 and r["ops"] > 0 and r["seconds"] > 0 for r in rows)
