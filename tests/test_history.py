"""A finding's history: ``--history DIR`` (append-only, whole lines under concurrent writers), the HTML report's
effect plots across runs and across a series of candidates, and the nightly merge of report.json files (the merge
job's step, run verbatim)."""
from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from probes import history
from probes.render import plots
from probes.results import ClaimResult, RunInfo
from probes import verdicts

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"


def claims(tmp: Path, *args: str, files=("claims/test_ioi.py",)) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "pytest", *files, "-p", "no:cacheprovider", "-p", "no:xdist", "-o",
                           "addopts=", "-q", f"--artifacts={tmp / 'art'}", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def browser(tmp: Path) -> list[str]:
    """A headless Chromium command line (a failure in CI without chromium, a skip elsewhere)."""
    from tests.test_drill import chromium
    found = chromium()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (`apt-get install chromium`; .ci/run installs it)")
        pytest.skip("needs chromium (`apt-get install chromium`) to render the page")
    return [found, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-background-networking", "--disable-extensions", f"--user-data-dir={tmp / 'profile'}"]


def rendered(page: Path, tmp: Path) -> str:
    """The page's DOM after a headless Chromium loaded it."""
    return subprocess.run(browser(tmp) + ["--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120).stdout


def test_history_over_three_versions_is_appended_and_plotted(versions, tmp_path):
    """Baseline, a drifted copy and a damaged copy, run one after the other with --history: three whole lines, the
    earlier ones never rewritten, and report.html plots each claim's effect over the three runs, the break marked."""
    hist = tmp_path / "hist"
    first = None
    for m in ("gpt2-organism", f"gpt2-organism={versions['drifted']}", f"gpt2-organism={versions['damaged']}"):
        r = claims(tmp_path, "-k", "behaviour or head_norms", "--models", m, "--history", str(hist))
        assert f"history: run appended to {hist / 'history.jsonl'}" in r.stdout, r.stdout[-2000:]
        first = first or (hist / "history.jsonl").read_bytes()
    text = (hist / "history.jsonl").read_bytes()
    assert text.startswith(first)  # append-only
    runs = [json.loads(x) for x in text.splitlines()]
    assert [r["exit_status"] for r in runs] == [0, 0, 1]  # the drifted copy's moves are within noise
    assert [r["models"] for r in runs] == [["gpt2-organism"], ["gpt2-organism@drifted"], ["gpt2-organism@damaged"]]
    hashes = [r["provenance"][0]["weights_sha256"]["model.safetensors"] for r in runs]
    assert len(set(hashes)) == 3 and all(re.fullmatch("[0-9a-f]{64}", h) for h in hashes)
    assert all(r["packages"]["torch"] and r["device"] and r["dtype"] == "float32" and r["command"] for r in runs)
    beh = [next(x for x in r["results"] if x["claim"] == "ioi.behaviour") for r in runs]
    assert [b["verdict"] for b in beh] == [verdicts.HOLDS, verdicts.NOISE, verdicts.BROKEN]
    assert beh[0]["roles"]["accuracy"] == "effect" and beh[0]["numbers"]["n_prompts"] > 20
    assert beh[1]["drift"]["summary"].startswith("effect ")
    # the trend: one point per run in each claim's lineage, the damaged run's break marked
    pts = history.points([history.as_run(r) for r in runs])["ioi.behaviour"]["gpt2-organism"]
    assert [p["verdict"] for p in pts] == [verdicts.HOLDS, verdicts.NOISE, verdicts.BROKEN] and "mean_logit_diff" in pts[0]["values"]
    # a broken claim hands its numbers before its criterion decides: a point inside its band, far below the others
    assert pts[2]["values"]["mean_logit_diff"] < 0.1 * pts[0]["values"]["mean_logit_diff"]
    page = tmp_path / "art" / "report.html"
    html = page.read_text()
    assert html.count("class='trend'") == 2 and "3 run(s) in" in html
    dom = rendered(page, tmp_path)
    m = re.search(r'data-figures="(\d+)" data-figures-loaded="(\d+)"', dom)
    assert m and m.group(1) == m.group(2) and int(m.group(1)) >= 3, dom[:500]  # the trends decoded in a browser
    assert dom.count('class="trend"') == 2


def _append_many(folder: str, tag: str, n: int) -> None:
    for i in range(n):
        history.append(Path(folder), {"tag": tag, "i": i, "results": [], "pad": "x" * 20000})  # lines far over a pipe buffer


def test_concurrent_runs_append_whole_lines(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ps = [ctx.Process(target=_append_many, args=(str(tmp_path), t, 40)) for t in "ab"]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60)
    runs, bad = history.load(tmp_path)
    assert not bad and len(runs) == 80
    for t in "ab":  # each writer's lines whole and in its order
        assert [r.record["i"] for r in runs if r.record["tag"] == t] == list(range(40))


def test_a_damaged_history_line_is_named_and_left_alone(tmp_path):
    history.append(tmp_path, {"when": "1", "results": []})
    with open(tmp_path / "history.jsonl", "ab") as f:
        f.write(b'{"when": "2", "resu\n')  # e.g. a disk filled up mid-line, written by another tool
        f.write(b'{"when": "2b", "results": "of another format"}\n')  # or a line of another format
    history.append(tmp_path, {"when": "3", "results": []})
    before = (tmp_path / "history.jsonl").read_bytes()
    runs, bad = history.load(tmp_path)
    assert [r.when for r in runs] == ["1", "3"] and bad == [
        f"{tmp_path / 'history.jsonl'}:2 is not a JSON line (left as it is, not plotted)",
        f"{tmp_path / 'history.jsonl'}:3 is not a run of this history format (an object with 'results', each with "
        "'claim' and 'model'; left as it is, not plotted)"]
    assert (tmp_path / "history.jsonl").read_bytes() == before


def test_nightly_merge_step_merges_two_reports(tmp_path):
    """The workflow's merge step, verbatim, on the report.json files of two real runs (two models): one verdict
    table, one HTML report, the history started, the step summary written."""
    for name, model in (("small", "gpt2-organism"), ("neo", "gpt-neo-organism")):
        claims(tmp_path / name, "-k", "behaviour", "--models", model)
        (tmp_path / "reports" / f"claims-{name}").mkdir(parents=True)
        (tmp_path / name / "art" / "report.json").rename(tmp_path / "reports" / f"claims-{name}" / "report.json")
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["merge"]
    step = next(s for s in job["steps"] if s.get("id") == "merge")
    summary, out = tmp_path / "summary.md", tmp_path / "github_output"
    env = dict(os.environ, GITHUB_STEP_SUMMARY=str(summary), GITHUB_OUTPUT=str(out), PYTHONPATH=str(ROOT))
    r = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert out.read_text().strip() == "status=0"
    merged = json.loads((tmp_path / "reports" / "merged" / "report.json").read_text())
    assert merged["meta"]["models"] == ["gpt-neo-organism", "gpt2-organism"] and merged["meta"]["merged_from"] == 2
    assert {(x["claim"], x["model"]) for x in merged["results"]} == {
        ("ioi.behaviour", "gpt2-organism"), ("ioi.behaviour", "gpt-neo-organism")}
    assert re.search(r"\| `ioi.behaviour` \| holds: mean_logit_diff [\d.]+ \[[\d.]+, [\d.]+\] \| holds: mean_logit_diff ",
                     summary.read_text()), summary.read_text()[:800]
    assert len((tmp_path / "history" / "history.jsonl").read_text().splitlines()) == 1
    # an unreadable input is named, exit 2, nothing written
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    r = subprocess.run([sys.executable, "-m", "probes.merge", str(tmp_path / "m2"), str(bad)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2 and f"cannot read {bad}" in r.stderr and not (tmp_path / "m2").exists()


TRAJECTORY = ROOT / "fixtures" / "organisms" / "trajectory" / "gpt2-organism"


def test_training_trajectory_shows_when_findings_emerge(tmp_path):
    """Four checkpoints of gpt2-organism's training recipe, run as a series of candidates (in the order given):
    the size behaviour holds from step 400 on, IOI only from step 1600 (README, "A training trajectory"); the HTML
    report plots both claims' effect across the checkpoints."""
    steps = [400, 900, 1600, 2600]
    models = ",".join(f"gpt2-organism={TRAJECTORY / f'step-{s}'}" for s in steps)
    r = claims(tmp_path, "-k", "behaviour", "--models", models, files=("claims/test_ioi.py", "claims/test_neuron.py"))
    assert r.returncode == 1, r.stdout[-3000:]  # the early checkpoints break IOI
    res = {(x["claim"], x["model"].split("@")[1]): x for x in json.loads((tmp_path / "art" / "report.json")
                                                                        .read_text())["results"]}
    ioi = [res[("ioi.behaviour", f"step-{s}")]["verdict"] for s in steps]
    size = [res[("neuron.behaviour", f"step-{s}")]["verdict"] for s in steps]
    assert ioi == [verdicts.BROKEN, verdicts.BROKEN, verdicts.MOVED, verdicts.MOVED], ioi
    assert size == [verdicts.MOVED] * 4, size
    assert "IO>S on" in res[("ioi.behaviour", "step-900")]["message"]
    rep = json.loads((tmp_path / "art" / "report.json").read_text())
    results = [ClaimResult.from_json(x) for x in rep["results"]]
    pts = history.points([history.as_run(history.run_record(results, RunInfo.from_json(rep["meta"]), rep["exit_status"]))])
    assert [p["x"] for p in pts["neuron.behaviour"]["gpt2-organism"]] == [f"step-{s}" for s in steps]
    acc = [p["values"].get("templated_accuracy") for p in pts["neuron.behaviour"]["gpt2-organism"]]
    assert all(a is not None and a >= 0.9 for a in acc)
    html = (tmp_path / "art" / "report.html").read_text()
    assert html.count("class='trend'") == 2


def test_trend_points_line_up_by_run_across_models_and_candidates():
    """Several models over several runs share one x axis (one slot per run); candidates of one lineage within a run
    take one slot each, in the order given."""
    def res(model, v, verdict=verdicts.HOLDS, baseline=None):
        return {"claim": "c", "model": model, "baseline": baseline, "verdict": verdict, "layer": None,
                "numbers": {"e": v, "top": [{"id": "a", "d": -v}, {"id": "b", "d": v}]},
                "roles": {"e": "effect", "top[].d": "effect", "top[].id": "identity"}}
    runs = [{"when": "2026-12-01 03:17", "models": ["m1", "m2"], "results": [res("m1", 1.0), res("m2", 2.0)]},
            {"when": "2026-12-02 03:17", "models": ["m2", "m1"],
             "results": [res("m1", 1.1), res("m2", 0.0, verdicts.BROKEN)]}]
    runs = [history.as_run(r) for r in runs]
    pts = history.points(runs)["c"]
    assert [p["slot"] for p in pts["m1"]] == [(0, 0), (1, 0)] and [p["slot"] for p in pts["m2"]] == [(0, 0), (1, 0)]
    assert pts["m1"][1]["values"] == {"e": 1.1, "mean |top.d|": 1.1} and pts["m2"][1]["verdict"] == verdicts.BROKEN
    one = [{"when": "2026-12-02", "models": ["m1", "m1@ckpt-a", "m1@ckpt-b"],
            "results": [res("m1@ckpt-b", 3.0, baseline="m1"), res("m1", 1.0), res("m1@ckpt-a", 2.0, baseline="m1")]}]
    one = [history.as_run(r) for r in one]
    pts = history.points(one)["c"]["m1"]
    assert [(p["x"], p["values"]["e"]) for p in pts] == [("m1", 1.0), ("ckpt-a", 2.0), ("ckpt-b", 3.0)]
    assert set(plots.trends(runs)) == {"c"} and set(plots.trends(one)) == {"c"}


V2 = ROOT / "tests" / "data" / "report_v2.json"  # a report.json of version 2 (6518fc3's format), trimmed


def test_version_2_reports_and_history_lines_still_merge_and_plot(tmp_path):
    """A report.json of version 2 merges beside a current one (its drifts rebuilt from their moves, its cells
    drawn by the current renderer); a history line of version 2 plots; a version 1 report is named and skipped."""
    v2 = json.loads(V2.read_text())
    old = tmp_path / "old.json"
    old.write_text(json.dumps(v2))
    v1 = tmp_path / "v1.json"
    v1.write_text(json.dumps({**v2, "version": 1}))
    r = subprocess.run([sys.executable, "-m", "probes.merge", str(tmp_path / "merged"), str(old), str(v1)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 6, r.stdout[-2000:] + r.stderr[-2000:]  # the drill's own status: its table has changes
    assert f"skipped {v1}: report.json written by an interp-claims whose reports are version 1" in r.stderr
    merged = json.loads((tmp_path / "merged" / "report.json").read_text())
    assert merged["version"] == 3 and len(merged["results"]) == len(v2["results"])
    assert all(x["schema"] == 3 for x in merged["results"])
    md = (tmp_path / "merged" / "report.md").read_text()
    assert "| `ioi.behaviour` | holds within noise: mean_logit_diff 4.69 [4.41, 5.01] (was 4.75 [4.46, 5.07], -1.4%)" \
        in md, md[:2000]
    assert "mean_logit_diff: 4.754802 -> 4.690499 (moved -0.0643: -1.4% of its recorded value, 13.2x tolerance)" \
        in md  # the move's line, rewritten from its data (version 2 kept the recorded interval only in its text)
    # as a history line (a version-2 history has no version field): it plots
    history.append(tmp_path / "hist", {k: v for k, v in {**v2, "version": None}.items() if k != "version"} | {
        "when": v2["meta"]["when"], "models": v2["meta"]["models"]})
    runs, bad = history.load(tmp_path / "hist")
    assert not bad and len(runs) == 1
    assert history.points(runs)["ioi.behaviour"]["smollm2-135m"][0]["values"]["mean_logit_diff"] > 4
