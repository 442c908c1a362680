"""What the intervals cost next to the measurement: the claims run under cProfile, in one process, and the time spent
in the bootstrap (probes.stats' resampling helpers, called by every claim for its intervals and stabilities) is
set beside the whole run's.

    python benchmarks/bench_intervals.py                        # the organisms, MiniLM, SmolLM2-135M, Gemma-3-270m
    python benchmarks/bench_intervals.py --models gpt2-organism

Prints, per model, the claims' wall time, the time inside the bootstrap helpers (cumulative, each call counted
once at its outermost helper) and their ratio; then the total. One process, one thread per model run (as a worker
of ``pytest -n auto`` on 2 cores has), so the ratio is the share of a worker's time.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELPERS = ("boot_index", "boot_means", "boot_group_moments", "boot_ttest_ind", "interval", "mean_ci",
           "resample", "top_k_stability", "fdr_counts", "fdr_masks", "rowwise_corr", "boot_counts", "boot_tuning",
           "boot_rec_sim", "margin_intervals")
DEFAULT = "gpt2-organism,gpt-neo-organism,bert-organism,minilm,smollm2-135m,gemma3-270m"


def bootstrap_seconds(stats: pstats.Stats) -> float:
    """Cumulative seconds of the outermost bootstrap helpers (a helper called by another helper is not counted
    twice)."""
    total = 0.0
    for (file, _, name), (_, _, _, cum, callers) in stats.stats.items():
        if name not in HELPERS or not (file.endswith("probes/stats.py") or "/claims/" in file):
            continue
        outer = sum(c[3] for (cf, _, cn), c in callers.items() if not (cn in HELPERS and
                                                                       (cf.endswith("probes/stats.py") or "/claims/" in cf)))
        total += outer
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=DEFAULT)
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import pytest
    import torch
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    os.chdir(ROOT)
    rows = []
    for m in a.models.split(","):
        prof = cProfile.Profile()
        t0 = time.time()
        prof.enable()
        rc = pytest.main(["claims/", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--models", m,
                          "--artifacts=/tmp/bench-intervals", "-o", "addopts="])
        prof.disable()
        wall = time.time() - t0
        boot = bootstrap_seconds(pstats.Stats(prof))
        rows.append((m, wall, boot, int(rc)))
    print(f"\n{'model':<18} {'claims s':>9} {'intervals s':>12} {'share':>7}  exit")
    for m, wall, boot, rc in rows:
        print(f"{m:<18} {wall:9.1f} {boot:12.2f} {100 * boot / wall:6.1f}%  {rc}")
    tw, tb = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'total':<18} {tw:9.1f} {tb:12.2f} {100 * tb / tw:6.1f}%")
    print(f"(torch {torch.__version__}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}; wall time includes loading each model and cProfile's overhead)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
