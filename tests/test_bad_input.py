"""Bad input gets one line that names the fix (part of the battery of issue 31): a hub entry without a revision, a
claim marker without id or family, --device cuda without CUDA, merge inputs that are not report.json files of this
version, a snapshot whose number was replaced by text. Nothing on disk changes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from probes import drift as D
from probes.errors import SnapshotFileError, UnknownModelError
from probes.registry import load_registry
from probes.snapshot import check_snapshot

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]


def test_a_hub_entry_must_pin_a_revision(tmp_path):
    reg = tmp_path / "models.toml"
    reg.write_text('[models.g]\nsource = "hub"\nhub_id = "openai-community/gpt2"\nkind = "causal"\n'
                   'families = ["ioi"]\n')
    with pytest.raises(UnknownModelError, match=r"\[models.g\]: a hub entry needs hub_id and a pinned revision"):
        load_registry(reg)


def test_a_claim_marker_needs_id_and_family(pytester):
    (pytester.path / "models.toml").write_text(
        f'[models.m]\nsource = "local"\npath = "{ROOT / "fixtures/organisms/gpt2-organism"}"\nkind = "causal"\n'
        'families = ["x"]\n')
    pytester.makeini("[pytest]\nclaims_registry = models.toml\n")
    pytester.makepyfile(test_claim="import pytest\n\n@pytest.mark.claim(family='x')\n"
                                   "def test_claim(lm):\n    pass\n")
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=")
    out = r.stdout.str() + r.stderr.str()
    assert r.ret != 0 and "@pytest.mark.claim needs id=" in out, out[-2000:]
    assert "TypeError" not in out and "INTERNALERROR" not in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a build without CUDA")
def test_device_cuda_without_cuda_is_one_usage_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pytest", "claims/test_ioi.py", "-p", "no:cacheprovider", "-p",
                        "no:xdist", "-o", "addopts=", "-q", "--models", "gpt2-organism", "--device", "cuda", "-k", "behaviour",
                        f"--artifacts={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 4, r.stdout[-2000:] + r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [lines[0]] and "--device cuda requested" in lines[0] and "use --device cpu" in lines[0]


def test_merge_names_inputs_that_are_not_reports_of_this_version(tmp_path):
    lst, old = tmp_path / "list.json", tmp_path / "old.json"
    lst.write_text("[1, 2]")
    old.write_text(json.dumps({"meta": {}, "exit_status": 0, "results": [{"claim": "a", "model": "m",
                                                                          "verdict": "holds, numbers moved"}]}))
    r = subprocess.run([sys.executable, "-m", "probes.merge", str(tmp_path / "out"), str(lst), str(old)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"skipped {lst}: not a report.json" in r.stderr and f"skipped {old}: report.json of version 1" in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_snapshot_number_replaced_by_text_is_a_corrupt_snapshot():
    with pytest.raises(SnapshotFileError, match=r"corrupt \(the text 'abc' where a number is recorded at "
                                                r"top_heads\[0\].delta\)"):
        check_snapshot({"top_heads": [{"head": "1.2", "delta": "abc"}]}, {"top_heads": [{"head": "1.2", "delta": 1.0}]},
                       "snapshots/x.json")
    check_snapshot({"a": "nan", "b": 1}, {"a": 0.5, "b": 2.0})  # non-finite numbers are recorded as text: fine
    assert D.diff({"a": 1.0}, {"a": 1.0}, 1e-4, 1e-6).moves == []
