"""Nothing silent (issue 52): the mistakes a user and a nightly job still made without a word, each now one line
naming the fix (exit 4 for usage errors, before any model loads), and nothing on disk changed:

- ``--weight-jitter`` of a non-positive size (it perturbed an ordinary run's weights and blamed the model);
- a ``claim_snapshot`` effect, identity, interval or stability path that names no recorded number;
- a claim marker's ``kinds=`` that no adapter knows (the claim was skipped, the run green);
- a claim that records no numbers (it held, and a later version could never be compared with it);
- ``probes.merge`` with an unreadable input (every other job's verdicts were thrown away);
- ``scripts/docs.py --drill`` on a missing file or a JSON that is not a report (tracebacks);
- a misspelt registry field or option value (the nearest known one is suggested)."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probes import devices
from probes.checks import RECORDS_NOTHING, check_paths
from probes.errors import ClaimSnapshotError, ModelLoadError, UnknownModelError
from probes.registry import load_registry
from tests.test_bad_input import ORGANISM, _no_traceback, _project, _run

ROOT = Path(__file__).resolve().parents[1]
V2 = ROOT / "tests" / "data" / "report_v2.json"


def _files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "artifacts" not in p.parts}


# --- options ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", ["-1", "0"])
def test_a_weight_jitter_that_is_not_positive_is_a_usage_error(tmp_path, size):
    """The issue's command, as written: a usage error naming scripts/calibrate.py, before any model loads (the
    artifacts folder is not even created)."""
    art = tmp_path / "art"
    r = subprocess.run([sys.executable, "-m", "pytest", "claims/test_ioi.py", "-k", "behaviour", "--models",
                        "gpt2-organism", "--weight-jitter", size, "-p", "no:cacheprovider", "-p", "no:xdist", "-o",
                        "addopts=", f"--artifacts={art}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 4, r.stdout[-2000:] + r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [f"ERROR: --weight-jitter {size}: give a positive size (e.g. 1e-6) or leave it out; it is for "
                     "measuring noise floors (scripts/calibrate.py) and perturbs every weight"], lines
    assert "loading" not in r.stdout + r.stderr and not art.exists()


def test_option_values_of_a_fixed_set_suggest_the_nearest(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--significance", "flor"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 4 and ("argument --significance: 'flor' is not one of interval, floor; did you mean "
                                  "'floor'?") in r.stderr, r.stderr
    with pytest.raises(ModelLoadError, match=r"--device 'gpu' is not a device; .* did you mean 'cuda'\?"):
        devices.check_device_name("gpu")
    with pytest.raises(ModelLoadError, match=r"--device 'gpu:1' .* did you mean 'cuda:1'\?"):
        devices.check_device_name("gpu:1")
    with pytest.raises(ModelLoadError, match=r"--dtype 'bfloat' unknown; .* did you mean 'bfloat16'\?"):
        devices.pick_dtype("bfloat")


# --- the registry -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("line, want", [
    ('familes = ["x"]', "unknown field(s) familes; did you mean 'families'? Fields an entry may have:"),
    ('notes = "n"\nfamiles = ["x"]', "unknown field(s) familes, notes; did you mean 'families' for 'familes', 'note' "
                                     "for 'notes'?"),
    ('colour = "red"', "unknown field(s) colour. Fields an entry may have:"),
    ('kind = "casual"', "kind = \"casual\" is not one of causal, masked, encoder; did you mean 'causal'?"),
])
def test_a_misspelt_registry_field_or_value_names_the_nearest(tmp_path, line, want):
    entry = f'[models.x]\nsource = "local"\npath = "{ORGANISM}"\n'
    entry += line + "\n" + ('kind = "causal"\n' if not line.startswith("kind") else "")
    (tmp_path / "models.toml").write_text(entry)
    with pytest.raises(UnknownModelError) as e:
        load_registry(tmp_path / "models.toml")
    assert want in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_misspelt_registry_field_is_one_line_and_leaves_nothing_on_disk(tmp_path):
    _project(tmp_path, {"m": ORGANISM}, {})
    (tmp_path / "models.toml").write_text((tmp_path / "models.toml").read_text().replace("families", "familes"))
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, out = _run(tmp_path)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert rc == 4 and len(lines) == 1, out[-2000:]
    assert "[models.m]: unknown field(s) familes; did you mean 'families'?" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no artifacts folder either


# --- a claim's marker and numbers ---------------------------------------------------------------------------------
def test_a_claim_kind_no_adapter_knows_is_a_usage_error(tmp_path):
    """kinds=["diffusion"] was skipped with no reason (1 skipped, exit 0): now exit 4 listing the kinds, before any
    model loads; a near miss is named."""
    claim = ("import pytest\n\n@pytest.mark.claim(id='x.{n}', family='x', kinds={kinds})\n"
             "def test_{n}(lm, claim_snapshot):\n    claim_snapshot({{'d': 1.0}}, effect=['d'])\n")
    _project(tmp_path, {"m": ORGANISM}, {"test_diffusion.py": claim.format(n="a", kinds='["diffusion"]'),
                                         "test_casual.py": claim.format(n="b", kinds='("casual",)')})
    before = _files(tmp_path)
    rc, out = _run(tmp_path)
    assert rc == 4, out[-3000:]
    assert ("test_diffusion.py::test_a: kinds=['diffusion'] (in its claim marker): 'diffusion' is not a kind of "
            "model this package knows (causal, masked, encoder); fix the marker") in out, out[-3000:]
    assert "'casual' is not a kind of model this package knows (causal, masked, encoder); did you mean 'causal'?" \
        in out
    assert "loading" not in out
    _no_traceback(out)
    assert _files(tmp_path) == before


def test_an_effect_path_that_names_no_number_is_an_error(tmp_path):
    """claim_snapshot({"score": 0.5}, effect=["scroe"]) recorded and held, judging nothing as an effect: now the
    claim errors with one line naming the path, the recorded numbers and the fix; nothing is recorded."""
    claim = ("import pytest\n\n@pytest.mark.claim(id='x.typo', family='x')\n"
             "def test_typo(lm, claim_snapshot):\n    claim_snapshot({'score': 0.5}, effect=['scroe'])\n")
    _project(tmp_path, {"m": ORGANISM}, {"test_typo.py": claim})
    rc, out = _run(tmp_path, "--record")
    want = ("claim_snapshot: effect path 'scroe' names no recorded number (numbers: score): write 'score', or name a "
            "key of the numbers handed to claim_snapshot")
    assert rc == 1 and f"error: x.typo x m: probes.errors.ClaimSnapshotError: {want}" in out, out[-3000:]
    _no_traceback(out)
    report = json.loads((tmp_path / "artifacts" / "report.json").read_text())
    assert [(r["verdict"], want in r["message"]) for r in report["results"]] == [("error", True)]
    assert not (tmp_path / "snapshots").exists()


@pytest.mark.parametrize("numbers, kw, want", [
    ({"top_heads": [{"head": "1.2", "delta": 1.0}]}, {"effect": ["top_heads[].dleta"]},
     "effect path 'top_heads[].dleta' names no recorded number (numbers at top_heads[]: delta, head): write "
     "'top_heads[].delta'"),
    ({"score": 1.0}, {"identity": ["heads"]}, "identity path 'heads' names no recorded number (numbers: score): name"),
    ({"a": {"bb": {"c": 1}}}, {"effect": "a.b.c"}, "effect path 'a.b.c' names no recorded number (numbers at a: bb): "
                                                  "write 'a.bb.c'"),
    ({"gap": 1.0, "_intervals": {"gpa": [0.0, 2.0]}}, {"effect": ["gap"]},
     "intervals key 'gpa' names no recorded number (numbers: gap): write 'gap'"),
    ({"top": [{"t": 1.0}], "_intervals": {"top": [{"tt": [0, 1]}]}}, {},
     "intervals key 'top[].tt' names no recorded number (numbers at top[]: t): write 'top[].t'"),
    ({"heads": ["1.2"], "_stability": {"head": {"1.2": 1.0}}}, {"identity": ["heads"]},
     "stability key 'head' names no recorded number (numbers: heads): write 'heads'"),
])
def test_role_paths_must_name_recorded_numbers(numbers, kw, want):
    with pytest.raises(ClaimSnapshotError) as e:
        check_paths(numbers, **kw)
    assert want in str(e.value), str(e.value)


def test_role_paths_that_name_numbers_or_nodes_above_them_pass():
    data = {"gap": 1.0, "mean_norm_by_layer": [1.0, 2.0], "top_heads": [{"head": "0.1", "delta": 0.5}],
            "empty": [], "none": None, "nested": {"x": {"y": 1}},
            "_intervals": {"gap": [0.5, 1.5], "top_heads": [{"delta": [0.4, 0.6]}]}, "_stability": {"top_heads": {}}}
    check_paths(data, effect=["gap", "mean_norm_by_layer", "top_heads[].delta", "nested.x", "none"],
                identity=["top_heads[].head", "empty[].id"])


def _literal_roles(fn: ast.FunctionDef) -> tuple | None:
    """The effect and identity paths of a claim's last call of claim_snapshot (the numbers that are recorded), where
    they are literals."""
    calls = [c for c in ast.walk(fn) if isinstance(c, ast.Call) and getattr(c.func, "id", None) == "claim_snapshot"]
    if not calls:
        return None
    kw = {k.arg: k.value for k in max(calls, key=lambda c: (c.lineno, c.col_offset)).keywords}
    try:
        return tuple(ast.literal_eval(kw[k]) if k in kw else () for k in ("effect", "identity"))
    except ValueError:  # a path list built at run time: not checked here
        return None


def test_every_recorded_snapshot_passes_its_claims_role_paths():
    """The check must not refuse a claim of this repository: each claim's literal effect / identity paths against
    its recorded snapshots (their intervals and stabilities included)."""
    checked = 0
    for f in sorted((ROOT / "claims").glob("test_*.py")):
        for fn in ast.walk(ast.parse(f.read_text())):
            if not isinstance(fn, ast.FunctionDef):
                continue
            roles = _literal_roles(fn)
            for snap in (ROOT / "snapshots" / f.stem).glob(f"{fn.name}[[]*.json") if roles else ():
                check_paths(json.loads(snap.read_text()), *roles)
                checked += 1
    assert checked > 100


def test_a_claim_that_records_nothing_is_named_unless_it_says_so(tmp_path):
    """A claim that never calls claim_snapshot held with no numbers and no snapshot, silently: it is named in the
    summary (and its result's message in report.json); records=False on its marker says it is on purpose."""
    claims = ("import pytest\n\n@pytest.mark.claim(id='x.nothing', family='x')\n"
              "def test_nothing(lm):\n    assert lm is not None\n\n\n"
              "@pytest.mark.claim(id='x.quiet', family='x', records=False)\n"
              "def test_quiet(lm):\n    assert lm is not None\n")
    _project(tmp_path, {"m": ORGANISM}, {"test_n.py": claims})
    rc, out = _run(tmp_path)
    assert rc == 0, out[-3000:]
    assert f"x.nothing (m) {RECORDS_NOTHING}" in out.splitlines(), out[-3000:]
    assert "x.quiet (m) records" not in out
    report = json.loads((tmp_path / "artifacts" / "report.json").read_text())
    assert {r["claim"]: (r["verdict"], r["message"]) for r in report["results"]} == {
        "x.nothing": ("holds", RECORDS_NOTHING), "x.quiet": ("holds", "")}


# --- merge and the docs script ------------------------------------------------------------------------------------
def test_merge_writes_every_readable_input_and_names_the_lost_ones(tmp_path):
    """The issue's command: one job killed while its report was written (a truncated file) and a version-1 report
    beside a good one. The merged report of the good one is written; the truncated one is lost (named on the
    terminal and in the report, exit status 2, in the report too, so a merge of merged reports keeps it); the
    version-1 one is named and skipped, as before."""
    for name in ("good", "truncated", "old-v1"):
        (tmp_path / name).mkdir()
    text = V2.read_text()
    (tmp_path / "good" / "report.json").write_text(text)
    (tmp_path / "truncated" / "report.json").write_text(text[:300])
    (tmp_path / "old-v1" / "report.json").write_text(json.dumps({**json.loads(text), "version": 1}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "probes.merge", "out", "good/report.json", "truncated/report.json",
                        "old-v1/report.json"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stdout[-2000:] + r.stderr[-2000:]
    assert "error: cannot read truncated/report.json: " in r.stderr
    assert "warning: skipped old-v1/report.json: report.json written by an interp-claims whose reports are version 1" \
        in r.stderr
    last = r.stdout.splitlines()[-1]
    assert last.startswith("exit status 2: 1 input(s) lost, their verdicts are not in the merged report: "
                           "truncated/report.json (not valid JSON, e.g. cut off while its job wrote it"), last
    merged = json.loads((tmp_path / "out" / "report.json").read_text())
    assert merged["exit_status"] == 2 and len(merged["results"]) == len(json.loads(text)["results"])
    assert [f for f, _ in merged["meta"]["lost"]] == ["truncated/report.json"]
    assert [f for f, _ in merged["meta"]["skipped"]] == ["old-v1/report.json"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "- left out input truncated/report.json: lost: not valid JSON" in md
    assert "- left out input old-v1/report.json: skipped: report.json written by" in md
    r = subprocess.run([sys.executable, "-m", "probes.merge", "again", "out/report.json"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "truncated/report.json" in r.stdout.splitlines()[-1], r.stdout[-1000:]
    r = subprocess.run([sys.executable, "-m", "probes.merge", "alone", "truncated/report.json"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and not (tmp_path / "alone").exists() and "Traceback" not in r.stderr


@pytest.mark.parametrize("case", ["missing", "not a report", "no meta"])
def test_docs_drill_on_a_file_that_is_not_a_report_is_one_line(tmp_path, case):
    f = tmp_path / "x.json"
    if case == "not a report":
        f.write_text('{"mean_logit_diff": 1.0}')
    elif case == "no meta":
        f.write_text('{"version": 3, "results": []}')
    watched = [ROOT / "docs" / "data", ROOT / "docs" / "assets", ROOT / "README.md"]
    before = {p: p.stat().st_mtime_ns for w in watched for p in ([w] if w.is_file() else w.rglob("*"))}
    r = subprocess.run([sys.executable, "scripts/docs.py", "--drill", str(f)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == "", r.stdout[-2000:] + r.stderr[-2000:]
    lines = r.stderr.splitlines()
    want = {"missing": "no such file", "not a report": "not a report.json (an object with 'results' and 'meta'",
            "no meta": "not a report.json (it has no 'meta')"}[case]
    assert len(lines) == 1 and lines[0].startswith(f"scripts/docs.py --drill {f}: {want}"), lines
    assert "python scripts/docs.py --drill DIR/report.json" in lines[0]
    assert {p: p.stat().st_mtime_ns for w in watched for p in ([w] if w.is_file() else w.rglob("*"))} == before
