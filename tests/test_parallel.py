"""Under -n auto each model loads once (tests are grouped by model) and results equal those of -n 0."""
from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SELECT = ["claims/test_ioi.py::test_behaviour_prefers_indirect_object",
          "claims/test_ioi.py::test_few_heads_carry_the_patching_effect",
          "claims/test_grammar.py::test_noun_verb_neurons_in_one_layer"]


def run(tmp: Path, *args: str) -> tuple[dict[str, str], list[str]]:
    tmp.mkdir(parents=True)
    env = dict(os.environ, CLAIMS_LOAD_LOG=str(tmp / "loads.txt"),
               OMP_NUM_THREADS="1")  # same thread count in both runs: float sums are then bit-identical
    r = subprocess.run([sys.executable, "-m", "pytest", *SELECT, "--models", "gpt2-organism,gpt-neo-organism",
                        "-p", "no:cacheprovider", "-q", "--record", f"--artifacts={tmp / 'art'}",
                        "-o", f"claims_snapshots={tmp / 'snaps'}", *args],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    snaps = {str(p.relative_to(tmp / "snaps")): p.read_text() for p in sorted((tmp / "snaps").rglob("*.json"))}
    return snaps, (tmp / "loads.txt").read_text().split("\n")[:-1]


def test_parallel_equals_serial_and_loads_once_per_model(tmp_path):
    serial, loads0 = run(tmp_path / "serial", "-p", "no:xdist", "-o", "addopts=")
    parallel, loads2 = run(tmp_path / "parallel", "-n", "2")
    assert len(serial) == 6 and serial == parallel  # identical snapshot files, byte for byte
    assert sorted(m for _, m in (x.split() for x in loads0)) == ["gpt-neo-organism", "gpt2-organism"]
    per_model = Counter(m for _, m in (x.split() for x in loads2))
    assert per_model == {"gpt2-organism": 1, "gpt-neo-organism": 1}, loads2  # once each, on one worker


def test_xdist_keeps_the_group_order(pytestconfig):
    """xdist re-sorts loadgroup scopes by their number of tests unless told not to (which queued Gemma-3's few,
    slow neuron claims behind every organism); pyproject.toml's addopts turns that off, so the order below is
    the order groups are handed out in."""
    assert pytestconfig.getoption("loadscopereorder") is False


def test_heavier_models_are_queued_first():
    """Longest-first: registry ``xdist_weight`` orders the claims (SmolLM2 weight 2 before the organisms'
    default 1), and tests that are not claims (weight 1, collected first) come between."""
    r = subprocess.run([sys.executable, "-m", "pytest", "tests/test_snapshot.py", "claims/test_ioi.py",
                        "--collect-only", "-q", "--models", "gpt2-organism,smollm2-135m", "-p", "no:cacheprovider"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ids = [line for line in r.stdout.splitlines() if "::" in line]
    kind = ["smollm2" if "[smollm2-135m]" in i else "tests" if i.startswith("tests/") else "organism" for i in ids]
    first = [k for i, k in enumerate(kind) if k not in kind[:i]]
    assert first == ["smollm2", "tests", "organism"], ids
    assert kind == sorted(kind, key=first.index), ids  # each kind contiguous


def test_each_worker_takes_its_share_of_the_cores(tmp_path):
    """Under -n 2 each worker's torch, OpenMP and numpy's BLAS get half the cores: numpy's OpenBLAS, loaded
    before the plugin configures, otherwise kept a thread per core and took the other worker's core."""
    probe = tmp_path / "test_pools.py"
    probe.write_text("import os, threadpoolctl, torch\n\n"
                     "def test_pools():\n"
                     "    pools = {i['internal_api']: i['num_threads'] for i in threadpoolctl.threadpool_info()}\n"
                     "    print('POOLS', torch.get_num_threads(), sorted(pools.items()), flush=True)\n\n"
                     "def test_pools_again():\n"
                     "    test_pools()\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    r = subprocess.run([sys.executable, "-m", "pytest", str(probe), "-n", "2", "-p", "no:cacheprovider", "-rA", "-q",
                        "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    share = max(1, (os.cpu_count() or 1) // 2)
    seen = [line.split("POOLS ", 1)[1] for line in r.stdout.splitlines() if line.startswith("POOLS ")]
    assert len(seen) == 2, r.stdout[-3000:]
    for s in seen:
        torch_threads, pools = s.split(" ", 1)
        assert int(torch_threads) == share, s
        assert all(n == share for _, n in eval(pools)), s  # noqa: S307 - our own probe's printed list
