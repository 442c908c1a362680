"""Bad input gets one line that names the fix (part of the battery of issue 31): a hub entry without a revision, a
claim marker without id or family, --device cuda without CUDA, merge inputs that are not report.json files of this
version, a snapshot whose number was replaced by text, a stimulus file that is missing. Nothing on disk changes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from probes import compare
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
    assert f"skipped {lst}: not a report.json" in r.stderr
    assert f"skipped {old}: report.json written by an interp-claims whose reports are version 1" in r.stderr
    assert not (tmp_path / "out").exists()


def test_a_snapshot_number_replaced_by_text_is_a_corrupt_snapshot():
    with pytest.raises(SnapshotFileError, match=r"corrupt \(the text 'abc' where a number is recorded at "
                                                r"top_heads\[0\].delta\)"):
        check_snapshot({"top_heads": [{"head": "1.2", "delta": "abc"}]}, {"top_heads": [{"head": "1.2", "delta": 1.0}]},
                       "snapshots/x.json")
    with pytest.raises(SnapshotFileError, match=r"the text 'nan' where a number is recorded at a"):
        check_snapshot({"a": "nan", "b": 1}, {"a": 0.5, "b": 2.0})  # numbers are never recorded as text
    assert compare.diff({"a": 1.0}, {"a": 1.0}, 1e-4, 1e-6).moves == []


# --- a claims project of one's own: mistakes that must not pass by checking nothing --------------------------------

ORGANISM = ROOT / "fixtures" / "organisms" / "gpt2-organism"
CLAIM = ("import pytest\n\n@pytest.mark.claim(id='x.y', family='x')\n"
         "def test_claim(lm, claim_snapshot):\n"
         "    claim_snapshot({'d': 1.0}, effect=['d'])\n")


def _project(path: Path, models: dict[str, Path], tests: dict[str, str]) -> None:
    (path / "pytest.ini").write_text("[pytest]\nclaims_registry = models.toml\n")
    (path / "models.toml").write_text("".join(
        f'[models.{m}]\nsource = "local"\npath = "{p}"\nkind = "causal"\nfamilies = ["x"]\n' for m, p in models.items()))
    for name, text in tests.items():
        (path / name).write_text(text)


def _run(path: Path, *args: str) -> tuple[int, str]:
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=",
                        "-q", *args], cwd=path, capture_output=True, text=True, timeout=600)
    return r.returncode, r.stdout + r.stderr


def _no_traceback(out: str) -> None:
    assert "Traceback" not in out and "INTERNALERROR" not in out and "plugin.py" not in out, out[-3000:]


@pytest.mark.parametrize("case", ["unmarked", "family typo", "no registry", "broken path"])
def test_a_project_that_would_check_nothing_does_not_pass(tmp_path, case):
    """A test using the model fixtures without a claim marker, a marker's family no model has, a missing registry
    and a registry entry whose folder does not exist: each is a usage error (exit 4) with its fix on the terminal,
    never a green run that checks nothing."""
    tests = {"test_ok.py": CLAIM}
    models = {"m": ORGANISM}
    if case == "unmarked":
        tests["test_unmarked.py"] = "def test_unmarked(lm):\n    pass\n"
        want = "test_unmarked.py::test_unmarked uses the model fixtures (lm, model_id) but has no claim marker"
    elif case == "family typo":
        tests["test_typo.py"] = CLAIM.replace("family='x'", "family='xx'").replace("x.y", "x.z")
        want = "family 'xx' (in its claim marker) is not a family of any model in models.toml (families there: x)"
    elif case == "no registry":
        want = "no claims registry: fixtures/models.toml does not exist. Set the ini option claims_registry"
    else:
        models["gone"] = Path("weights/gone")
        want = (f"model 'gone': {tmp_path / 'weights/gone'}: no such folder; fix path = 'weights/gone' of "
                f"[models.gone] in {tmp_path / 'models.toml'}")
    _project(tmp_path, models, tests)
    if case == "no registry":
        (tmp_path / "pytest.ini").write_text("[pytest]\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, out = _run(tmp_path)
    assert rc == 4 and want in out, out[-3000:]
    _no_traceback(out)
    assert "retrain" not in out
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "artifacts") == before


def _damaged(root: Path) -> dict[str, Path]:
    """Copies of the GPT-2 organism, each with one fault."""
    import shutil

    from transformers import AutoModelForCausalLM
    out = {}
    tok_files = [f for f in ORGANISM.iterdir() if f.name.startswith(("tokenizer", "vocab", "merges", "special"))]

    def folder(name, weights=True, tokenizer=True):
        d = root / name
        d.mkdir(parents=True)
        shutil.copy(ORGANISM / "config.json", d)
        if weights:
            shutil.copy(ORGANISM / "model.safetensors", d)
        for f in tok_files if tokenizer else []:
            shutil.copy(f, d)
        out[name] = d
        return d

    folder("notokenizer", tokenizer=False)
    folder("noweights", weights=False)
    model = AutoModelForCausalLM.from_pretrained(ORGANISM)
    with torch.no_grad():
        model.transformer.h[1].mlp.c_fc.weight[0, :5] = float("nan")
    model.save_pretrained(folder("nanweights", weights=False))
    model = AutoModelForCausalLM.from_pretrained(ORGANISM)
    model.resize_token_embeddings(2000)
    model.save_pretrained(folder("smallembedding", weights=False))
    d = folder("pickleonly", weights=False)
    torch.save(AutoModelForCausalLM.from_pretrained(ORGANISM).state_dict(), d / "pytorch_model.bin")
    d = folder("remotecode")
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "auto_map": {"AutoModelForCausalLM": "m.Model"}}))
    return out


def test_bad_model_folders_get_one_line_each(tmp_path):
    """Faulty model folders (no tokenizer files, no weights, NaN weights, an embedding smaller than the tokenizer,
    pickle weights only, custom code) and a corrupt (empty) snapshot: each claim x model ends in the verdict
    'error' with one line naming the fix, no traceback; nothing on disk changes."""
    models = {"good": ORGANISM, **_damaged(tmp_path / "models")}
    proj = tmp_path / "proj"
    proj.mkdir()
    _project(proj, models, {"test_c.py": CLAIM})
    snap = proj / "snapshots" / "test_c" / "test_claim[good].json"
    snap.parent.mkdir(parents=True)
    snap.write_text("")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    rc, out = _run(proj)
    assert rc == 1, out[-4000:]
    _no_traceback(out)
    report = json.loads((proj / "artifacts" / "report.json").read_text())
    msg = {r["model"]: r["message"] for r in report["results"]}
    assert {r["verdict"] for r in report["results"]} == {"error"}, msg
    want = {"good": "snapshot file snapshots/test_c/test_claim[good].json is corrupt (not valid JSON",
            "notokenizer": "has no tokenizer files",
            "noweights": "has no weights (no model.safetensors); save them with model.save_pretrained(folder)",
            "nanweights": "weights hold NaN/inf values: transformer.h.1.mlp.c_fc.weight (5 of",
            "smallembedding": "its tokenizer has 2740 tokens but its input embedding only 2000 rows",
            "pickleonly": "only pickle checkpoints (pytorch_model.bin)",
            "remotecode": "asks for custom code (auto_map"}
    for m, w in want.items():
        assert w in msg[m], (m, msg[m])
        line = next(ln for ln in out.splitlines() if ln.startswith(f"error: x.y x {m}:"))
        assert w in line
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "artifacts" not in p.parts} == before


def test_a_candidate_of_another_architecture_is_refused(tmp_path):
    """gpt-neo-organism given as a new version of gpt2-organism: refused with the fix before anything runs (its
    numbers would be compared with another model's snapshots); --allow-mismatch lets it through."""
    neo = ROOT / "fixtures" / "organisms" / "gpt-neo-organism"
    args = ["claims/test_ioi.py", "-k", "behaviour", f"--artifacts={tmp_path}", "--models", f"gpt2-organism={neo}"]
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=",
                        "-q", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 4, r.stdout[-2000:] + r.stderr[-2000:]
    assert (f"--models gpt2-organism={neo}: not a version of gpt2-organism (architecture gpt_neo vs gpt2)" in r.stderr
            and "--allow-mismatch" in r.stderr), r.stderr
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=",
                        "-q", *args, "--allow-mismatch", "--collect-only"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_a_missing_stimulus_file_is_named(tmp_path):
    """fixtures.loaders.stimuli: a stimulus file that is not there is a StimulusError naming the file, the nearest
    file the folder holds and how to restore it; one that is there is read, from any folder."""
    from fixtures.loaders import stimuli
    from probes.errors import StimulusError
    with pytest.raises(StimulusError, match=r"attention_v2\.json is missing; did you mean 'attention_v1'\?.*"
                                            r"git checkout"):
        stimuli("attention_v2")
    assert stimuli("attention_v1")["head_threshold"] > 0
    (tmp_path / "mine_v1.json").write_text('{"n": 3}')
    assert stimuli("mine_v1", tmp_path) == {"n": 3}
    with pytest.raises(StimulusError, match=r"holds: mine_v1\)"):
        stimuli("other_v1", tmp_path)
