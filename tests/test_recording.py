"""Safe recording: ``--record`` writes (atomically) the snapshot of each claim that passed its criterion in that
run, and never deletes or rewrites the snapshot of a claim that failed, errored or was not selected. syrupy's
``--snapshot-update`` (which deletes such snapshots) is refused."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from probes.loading import load, random_init_like
from fixtures.models import resolve

ROOT = Path(__file__).resolve().parents[1]
SENTINEL = '{"sentinel": "must not change"}\n'


def run(snaps: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "claims/test_ioi.py", "-p", "no:cacheprovider", "-p",
                           "no:xdist", "-o", "addopts=", "-o", f"claims_snapshots={snaps}", "-q",
                           f"--artifacts={tmp / 'art'}", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_record_writes_only_claims_that_passed(tmp_path):
    lm = load(resolve("gpt2-organism"), device="cpu")
    rnd = random_init_like(lm, seed=7)
    folder = tmp_path / "broken-organism"
    rnd.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    snaps = tmp_path / "snaps"
    d = snaps / "test_ioi"
    d.mkdir(parents=True)
    passing = d / "test_behaviour_prefers_indirect_object[gpt2-organism].json"
    failing = d / "test_behaviour_prefers_indirect_object[broken-organism].json"
    unselected = d / "test_head_norms_are_head_specific[gpt2-organism].json"
    for f in (passing, failing, unselected):
        f.write_text(SENTINEL)
    r = run(snaps, tmp_path, "-k", "behaviour", "--models", f"gpt2-organism,{folder}", "--record")
    assert r.returncode == 1, r.stdout[-2000:]  # the damaged model fails its criterion
    assert "1 failed, 1 passed" in r.stdout
    new = json.loads(passing.read_text())
    assert new["accuracy"] >= 0.9 and new["_recorded_with"]["model"] == "gpt2-organism"  # re-recorded
    assert failing.read_text() == SENTINEL and unselected.read_text() == SENTINEL  # untouched
    assert sorted(p.name for p in d.iterdir()) == sorted(f.name for f in (passing, failing, unselected))  # no temp files
    # a normal run compares against what was recorded, writes nothing
    before = {p: p.read_text() for p in d.iterdir()}
    r = run(snaps, tmp_path, "-k", "behaviour", "--models", "gpt2-organism")
    assert r.returncode == 0, r.stdout[-2000:]
    assert before == {p: p.read_text() for p in d.iterdir()}


def test_snapshot_update_is_refused(tmp_path):
    snaps = tmp_path / "snaps"
    (snaps / "test_ioi").mkdir(parents=True)
    keep = snaps / "test_ioi" / "test_behaviour_prefers_indirect_object[gpt2-organism].json"
    keep.write_text(SENTINEL)
    r = run(snaps, tmp_path, "-k", "behaviour", "--models", "gpt2-organism", "--snapshot-update")
    assert r.returncode == 4 and "--snapshot-update is disabled" in r.stderr and "--record" in r.stderr
    assert keep.read_text() == SENTINEL


def test_interrupted_parallel_record_deletes_nothing(tmp_path):
    """Ctrl-C (SIGINT) during `--record -n 2`: every snapshot is either untouched or a whole new file of a claim
    that passed before the interrupt; none is deleted, no temporary file is left. The run records the grammar
    claims first and the IOI claims (whose snapshots exist) after them, and is interrupted as soon as the first
    grammar snapshot is written: with many claims still to run, the interrupt lands mid-run even on a loaded
    machine. The child gets SIGINT's default disposition: under a runner that starts jobs in the background the
    signal is inherited as ignored, the interrupt did nothing and the run completed (exit 0)."""
    import signal
    import time
    snaps = tmp_path / "snaps"
    d = snaps / "test_ioi"
    d.mkdir(parents=True)
    names = ["test_behaviour_prefers_indirect_object", "test_silencing_some_heads_lowers_ioi",
             "test_head_norms_are_head_specific", "test_heads_tell_first_from_second_mention",
             "test_few_heads_carry_the_patching_effect"]
    files = [d / f"{n}[{m}].json" for n in names for m in ("gpt2-organism", "gpt-neo-organism")]
    for f in files:
        f.write_text(SENTINEL)
    grammar = snaps / "test_grammar"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-m", "pytest", "claims/test_grammar.py", "claims/test_ioi.py", "-p",
                          "no:cacheprovider", "-n", "2", "--models", "gpt2-organism,gpt-neo-organism", "--record",
                          f"--artifacts={tmp_path / 'art'}", "-o", f"claims_snapshots={snaps}"],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True,  # its own process group, as a terminal's foreground job
                         # Ctrl-C as a terminal delivers it: a job a shell started in the background (a CI runner's)
                         # inherits SIGINT ignored, and Python then keeps ignoring it
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while time.time() < deadline and not any(grammar.glob("*.json")) and p.poll() is None:
        time.sleep(0.2)  # interrupt once the first claim has been recorded, while others are still running
    os.killpg(p.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group, the xdist workers too
    out, _ = p.communicate(timeout=300)
    assert p.returncode != 0, out[-2000:]  # interrupted (2), not a completed run
    written = sorted(grammar.glob("*.json"))
    assert written, out[-2000:]
    rewritten = [f for f in files if f.read_text() != SENTINEL]
    assert len(rewritten) < len(files), out[-2000:]  # the interrupt stopped the run before its IOI claims ended
    for f in written + rewritten:
        assert json.loads(f.read_text())["_recorded_with"]["model"] in f.name  # a whole, valid snapshot
    assert sorted(p.name for p in d.iterdir()) == sorted(f.name for f in files)  # none deleted, no temp files
    assert all(p.suffix == ".json" for p in grammar.iterdir())  # no temporary file
