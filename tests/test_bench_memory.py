"""benchmarks/bench_memory.py: the capped run fails when the process needs more than the cap and passes when it
needs less, so "passes under 3 GB" means something; weights read through mmap do not count against the cap."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_memory  # noqa: E402

# held for 1.5 s: the benchmark samples the processes' memory every 0.5 s
TOUCH = ("import time; b = bytearray({n}); b[::4096] = b'x' * len(b[::4096]); print('held', len(b)); "
         "time.sleep(1.5)")


@pytest.fixture
def cgroups():
    try:
        bench_memory.Cgroup("interp-claims-test-probe", 10**9).remove()
    except OSError as e:
        pytest.skip(f"needs a writable cgroup memory controller (root on Linux): {e}")


def _bench(tmp_path, monkeypatch, program: str, limit_gb: float) -> tuple[int, dict]:
    monkeypatch.setattr(bench_memory, "model_files", lambda model: [])
    out = tmp_path / "memory.json"
    cmd = f"{sys.executable} -c \"{program}\""
    rc = bench_memory.main(["--models", "any", "--limit", str(limit_gb), "--command", cmd, "--json", str(out)])
    return rc, json.loads(out.read_text())["rows"][0]


def test_a_process_that_needs_more_than_the_cap_fails_the_capped_run(cgroups, tmp_path, monkeypatch):
    rc, row = _bench(tmp_path, monkeypatch, TOUCH.format(n=600_000_000), 0.3)
    assert row["free"]["exit"] == 0 and row["free"]["peak_anon_gb"] >= 0.55
    assert rc == 1 and row["capped"]["exit"] != 0 and row["capped"]["oom_kills"] >= 1, row


def test_a_process_within_the_cap_passes_and_mapped_files_do_not_count(cgroups, tmp_path, monkeypatch):
    """50 MB of its own memory and a 400 MB file read through mmap, under a 0.3 GB cap: the file's pages are dropped
    as it goes (the weights of a model the claim is not using are such pages)."""
    big = tmp_path / "weights.bin"
    big.write_bytes(b"\1" * 400_000_000)
    bench_memory.drop_cached([big])
    program = (f"import mmap; f = open('{big}', 'rb'); m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ); "
               "s = sum(m[i] for i in range(0, len(m), 4096)); " + TOUCH.format(n=50_000_000))
    rc, row = _bench(tmp_path, monkeypatch, program, 0.3)
    assert rc == 0 and row["capped"]["exit"] == 0 and row["capped"]["oom_kills"] == 0, row
