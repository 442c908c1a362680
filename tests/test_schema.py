"""What a claims project of one's own hands the plugin, checked where it enters (issue 36): the registry by a
schema (wrong types and unknown values are one line naming the entry, the field and what it may be), a claim's
numbers (a NaN is an error naming its key, never recorded as text), a recorded snapshot (a reversed interval is
a corrupt file), and a model given by path runs the project's own families that fit its kind."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from probes.errors import SnapshotFileError, UnknownModelError
from probes.registry import load_registry
from probes.snapshot import validate

ROOT = Path(__file__).resolve().parents[1]
ORGANISM = ROOT / "fixtures" / "organisms" / "gpt2-organism"
ENTRY = '[models.m]\nsource = "local"\npath = "{path}"\nkind = "causal"\nfamilies = ["prevtoken"]\n'
CLAIM = '''import pytest

@pytest.mark.claim(id="prevtoken.top", family="prevtoken", kinds=("causal",), source="a test", null="-", criterion="-")
def test_top(lm, claim_snapshot):
    claim_snapshot({"d": VALUE, "n": 3}, effect=["d"]ALLOW)

@pytest.mark.claim(id="prevtoken.masked", family="prevtoken", kinds=("masked",), source="a test", null="-",
                   criterion="-")
def test_masked_only(lm, claim_snapshot):
    claim_snapshot({"d": 1.0}, effect=["d"])
'''


def project(path: Path, registry: str | None = None, value: str = "0.5", allow: str = "") -> Path:
    (path / "pytest.ini").write_text("[pytest]\nclaims_registry = models.toml\n" if registry is not None
                                     else "[pytest]\n")
    if registry is not None:
        (path / "models.toml").write_text(registry)
    (path / "test_prevtoken.py").write_text(CLAIM.replace("VALUE", value).replace("ALLOW", allow))
    return path


def run(path: Path, *args: str) -> tuple[int, str]:
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=",
                        "-q", *args], cwd=path, capture_output=True, text=True, timeout=600)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("field, value, want", [
    ("families", '"prevtoken"', 'families = "prevtoken" is not a list of strings; e.g. families = ["prevtoken"]'),
    ("kind", '"diffusion"', 'kind = "diffusion" is not one of causal, masked, encoder'),
    ("source", '"s3"', 'source = "s3" is not one of local, package, hub, gguf'),
    ("tier", "3", "tier = 3 is not a string"),
    ("colour", '"red"', "unknown field(s) colour. Fields an entry may have:"),
    ("params", "{ xdist_weight = \"heavy\" }", 'params.xdist_weight = "heavy" is not a number'),
    ("dtypes_unsupported", "{ int8 = \"no\" }", 'dtypes_unsupported must be a table of float32 / bfloat16 / float16'),
])
def test_a_registry_entry_that_breaks_the_schema_is_one_line(tmp_path, field, value, want):
    text = ENTRY.format(path=ORGANISM)
    text = (text.replace(f"{field} = ", f"# {field} = ") if f"\n{field} = " in text else text) + f"{field} = {value}\n"
    (tmp_path / "models.toml").write_text(text)
    with pytest.raises(UnknownModelError) as e:
        load_registry(tmp_path / "models.toml")
    msg = str(e.value)
    assert msg.startswith(f"registry {tmp_path / 'models.toml'}, [models.m]: ") and want in msg, msg
    assert "\n" not in msg
    # and in a pytest run: a usage error (exit 4), that line on the terminal, no traceback
    rc, out = run(project(tmp_path, text))
    assert rc == 4 and want in out and "Traceback" not in out, out[-2000:]


def test_a_model_given_by_path_runs_the_projects_own_families(tmp_path):
    """``--models <folder>``: the project's family 'prevtoken' runs there (its causal claim; the masked-only claim
    is for other kinds), with or without a registry in the project; the run names no repository path."""
    for reg in (ENTRY.format(path=ORGANISM), None):
        proj = tmp_path / ("with-registry" if reg else "without")
        proj.mkdir()
        rc, out = run(project(proj, reg), f"--models={ORGANISM}", "-rA")
        assert rc == 6, out[-3000:]  # holds, no snapshot recorded yet
        assert "1 skipped, 1 unrecorded" in out, out[-3000:]  # the causal claim ran; the masked one has no model
        assert "no snapshot  prevtoken.top x gpt2-organism" in out, out[-3000:]
        assert "../" not in out, out[-3000:]


def test_a_nan_effect_is_an_error_naming_its_key_and_nothing_is_recorded(tmp_path):
    proj = project(tmp_path, ENTRY.format(path=ORGANISM), value='float("nan")')
    rc, out = run(proj, "-k", "top", "--record")
    assert rc == 1 and "claim_snapshot: d is nan: a claim's numbers must be finite" in out, out[-3000:]
    assert "allow_nan=True" in out and "Traceback" not in out
    assert not (proj / "snapshots").exists() or not list((proj / "snapshots").rglob("*.json"))
    # explicitly allowed: recorded as null, never as the text "nan"
    project(tmp_path, ENTRY.format(path=ORGANISM), value='float("nan")', allow=", allow_nan=True")
    rc, out = run(proj, "-k", "top", "--record")
    assert rc == 0, out[-3000:]
    (snap,) = (proj / "snapshots").rglob("*.json")
    assert json.loads(snap.read_text())["d"] is None and '"nan"' not in snap.read_text()


def test_a_reversed_interval_or_negative_floor_is_a_corrupt_snapshot(tmp_path):
    ok = {"d": 1.0, "_intervals": {"d": [0.5, 1.5], "top": [{"delta": [1.0, 2.0]}]}, "_noise": {"floor": {"d": 0.0}}}
    validate(ok, "snapshots/x.json")
    bad = json.loads(json.dumps(ok))
    bad["_intervals"]["top"][0]["delta"] = [7.0, -3.0]
    with pytest.raises(SnapshotFileError, match=r"snapshots/x.json is corrupt \(the interval \[7.0, -3.0\] is "
                                                r"reversed \(lo > hi\) at _intervals.top\[0\].delta\)"):
        validate(bad, "snapshots/x.json")
    with pytest.raises(SnapshotFileError, match=r"the noise floor -1.0 .* at _noise.floor.d"):
        validate({**ok, "_noise": {"floor": {"d": -1.0}}}, "snapshots/x.json")
    # in a run: the claim errors with that one line; the snapshot is left as it is
    proj = project(tmp_path, ENTRY.format(path=ORGANISM))
    rc, out = run(proj, "-k", "top", "--record")
    assert rc == 0, out[-3000:]
    (snap,) = (proj / "snapshots").rglob("*.json")
    data = json.loads(snap.read_text())
    data["_intervals"] = {"d": [1.5, -0.5]}
    snap.write_text(json.dumps(data))
    before = snap.read_text()
    rc, out = run(proj, "-k", "top")
    assert rc == 1 and "the interval [1.5, -0.5] is reversed (lo > hi) at _intervals.d" in out, out[-3000:]
    assert "Traceback" not in out and snap.read_text() == before
