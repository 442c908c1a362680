"""The new-version drill: candidate runs (``--models <id>=<source>``), a verdict per claim x model, exit status,
reports (Markdown, self-contained HTML checked in a real headless browser), figures written before the snapshot
comparison, and half-precision runs compared with the float32 snapshots."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from probes import devices
from probes import verdicts
from probes.results import ClaimResult

ROOT = Path(__file__).resolve().parents[1]
BEHAVIOUR = "test_behaviour_prefers_indirect_object"


def claims(tmp: Path, *args: str, snaps: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    where = ["-o", f"claims_snapshots={snaps}"] if snaps is not None else []
    return subprocess.run([sys.executable, "-m", "pytest", "claims/test_ioi.py", "-p", "no:cacheprovider", "-p",
                           "no:xdist", "-o", "addopts=", *where, "-q", f"--artifacts={tmp / 'art'}", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def report(tmp: Path) -> dict:
    return json.loads((tmp / "art" / "report.json").read_text())


def test_candidates_beside_the_baseline_get_verdicts_and_exit_status(versions, tmp_path):
    r = claims(tmp_path, "-k", "behaviour", "--models",
               f"gpt2-organism,gpt2-organism={versions['drifted']},gpt2-organism={versions['damaged']}")
    assert r.returncode == 1, r.stdout[-3000:]  # the damaged version broke a claim
    res = {x["model"]: x for x in report(tmp_path)["results"]}
    assert res["gpt2-organism"]["verdict"] == verdicts.HOLDS
    # 2% weight noise moves the behaviour by about 1%, inside the recorded 95% interval: noise, not a change
    assert res["gpt2-organism@drifted"]["verdict"] == verdicts.NOISE
    h = res["gpt2-organism@drifted"]["headline"]
    assert h["old_ci"][0] <= h["value"] <= h["old_ci"][1] and h["value"] != h["old"]
    assert res["gpt2-organism@damaged"]["verdict"] == verdicts.BROKEN and "IO>S on" in res["gpt2-organism@damaged"]["message"]
    # a broken claim shows its numbers: its headline effect with its interval beside the recorded one, every
    # moved number compared with the snapshot (never recorded), and its figure
    dmg = res["gpt2-organism@damaged"]
    h = dmg["headline"]
    assert h["path"] == "mean_logit_diff" and h["old"] is not None and h["value"] < h["old_ci"][0] and h["ci"]
    assert any(m.startswith("[effect] mean_logit_diff:") for m in dmg["moved"])
    assert any(f.endswith("gpt2-organism@damaged/ioi.behaviour.png") for f in dmg["figures"])
    assert "broken: ioi.behaviour x gpt2-organism@damaged: AssertionError: IO>S on" in r.stdout
    assert f"(was {h['old']:.3g} [" in r.stdout
    # candidates are compared with the registry entry's own snapshot, and measured under its expectations
    snap = f"snapshots/test_ioi/{BEHAVIOUR}[gpt2-organism].json"
    assert res["gpt2-organism@drifted"]["snapshot"] == snap and res["gpt2-organism@drifted"]["baseline"] == "gpt2-organism"
    # the terminal: one line per claim x model that moved (severity, effect change); every moved number, with its
    # role, old -> new, its change in percent and in units of tolerance, its interval, is in the reports
    moved = res["gpt2-organism@drifted"]["moved"]
    assert moved and all("->" in m and "tolerance" in m and m.startswith("[") for m in moved)
    assert all(m.endswith("within noise") for m in moved) and any("paired change [" in m or "recorded interval ["
                                                                  in m for m in moved)
    drift = res["gpt2-organism@drifted"]["drift"]
    assert drift["level"] == "noise" and not drift["significant"] and drift["summary"].startswith("effect ")
    line = "ioi.behaviour x gpt2-organism@drifted: mean_logit_diff"
    assert line in r.stdout and not any(m in r.stdout for m in moved)
    md = (tmp_path / "art" / "report.md").read_text()
    assert all(m in md for m in moved) and f"every moved number: {tmp_path / 'art' / 'report.md'}" in r.stdout
    assert verdicts.NOISE in r.stdout and "exit status 1" in r.stdout
    # pytest's own tally agrees with the verdicts: the drifted claim holds, it is not a failure
    import re
    assert re.search(r"1 failed, 2 passed, \d+ deselected in", r.stdout.splitlines()[-1]), r.stdout[-300:]
    # only the drifted candidate: within noise -> exit 0; with significance "floor" (any move beyond the float
    # floor counts, as this project's own CI runs) the same moves are a change -> exit 6
    r = claims(tmp_path, "-k", "behaviour", "--models", f"gpt2-organism={versions['drifted']}")
    assert r.returncode == 0 and report(tmp_path)["results"][0]["verdict"] == verdicts.NOISE, r.stdout[-3000:]
    r = claims(tmp_path, "-k", "behaviour", "--models", f"gpt2-organism={versions['drifted']}", "--significance=floor")
    assert r.returncode == verdicts.EXIT_DRIFT and report(tmp_path)["results"][0]["verdict"] == verdicts.MOVED, r.stdout[-3000:]
    assert re.search(r"1 changed in", r.stdout.splitlines()[-1]), r.stdout[-300:]
    # the recorded model itself as a candidate reproduces its snapshot -> exit 0
    r = claims(tmp_path, "-k", "behaviour", "--models", "gpt2-organism=fixtures/organisms/gpt2-organism")
    assert r.returncode == 0, r.stdout[-3000:]
    assert report(tmp_path)["results"][0]["verdict"] == verdicts.HOLDS


def test_figures_are_written_before_the_snapshot_comparison(tmp_path):
    """With no snapshot recorded, the claim holds, its verdict says so (exit 6), and its figure was still written
    and listed; nothing is written under snapshots/."""
    snaps = tmp_path / "empty-snapshots"
    snaps.mkdir()
    r = claims(tmp_path, "-k", "behaviour", "--models", "gpt2-organism", snaps=snaps)
    assert r.returncode == verdicts.EXIT_DRIFT, r.stdout[-3000:]
    (res,) = report(tmp_path)["results"]
    assert res["verdict"] == verdicts.UNRECORDED
    fig = tmp_path / "art" / "gpt2-organism" / "ioi.behaviour.png"
    assert fig.is_file() and str(fig) in res["figures"] and "figures written: 1" in r.stdout
    assert not any(snaps.iterdir())


def test_a_folder_named_like_a_registry_id_does_not_take_it_over(tmp_path):
    fake = tmp_path / "gpt2-organism"
    shutil.copytree(ROOT / "fixtures" / "organisms" / "gpt2-organism", fake)
    r = claims(tmp_path, "--models", str(fake))
    assert r.returncode == 4 and f"--models gpt2-organism={fake}" in r.stderr, r.stderr[-2000:]
    # the registry's own folder is the registry model (and naming it twice is refused)
    r = claims(tmp_path, "--models", "gpt2-organism,fixtures/organisms/gpt2-organism")
    assert r.returncode == 4 and "are the same model" in r.stderr, r.stderr[-2000:]


@pytest.mark.parametrize("args,why", [
    (["--models", "gpt2-organism=fixtures/organisms/gpt2-organism", "--record"], "never recorded over them"),
    (["--models", "nope=fixtures/organisms/gpt2-organism"], "'nope' is not a registry id"),
    (["--models", "gpt2-organism=fixtures/organisms/bert-organism"], "same kind of model"),
    (["--models", "gpt2-organism=openai-community/gpt2"], "pin the candidate's revision"),
    (["--models", "gpt2-organism=gpt-neo-organism"], "not a registry id"),
])
def test_bad_candidate_and_recording_input_is_a_usage_error(tmp_path, args, why):
    snaps_before = sorted(p.stat().st_mtime for p in (ROOT / "snapshots").rglob("*.json"))
    r = claims(tmp_path, *args)
    assert r.returncode == 4 and why in r.stderr, r.stderr[-2000:]
    assert snaps_before == sorted(p.stat().st_mtime for p in (ROOT / "snapshots").rglob("*.json"))


def test_half_precision_run_is_compared_with_the_float32_snapshot(tmp_path):
    r = claims(tmp_path, "-k", "behaviour", "--models", "gpt2-organism", "--dtype", "bfloat16")
    # warned where half precision is emulated (a CPU without AVX512-BF16 / AMX), not where it is native
    assert ("half precision is emulated" in r.stdout + r.stderr) == (not devices.native_half("bfloat16"))
    (res,) = report(tmp_path)["results"]
    assert res["model"] == "gpt2-organism-bfloat16"
    assert res["snapshot"] == f"snapshots/test_ioi/{BEHAVIOUR}[gpt2-organism].json"
    assert res["verdict"] == verdicts.HOLDS and r.returncode == 0, r.stdout[-3000:]  # within the measured bfloat16 floors
    assert res["against"] == "float32 snapshot, bfloat16 floors"
    assert "judged by the bfloat16 noise floors measured against them" in r.stdout
    assert f"(was {res['headline']['old']:.3g} [" in r.stdout  # the recorded float32 value beside the measured one
    assert (tmp_path / "art" / "gpt2-organism-bfloat16" / "ioi.behaviour.png").is_file()


def test_a_bfloat16_recording_is_its_own_snapshot(tmp_path):
    """--record --dtype bfloat16 writes [<model>-bfloat16] beside the float32 file (which stays as it is); a
    later bfloat16 run is compared with it, and a float32 run still with the float32 one."""
    snaps = tmp_path / "snaps"
    shutil.copytree(ROOT / "snapshots" / "test_ioi", snaps / "test_ioi")
    f32 = snaps / "test_ioi" / f"{BEHAVIOUR}[gpt2-organism].json"
    before = f32.read_text()
    r = claims(tmp_path, "-k", "behaviour", "--models", "gpt2-organism", "--dtype", "bfloat16", "--record",
               snaps=snaps)
    assert r.returncode == 0, r.stdout[-3000:]
    own = snaps / "test_ioi" / f"{BEHAVIOUR}[gpt2-organism-bfloat16].json"
    assert json.loads(own.read_text())["_recorded_with"]["dtype"] == "bfloat16" and f32.read_text() == before
    r = claims(tmp_path, "-k", "behaviour", "--models", "gpt2-organism", "--dtype", "bfloat16", snaps=snaps)
    (res,) = report(tmp_path)["results"]
    assert res["snapshot"].endswith(f"{BEHAVIOUR}[gpt2-organism-bfloat16].json"), res["snapshot"]
    # recorded without floors: judged by the declared half-precision tolerance until calibrate.py measures them
    assert res["verdict"] == verdicts.HOLDS and r.returncode == 0, r.stdout[-3000:]
    assert res["against"].startswith("bfloat16 snapshot, no bfloat16 floors measured")
    assert "1 with their own bfloat16 snapshots; 1 of them without measured bfloat16 floors" in r.stdout
    r = claims(tmp_path, "-k", "behaviour", "--models", "gpt2-organism", snaps=snaps)
    (res,) = report(tmp_path)["results"]
    assert res["snapshot"].endswith(f"{BEHAVIOUR}[gpt2-organism].json") and res["verdict"] == verdicts.HOLDS


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_html_report_renders_in_a_headless_browser(versions, tmp_path):
    browser = chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (`apt-get install chromium`; .ci/run installs it)")
        pytest.skip("needs chromium (`apt-get install chromium`) to render the HTML report")
    claims(tmp_path, "-k", "behaviour or head_norms", "--models", f"gpt2-organism,gpt2-organism={versions['drifted']}",
           "--significance=floor")
    page = tmp_path / "art" / "report.html"
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-background-networking", "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(flags + ["--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert "id=\"verdicts\"" in dom and "gpt2-organism@drifted" in dom and verdicts.MOVED in dom
    import re
    m = re.search(r'data-figures="(\d+)" data-figures-loaded="(\d+)"', dom)
    # every embedded figure decoded: 2 claims x 2 models, and per claim its effect across the two models and its
    # forest plot (the headline effect with its interval, per model and the recorded value)
    assert m and int(m.group(1)) == 8 and m.group(1) == m.group(2), dom[:500]
    assert dom.count("class=\"trend\"") == 2 and dom.count("class=\"forest\"") == 2
    shot = tmp_path / "report.png"
    subprocess.run(flags + ["--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    import matplotlib.image as mpimg
    img = mpimg.imread(shot)
    assert img.shape[0] == 1600 and img[..., :3].std() > 0.05  # a rendered page, not a blank one
    # nothing outside the file is needed: no external src/href but the figures' data URIs and in-page anchors
    html = page.read_text()
    assert not re.search(r'src="(?!data:)', html)


def test_verdicts_classify_and_exit_status():
    class Exc:
        def __init__(self, e):
            self.value = e
    assert verdicts.classify("setup", "failed", None, None, False) == verdicts.ERROR
    assert verdicts.classify("call", "skipped", None, "registry: ...", False) == verdicts.KNOWN
    assert verdicts.classify("call", "failed", None, None, True) == verdicts.NEWLY
    assert verdicts.classify("call", "failed", Exc(AssertionError("x")), None, False) == verdicts.BROKEN
    from probes.errors import PreconditionFailed
    assert verdicts.classify("call", "failed", Exc(PreconditionFailed("no IOI")), None, False) == verdicts.PRECONDITION
    assert verdicts.classify("call", "passed", None, None, False, verdicts.MOVED) == verdicts.MOVED  # a drift is not a failure
    assert verdicts.classify("call", "passed", None, None, False, verdicts.UNRECORDED) == verdicts.UNRECORDED
    assert verdicts.classify("call", "passed", None, None, False) == verdicts.HOLDS
    assert verdicts.classify("call", "failed", Exc(RuntimeError("x")), None, False) == verdicts.ERROR
    def r(v):
        return ClaimResult("c", "m", v)
    drift = [r(verdicts.MOVED), r(verdicts.HOLDS)]
    assert verdicts.exit_status(0, drift, 0) == 6
    assert verdicts.exit_status(0, drift, 1) == 0 and verdicts.exit_status(1, drift, 1) == 1  # a failure outside the claims
    assert verdicts.exit_status(1, drift + [r(verdicts.BROKEN)], 0) == 1
    assert verdicts.exit_status(0, [r(verdicts.KNOWN)], 0) == 0
    assert verdicts.exit_status(0, [r(verdicts.NOISE), r(verdicts.HOLDS)], 0) == 0  # within noise: exit 0
    assert not any("," in v for v in verdicts.ORDER)  # verdict names never contain a comma


def test_xdist_workers_spread_over_gpus(monkeypatch):
    import torch

    from probes import devices
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw5")
    assert devices.pick_device("auto") == torch.device("cuda:1")
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert devices.pick_device("auto") == torch.device("cuda")


def test_a_lost_precondition_is_named_apart_from_a_failed_finding(versions, tmp_path):
    """On the damaged copy IOI is gone: head patching has nothing to patch. Its verdict says so in its own words
    ('precondition failed', counted apart from 'broken'), exit 1, and its numbers and figure are still reported."""
    r = claims(tmp_path, "-k", "few_heads", "--models", f"gpt2-organism={versions['damaged']}")
    assert r.returncode == 1, r.stdout[-3000:]
    (res,) = report(tmp_path)["results"]
    assert res["verdict"] == verdicts.PRECONDITION and "the model shows no IOI to patch" in res["message"]
    assert res["figures"] and res["headline"]["path"] == "top_k_share"
    assert f"1 {verdicts.PRECONDITION}" in r.stdout and "PreconditionFailed" in r.stdout
