"""Two runs at once with one ``--artifacts`` (two CI steps in one workspace, a run started while another is going):
both keep their verdicts. The first holds the folder; the second writes its figures and reports to a folder of its
own under ``runs/`` and says where (probes/artifacts.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from probes.artifacts import LOCK, RUNS

ROOT = Path(__file__).resolve().parents[1]

# a plugin of the test: the first run waits at its end, its reports not yet written, until the test lets it go
GATE = '''
import os, time, pytest

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    gate = os.environ.get("HOLD_UNTIL")
    if gate and not hasattr(session.config, "workerinput"):
        open(gate + ".waiting", "w").close()
        t = time.time()
        while not os.path.exists(gate) and time.time() - t < 300:
            time.sleep(0.2)
'''


def _run(art: Path, tmp: Path, test: str, gate: Path | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{tmp}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    if gate is not None:
        env["HOLD_UNTIL"] = str(gate)
    return subprocess.Popen([sys.executable, "-m", "pytest", "claims/test_ioi.py", "-k", test, "-p", "no:cacheprovider",
                             "-p", "no:xdist", "-p", "hold_gate", "-o", "addopts=", "-q", "--models", "gpt2-organism",
                             f"--artifacts={art}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_runs_with_one_artifacts_folder_keep_both_verdicts(tmp_path):
    (tmp_path / "hold_gate.py").write_text(GATE)
    art, gate = tmp_path / "art", tmp_path / "gate"
    first = _run(art, tmp_path, "behaviour", gate)
    t = time.time()
    while not Path(f"{gate}.waiting").exists():  # the first run has measured and holds the folder
        assert first.poll() is None and time.time() - t < 600, first.communicate()[0][-3000:]
        time.sleep(0.2)
    second = _run(art, tmp_path, "few_heads")
    out2 = second.communicate(timeout=900)[0]
    gate.touch()
    out1 = first.communicate(timeout=300)[0]
    assert first.returncode == 0 and second.returncode == 0, out1[-2000:] + out2[-2000:]
    # the first run's reports are where it was told; the second run's in its own folder, named in its output
    r1 = json.loads((art / "report.json").read_text())
    own = [p for p in (art / RUNS).iterdir()]
    assert len(own) == 1 and own[0].name.endswith(f"-{second.pid}"), own
    r2 = json.loads((own[0] / "report.json").read_text())
    assert [r["claim"] for r in r1["results"]] == ["ioi.behaviour"], r1["results"]
    assert [r["claim"] for r in r2["results"]] == ["ioi.head_patching"], r2["results"]
    assert all(r["verdict"] == "holds" for r in r1["results"] + r2["results"])
    assert "is in use by another run" in out2 and f"{own[0].relative_to(ROOT) if own[0].is_relative_to(ROOT) else own[0]}" in out2
    assert f"report: {own[0] / 'report.md'}" in out2 and f"report: {art / 'report.md'}" in out1
    # each run's figure is in its own folder, and the lock is free again
    assert (art / "gpt2-organism" / "ioi.behaviour.png").is_file()
    assert (own[0] / "gpt2-organism" / "ioi.head_patching.png").is_file()
    assert not (art / "gpt2-organism" / "ioi.head_patching.png").exists()
    from probes.artifacts import RunFolder
    again = RunFolder.take(art)
    assert not again.own and (art / LOCK).is_file()
    again.release()
