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
