"""Half precision judged by measured noise: a bfloat16/float16 run compared with float32 numbers is judged by the
floors measured for that dtype (``_noise.<dtype>``, scripts/calibrate.py --dtype), falls back to the declared
half-precision tolerance only where none were measured (and says so), records its own snapshots, and the weight
jitter that measures those floors perturbs half-precision weights at their own rounding scale."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from probes import compare, drift, roles
from probes.render import cells
from probes.errors import SnapshotFileError
from probes.loading import jitter_weights
from probes.results import ClaimResult, Verdict
from probes.snapshot import validate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

ROLES = roles.roles(effect=["share"], identity=["top"])


def snapshot(**noise) -> dict:
    """A float32 snapshot: one effect number with its interval, a top set, float32 floors and ``noise``."""
    return {"share": 0.80, "top": ["L1.H2", "L3.H0", "L4.H1"], "_intervals": {"share": [0.78, 0.82]},
            "_recorded_with": {"dtype": "float32", "model": "m"},
            "_noise": {"floor": {"share": 1e-7}, "unstable": {}, "runs": ["baseline"], **noise}}


BF16 = {"bfloat16": {"floor": {"share": 0.01}, "unstable": {"top": ["L3.H0", "L5.H5"]}, "runs": ["baseline"]}}


def test_a_bfloat16_run_is_judged_by_the_bfloat16_floors():
    old = snapshot(**BF16)
    near = {"share": 0.83, "top": ["L1.H2", "L3.H0", "L4.H1"]}  # 0.03 from float32: within 4 x the 0.01 floor
    assert not compare.diff(old, near, 1e-4, 1e-6, ROLES, dtype="bfloat16").moved
    assert compare.diff(old, near, 1e-4, 1e-6, ROLES, dtype="float32").significant  # the float32 floors: a change
    beyond = {"share": 0.85, "top": ["L1.H2", "L3.H0", "L4.H1"]}  # 0.05 > 0.04, within the interval + tolerance
    d = compare.diff(old, beyond, 1e-4, 1e-6, ROLES, dtype="bfloat16")
    assert d.moved and not d.significant
    assert compare.diff(old, {**beyond, "share": 0.90}, 1e-4, 1e-6, ROLES, dtype="bfloat16").significant
    # a component that half precision moves in or out is not a change; any other is
    swapped = {"share": 0.80, "top": ["L1.H2", "L5.H5", "L4.H1"]}
    d = compare.diff(old, swapped, 1e-4, 1e-6, ROLES, dtype="bfloat16")
    assert not d.moved and d.identities[0].floor_noise
    assert compare.diff(old, {**swapped, "top": ["L1.H2", "L3.H0", "L7.H7"]}, 1e-4, 1e-6, ROLES, dtype="bfloat16").moved


def test_which_floors_judge_which_run():
    old = snapshot(**BF16)
    assert compare.noise_for(old, "float32") == (old["_noise"], True)
    assert compare.noise_for(old, "bfloat16") == (BF16["bfloat16"], True)
    assert compare.noise_for(old, "float16")[1] is False  # none measured: the caller falls back to the declared tolerance
    own = {**snapshot(), "_recorded_with": {"dtype": "bfloat16"}}  # a snapshot recorded in bfloat16
    assert compare.noise_for(own, "bfloat16") == (own["_noise"], True) and compare.recorded_dtype(own) == "bfloat16"
    assert compare.recorded_dtype({"a": 1.0}) == "float32"  # written before snapshots named their dtype


@pytest.mark.parametrize("bad,where", [
    ({"bfloat16": {"floor": {"share": -0.1}}}, "_noise.bfloat16.floor.share"),
    ({"float16": [0.1]}, "_noise.float16"),
])
def test_a_damaged_half_precision_floor_is_a_corrupt_snapshot(bad, where):
    with pytest.raises(SnapshotFileError, match=where.replace(".", r"\.")):
        validate(snapshot(**bad), "snapshots/x.json")


def test_calibrate_writes_half_floors_beside_the_float32_ones():
    """calibrate.py --dtype bfloat16: floors are the largest |bfloat16 run - float32 recorded value|, written as
    _noise.bfloat16; the float32 floors and every recorded value stay."""
    import calibrate
    old = snapshot()
    runs = [{"share": 0.81, "top": ["L1.H2", "L3.H0", "L4.H1"]}, {"share": 0.77, "top": ["L1.H2", "L4.H1", "L9.H9"]}]
    noise = calibrate.floors(old, runs, ROLES)
    assert noise["floor"]["share"] == pytest.approx(0.03) and noise["unstable"] == {"top": ["L3.H0", "L9.H9"]}
    assert calibrate.runs_for("bfloat16")["jitter"][1][-1] == f"--weight-jitter={2.0 ** -8:g}"
    assert calibrate.runs_for("float32") is calibrate.RUNS


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_jitter_moves_half_precision_weights_by_a_rounding_step(dtype):
    """A 1e-6 jitter is lost in half-precision rounding (1 + 1e-6 == 1 in bfloat16); calibrate.py uses half a
    rounding step, taken in float32 and rounded back, which moves a good share of the weights by one step."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(64, 64).to(dtype)
    before = lin.weight.detach().clone()
    jitter_weights(lin, 1e-6)
    assert torch.equal(lin.weight, before)
    jitter_weights(lin, torch.finfo(dtype).eps / 2)
    changed = (lin.weight != before).float().mean().item()
    assert 0.2 < changed < 0.9, changed
    step = ((lin.weight.float() - before.float()).abs() / before.float().abs().clamp_min(1e-6)).max().item()
    assert step <= 4 * torch.finfo(dtype).eps  # a rounding step or two, not a change of the model


