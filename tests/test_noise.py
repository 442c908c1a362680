"""Noise is not change: measured noise floors, intervals and stabilities in the committed snapshots; the snapshots
hold under another CPU kernel path; a move is significant only beyond the recorded interval."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from probes import compare, drift, roles
from probes import stats
from probes.snapshot import ABS_TOL, REL_TOL

ROOT = Path(__file__).resolve().parents[1]
SNAPS = ROOT / "snapshots"
sys.path.insert(0, str(ROOT / "scripts"))


def snap(name: str) -> dict:
    return json.loads((SNAPS / name).read_text())


def test_every_committed_snapshot_carries_measured_floors():
    """scripts/calibrate.py measured every recorded number under the float-noise perturbations (kernel paths, MKL
    code paths, thread count, a 1e-6 weight jitter) and wrote its floor beside it."""
    files = sorted(SNAPS.rglob("*.json"))
    assert files
    missing = [f.name for f in files if "_noise" not in json.loads(f.read_text())]
    assert not missing, f"{len(missing)} snapshots without _noise (run scripts/calibrate.py): {missing[:5]}"
    runs = {tuple(json.loads(f.read_text())["_noise"]["runs"]) for f in files}
    assert all({"kernels-avx2", "kernels-default", "jitter"} <= set(r) for r in runs), runs


def test_the_floors_cover_the_cross_cpu_moves_seen_on_another_machine():
    """The two moves that made a fresh machine's CI red (issue 28): grammar.laminar L1 x bert-organism's null_q95
    0.355621 -> 0.3548629, and neuron.workflow x gemma3-270m's robust z values +0.1%. Under the floors they are
    noise, even with significance "floor" (any move beyond the floor counts)."""
    lam = snap("test_grammar/test_tuning_replicates_in_this_layer[bert-organism-L1].json")
    new = {k: v for k, v in lam.items() if not k.startswith("_")}
    assert abs(new["null_q95"] - 0.355621) < 1e-6
    new["null_q95"] = 0.3548629
    table = roles.roles(effect=["r_split", "prop_sig", "mean_abs_t_sig"])
    assert not compare.diff(lam, new, 1e-3, 1e-4, table, mode=drift.FLOOR).significant
    # without its floor it was a move: the floor is what covers it
    assert compare.diff({k: v for k, v in lam.items() if k != "_noise"}, new, 1e-3, 1e-4, table, mode=drift.FLOOR).moves
    wf = snap("test_neuron/test_workflow_finds_neurons_that_matter[gemma3-270m].json")
    new = json.loads(json.dumps({k: v for k, v in wf.items() if not k.startswith("_")}))
    for n in new["neurons"]:
        n["robust_z"] *= 1.001
    table = roles.roles(effect=["drop"], identity=["layers", "jumps", "neurons[].id", "neurons[].top_tokens",
                                               "neurons[].bottom_tokens"])
    assert not compare.diff(wf, new, 1e-3, 1e-3, table, mode=drift.FLOOR).significant


def test_floors_stay_far_below_the_intervals_they_guard():
    """A floor wider than a tenth of its effect's interval would mean a statistic that float rounding moves as much
    as resampling the stimuli does: a statistic to fix, not a tolerance to widen."""
    ratios = []
    for f in SNAPS.rglob("*.json"):
        s = json.loads(f.read_text())
        fl = (s.get("_noise") or {}).get("floor", {})
        for path, _, _, iv in compare.leaves(s):
            if iv is not None and max(iv) > min(iv) and path in fl:
                ratios.append((fl[path] / ((max(iv) - min(iv)) / 2), f"{f.name} {path}"))
    assert ratios
    worst = max(ratios)
    assert worst[0] <= 0.1, f"floor / interval half-width {worst[0]:.3g} at {worst[1]}"


def test_calibration_adds_floors_and_never_changes_a_recorded_value():
    import calibrate
    rec = {"a": 1.0, "top": [{"id": "x", "v": 2.0}, {"id": "y", "v": 1.0}], "n": 5}
    table = roles.roles(effect=["a", "top[].v"], identity=["top[].id"])
    runs = [{"a": 1.00001, "top": [{"id": "x", "v": 2.0}, {"id": "y", "v": 1.0}], "n": 5},
            {"a": 0.99998, "top": [{"id": "x", "v": 2.0}, {"id": "z", "v": 1.0}], "n": 6}]
    noise = calibrate.floors(rec, runs, table)
    assert noise["floor"] == {"a": 2e-05, "n": 1.0} and noise["unstable"] == {"top": ["y", "z"]}
    # the floors make those moves noise; a move beyond FLOOR_K x the floor is still one
    snapped = dict(rec, _noise=noise)
    assert not compare.diff(snapped, runs[1], REL_TOL, ABS_TOL, table, mode=drift.FLOOR).significant
    assert compare.diff(snapped, dict(runs[0], a=1.002), REL_TOL, ABS_TOL, table, mode=drift.FLOOR).significant


def test_bootstrap_helpers_equal_their_loops():
    g = np.random.default_rng(0)
    x = g.normal(size=(40, 3))
    draws = stats.boot_means(x, n_boot=50, seed=3)
    idx = stats.boot_index(40, 50, 3)
    assert np.allclose(draws, np.stack([x[i].mean(0) for i in idx]))
    a, b = g.normal(size=(30, 4)), g.normal(size=(25, 4)) + 0.5
    t, d = stats.boot_ttest_ind(a, b, n_boot=20, seed=1)
    ia, ib = stats.boot_index(30, 20, 1), stats.boot_index(25, 20, 2)
    assert np.allclose(t, np.stack([stats.ttest_ind(a[i], b[j])[0] for i, j in zip(ia, ib)]))
    assert np.allclose(d, np.stack([stats.cohens_d(a[i], b[j]) for i, j in zip(ia, ib)]))
    p = g.uniform(size=(10, 100)) ** 3
    assert (stats.fdr_counts(p) == [stats.fdr(r).sum() for r in p]).all()
    assert all((m == stats.fdr(r)).all() for m, r in zip(stats.fdr_masks(p), p))
    lo, hi = stats.mean_ci(g.normal(5.0, 1.0, size=400))
    assert lo < 5.0 < hi and hi - lo < 0.3
    # a bias-centred interval contains its estimate even when resampling biases the statistic
    lo, hi = stats.interval(np.linspace(0.80, 0.90, 101), centre=0.95)
    assert lo < 0.95 < hi


@pytest.mark.slow
def test_prone_claims_hold_under_another_kernel_path(tmp_path):
    """The claims whose statistics are most prone to float rounding (a quantile of a permutation null, counts of
    FDR discoveries, top-k sets, robust z over a layer) under AVX2 kernels and MKL's AVX2 code path, in a process of
    their own, against the committed snapshots with significance "floor" (any move beyond a floor counts): exit 0.
    The whole suite under three paths: `python scripts/calibrate.py --check` (README)."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2", MKL_CBWR="AVX2", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "claims/test_grammar.py", "claims/test_neuron.py",
                        "claims/test_ioi.py", "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=", "-q",
                        "-k", "replicates_in_this_layer or noun_verb_neurons or workflow or stand_out or few_heads",
                        "--models", "bert-organism,gpt2-organism,gemma3-270m", "--significance=floor",
                        f"--artifacts={tmp_path / 'art'}"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=1200)
    assert r.returncode == 0, r.stdout[-4000:]
    res = json.loads((tmp_path / "art" / "report.json").read_text())["results"]
    claims = {x["claim"] for x in res if x["verdict"] != "skipped"}
    assert {"grammar.laminar", "grammar.neurons", "neuron.workflow", "neuron.stand_out", "ioi.head_patching"} <= claims
