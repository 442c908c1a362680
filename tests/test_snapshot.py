"""The tolerance-aware snapshot extension: drift within tolerance passes, beyond fails naming the key,
corrupt files give a clear error and are left untouched."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from probes.errors import SnapshotFileError
from probes.snapshot import ABS_TOL, REL_TOL, ToleranceJSONSnapshot, compare, plain

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]

DATA = {"accuracy": 0.75, "top": [{"head": "3.1", "delta": -1.25}], "n": 12}


def ser(d):
    return ToleranceJSONSnapshot().serialize(d)


def drift(eps):
    return {**DATA, "top": [{"head": "3.1", "delta": -1.25 + eps}]}


def test_drift_within_the_default_tolerance_passes():
    """The default tolerance, |new - old| <= 1e-4 + 1e-3 |old| (REL_TOL, ABS_TOL: what the claims use)."""
    assert (REL_TOL, ABS_TOL) == (1e-3, 1e-4)
    for eps in (1e-7, 1e-3):  # -1.25 may move by 1.35e-3
        assert ToleranceJSONSnapshot().matches(serialized_data=ser(drift(eps)), snapshot_data=ser(DATA))


def test_real_drift_fails_and_names_the_key():
    ext = ToleranceJSONSnapshot()
    assert not ext.matches(serialized_data=ser(drift(2e-3)), snapshot_data=ser(DATA))
    diff = "\n".join(ext.diff_lines(ser(drift(2e-3)), ser(DATA)))
    assert "top[0].delta" in diff and "-1.25 -> -1.248" in diff and "moved +0.002" in diff


def test_structure_changes_are_reported():
    lines = list(compare({"a": 1, "b": "x"}, {"a": 1, "c": 2, "b": "y"}, 1e-4, 1e-6))
    assert any("c: new key" in ln for ln in lines) and any("b:" in ln for ln in lines)
    assert not list(compare({"_recorded_with": {"device": "cpu"}}, {"_recorded_with": {"device": "cuda"}}, 0, 0))


def test_plain_rejects_objects_and_converts_numpy():
    import numpy as np
    assert plain({"x": np.float32(1.5), "v": np.arange(2)}) == {"x": 1.5, "v": [0, 1]}
    with pytest.raises(TypeError, match="plain numbers"):
        plain({"x": object()})


def test_corrupt_file_clear_error(tmp_path):
    f = tmp_path / "claim.json"
    f.write_text('{"accuracy": 0.7')
    with pytest.raises(SnapshotFileError, match="corrupt.*git checkout"):
        ToleranceJSONSnapshot().read_snapshot_data_from_location(snapshot_location=str(f), snapshot_name="claim",
                                                                 session_id="x")


INNER = """
from probes.snapshot import ToleranceJSONSnapshot

class Ext(ToleranceJSONSnapshot):
    root = {root!r}

def test_claim(snapshot):
    assert snapshot.use_extension(Ext) == {{"value": {value}}}
"""


def _run(pytester, root, value, *args):
    pytester._monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_inner=INNER.format(root=str(root), value=value))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=", *args)


def test_end_to_end_record_compare_corrupt(pytester, tmp_path):
    root = tmp_path / "snaps"
    _run(pytester, root, 1.0, "--snapshot-update").assert_outcomes(passed=1)
    f = root / "test_inner" / "test_claim.json"
    assert json.loads(f.read_text())["value"] == 1.0
    _run(pytester, root, 1.0 + 1e-7).assert_outcomes(passed=1)
    r = _run(pytester, root, 1.002)
    r.assert_outcomes(failed=1)
    assert "value: 1.0 -> 1.002" in r.stdout.str()
    f.write_text("{not json")
    r = _run(pytester, root, 1.0)
    assert r.ret != 0 and "is corrupt" in r.stdout.str()
    assert f.read_text() == "{not json"  # nothing on disk changed