def test_jitter_in_float32_is_the_product_it_always_was():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 8)
    w = lin.weight.detach().clone()
    jitter_weights(lin, 1e-6, seed=3)
    g = torch.Generator().manual_seed(3)
    assert torch.equal(lin.weight, w * (1.0 + 1e-6 * torch.randn(w.shape, generator=g)))


def test_the_run_says_how_half_precision_was_judged():
    def res(against, verdict=Verdict.HOLDS):
        return ClaimResult(claim="c", model="m-bfloat16", verdict=verdict, against=against)
    lines = cells.precision_lines([res(""), res("float32 snapshot, bfloat16 floors"),
                               res("float32 snapshot, bfloat16 floors", Verdict.NOISE),
                               res("float32 snapshot, no bfloat16 floors measured: declared tolerance 0.05 rel"),
                               res("", Verdict.BROKEN)], "bfloat16")
    assert lines == ["bfloat16 run: claims x models compared 1 with their own bfloat16 snapshots and 3 with float32 "
                     "snapshots; 1 of them without measured bfloat16 floors, under the declared half-precision "
                     "tolerance (measure them: python scripts/calibrate.py --dtype bfloat16)"]
    assert cells.precision_lines([res("float32 snapshot, bfloat16 floors")], "bfloat16") == [
        "bfloat16 run: claims x models compared 1 with float32 snapshots, judged by the bfloat16 noise floors "
        "measured against them"]
    # a cell compared with another dtype's snapshot shows the recorded value, also when nothing moved
    n = drift.Number("share", 0.79, None, 0.80, None, -1.25)
    assert "(was 0.8, -1.2%)" in cells.effect_text(ClaimResult(claim="c", model="m", verdict=Verdict.HOLDS, headline=n,
                                                           against="float32 snapshot, bfloat16 floors"))
    assert "was" not in cells.effect_text(ClaimResult(claim="c", model="m", verdict=Verdict.HOLDS, headline=n))


def test_every_committed_snapshot_carries_half_precision_floors():
    """scripts/calibrate.py --dtype bfloat16 measured every recorded number under bfloat16 on this CPU's native
    kernels (AMX), the AVX2 path and a rounding-step jitter: a bfloat16 run of the default models is judged by
    measured noise, not by a constant."""
    files = sorted((ROOT / "snapshots").rglob("*.json"))
    missing = [f.name for f in files if "bfloat16" not in json.loads(f.read_text()).get("_noise", {})]
    assert not missing, f"{len(missing)} snapshots without _noise.bfloat16 (run scripts/calibrate.py --dtype " \
                        f"bfloat16): {missing[:5]}"
    runs = {tuple(json.loads(f.read_text())["_noise"]["bfloat16"]["runs"]) for f in files}
    assert all({"baseline", "kernels-avx2", "jitter"} <= set(r) for r in runs), runs
    # float16: every model but Gemma-3, which overflows it (left out of a float16 run: below)
    f16 = [f for f in files if "[gemma3-270m" not in f.name]
    missing = [f.name for f in f16 if "float16" not in json.loads(f.read_text()).get("_noise", {})]
    assert not missing, f"{len(missing)} snapshots without _noise.float16: {missing[:5]}"


def test_a_model_the_registry_says_cannot_run_in_float16_is_left_out_and_named():
    """Gemma-3 overflows float16 (measured, in probes/builtin_models.toml): a default float16 run leaves it out
    and says why (naming it in --models is a usage error: tests/test_registry_loading.py)."""
    import subprocess
    r = subprocess.run([sys.executable, "-m", "pytest", "claims/test_ioi.py", "--co", "-q", "-p", "no:cacheprovider",
                        "-p", "no:xdist", "-o", "addopts=", "--dtype", "float16"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "left out gemma3-270m: not in float16: its activations overflow float16's range" in r.stdout
    assert "gemma3-270m-float16" not in r.stdout and "smollm2-135m-float16" in r.stdout
