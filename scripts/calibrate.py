"""Measure each recorded number's noise floor and add it, with the claims' intervals, to the committed snapshots.

    python scripts/calibrate.py                       # every claim on the default models (about 4 x the claims run)
    python scripts/calibrate.py --models bert-organism -k laminar
    python scripts/calibrate.py --apply-only          # re-read the runs already under artifacts/calibrate/
    python scripts/calibrate.py --check --runs kernels-avx2,kernels-default,jitter   # the snapshots hold there?
    python scripts/calibrate.py --dtype bfloat16 --models smollm2-135m,gemma3-270m  # half-precision floors

A snapshot records one machine's numbers. Another CPU (other SIMD kernels, another MKL code path, another thread
count) computes the same claims with other float rounding, and statistics that are quantiles, counts, robust z
scores or top-k sets can move by more than a bit-level tolerance. This script runs the claims (one pytest
invocation per perturbation, each in its own process) under perturbations at float32 rounding scale:

    kernels-avx2      ATEN_CPU_CAPABILITY=avx2     MKL_CBWR=AVX2          (another SIMD path; -n auto, 1 thread)
    kernels-default   ATEN_CPU_CAPABILITY=default  MKL_CBWR=COMPATIBLE    (no SIMD in ATen, MKL's portable path)
    jitter            --weight-jitter=1e-6, 2 threads, -n 0                (every weight x (1 + 1e-6 N(0, 1)))
    baseline          nothing changed                                     (this machine as it is)

and for every number of every snapshot takes its **floor**: the largest |run - recorded| over the runs. The
comparison (probes/compare.py) then accepts a number within ``max(declared tolerance, FLOOR_K x floor)``; component
ids that entered or left a set in any run are **unstable at float noise** and never count as a change. The baseline
run also gives the claims' bootstrap intervals and identity stabilities (``_intervals``, ``_stability``) for
snapshots recorded before claims computed them.

**Half precision** (``--dtype bfloat16`` or ``float16``): the claims run in that dtype under perturbations at its
own rounding scale,

    baseline          nothing changed                                     (this CPU's native half kernels, if any)
    kernels-avx2      ATEN_CPU_CAPABILITY=avx2  ONEDNN_MAX_CPU_ISA=AVX2   (no AVX512-BF16/FP16 or AMX: other GEMMs)
    jitter            --weight-jitter=<half a rounding step of the dtype>, 2 threads, -n 0

and each number's floor is the largest |half-precision run - recorded value|. Against a float32 snapshot that is
how far half precision moves the number (its rounding, plus the kernels' spread), written as ``_noise.<dtype>``
beside the float32 floors; a half-precision run is judged by it (probes/compare.py: noise_for). A snapshot recorded
in that dtype (``[<model>-bfloat16]``) gets its own ``_noise``, as float32 ones do.

Only the keys ``_noise``, ``_intervals`` and ``_stability`` are written; every recorded value is left as it is (the
script checks this before each write and refuses otherwise). Snapshots whose recorded values this machine does
not reproduce within the claim's significance are reported and left alone.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from probes import compare, drift, drift_text, roles  # noqa: E402
from probes.snapshot import serialize  # noqa: E402

RUNS = {
    "kernels-avx2": ({"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}, ["-n", "auto"]),
    "kernels-default": ({"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}, ["-n", "auto"]),
    "jitter": ({"OMP_NUM_THREADS": "2"}, ["-n", "0", "--weight-jitter=1e-6"]),
    "baseline": ({}, ["-n", "auto"]),
}
HALF_RUNS = {
    "baseline": ({}, ["-n", "auto"]),
    "kernels-avx2": ({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}, ["-n", "auto"]),
    "jitter": ({"OMP_NUM_THREADS": "2"}, ["-n", "0"]),  # --weight-jitter: half a rounding step of the dtype
}
HALF_EPS = {"bfloat16": 2.0 ** -8, "float16": 2.0 ** -10}  # finfo(dtype).eps / 2: half a rounding step at 1.0
ADDED = ("_noise", "_intervals", "_stability")


def runs_for(dtype: str) -> dict:
    """The perturbation runs of ``dtype``: float32's (RUNS), or half precision's at its rounding scale."""
    if dtype == "float32":
        return RUNS
    env, args = HALF_RUNS["jitter"]
    return {**HALF_RUNS, "jitter": (env, [*args, f"--weight-jitter={HALF_EPS[dtype]:g}"])}


def run(name: str, out: Path, extra: list[str], project: Path = ROOT, dtype: str = "float32") -> Path:
    env_add, args = runs_for(dtype)[name]
    if dtype != "float32":
        args = [*args, f"--dtype={dtype}"]
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **env_add}
    cmd = [sys.executable, "-m", "pytest", "claims/", *args, "-q", "-p", "no:cacheprovider",
           f"--artifacts={folder}", *extra]
    t0 = time.time()
    print(f"[calibrate] {name}: {' '.join(f'{k}={v}' for k, v in env_add.items())} {' '.join(cmd[1:])}", flush=True)
    with open(folder / "pytest.log", "w") as log:
        rc = subprocess.call(cmd, cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT)
    print(f"[calibrate] {name}: exit {rc} in {time.time() - t0:.0f} s (log {folder / 'pytest.log'})", flush=True)
    if not (folder / "report.json").exists():
        raise SystemExit(f"calibrate: run {name} wrote no report ({folder / 'pytest.log'})")
    RCS[name] = rc
    return folder / "report.json"


RCS: dict[str, int] = {}


def numbers(report: Path) -> dict[str, tuple[dict, dict]]:
    """snapshot file -> (this run's numbers, roles) for every claim that handed numbers."""
    out = {}
    for r in json.loads(report.read_text())["results"]:
        if r.get("numbers") is not None and r.get("snapshot"):
            out[r["snapshot"]] = (r["numbers"], r.get("roles") or {})
    return out


def floors(recorded: dict, runs: list[dict], table: dict) -> dict:
    """The largest |run - recorded| of every number (paths as probes/compare.py names them), and the ids that
    entered or left a set in any run."""
    floor: dict[str, float] = {}
    unstable: dict[str, list] = {}
    recorded = {k: v for k, v in recorded.items() if k != "_noise"}  # measured afresh, never from older floors
    for new in runs:
        d = compare.diff(recorded, new, 0.0, 0.0, table)
        for m in d.moves:
            if m.kind == "value" and m.change is not None:
                floor[m.path] = max(floor.get(m.path, 0.0), abs(m.change))
        for s in d.identities:
            ids = [str(i) for i in s.entered + s.left]
            if ids:
                unstable[s.path] = sorted(set(unstable.get(s.path, [])) | set(ids))
    return {"floor": {k: float(f"{v:.3g}") for k, v in sorted(floor.items())}, "unstable": unstable}


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default=None, help=f"which runs (default all: float32 {', '.join(RUNS)}; half "
                                                 f"precision {', '.join(HALF_RUNS)})")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                    help="calibrate runs in this dtype: half-precision floors are written as _noise.<dtype> of the "
                         "float32 snapshots they are compared with (or as _noise of that dtype's own snapshots)")
    ap.add_argument("--out", default=None, help="where the runs' reports go (default <project>/artifacts/calibrate)")
    ap.add_argument("--apply-only", action="store_true", help="use the reports already in --out; run nothing")
    ap.add_argument("--dry-run", action="store_true", help="print what would be written; write nothing")
    ap.add_argument("--intervals-only", action="store_true",
                    help="add missing _intervals / _stability from the baseline run; leave the floors as they are "
                         "(a claim that newly computes intervals: --runs baseline -k <its test>)")
    ap.add_argument("--check", action="store_true",
                    help="write nothing: run the claims under each perturbation with --significance=floor against "
                         "the committed snapshots and floors, and exit non-zero unless every run exits 0")
    ap.add_argument("--project", default=str(ROOT),
                    help="a claims project of one's own (its claims/ and snapshots; default this repository)")
    return ap


def main(argv=None) -> int:
    ap = _parser()
    a, extra = ap.parse_known_args(argv)
    runs_here = runs_for(a.dtype)
    project = Path(a.project).resolve()
    folder = ("calibrate-check" if a.check else "calibrate") + ("" if a.dtype == "float32" else f"-{a.dtype}")
    out = Path(a.out).resolve() if a.out else project / "artifacts" / folder
    names = [n.strip() for n in (a.runs or ",".join(runs_here)).split(",") if n.strip()]
    bad = [n for n in names if n not in runs_here]
    if bad:
        ap.error(f"unknown run(s) {', '.join(bad)} for {a.dtype}; choose from {', '.join(runs_here)}")
    if a.check:
        extra = [*extra, "--significance=floor"]
        if a.apply_only:
            ap.error("--check runs the claims: drop --apply-only")
    reports = {}
    for n in names:
        reports[n] = (out / n / "report.json") if a.apply_only else run(n, out, extra, project, a.dtype)
        if not reports[n].exists():
            ap.error(f"{reports[n]} does not exist: run without --apply-only first")
    if a.check:
        return _check_result(names, out)
    per_run = {n: numbers(p) for n, p in reports.items()}
    files = sorted({f for nums in per_run.values() for f in nums})
    written = skipped = 0
    for shown in files:
        path = project / shown
        if not path.exists():
            continue
        recorded = json.loads(path.read_text())
        new, noise = _calibrated(recorded, shown, per_run, names, a.dtype, a.intervals_only)
        written += _write(path, shown, recorded, new, noise, a.dry_run)
    print(f"[calibrate] {written} snapshot(s) {'to write' if a.dry_run else 'written'}, {skipped} left alone; "
          f"runs: {', '.join(names)}")
    if a.intervals_only:
        return 0
    report_coverage(per_run, names, project)
    report_ratios(per_run, names, project, a.dtype)
    return 0


def _check_result(names: list[str], out: Path) -> int:
    """--check: each run's exit status and last line, with the lines that name a moved number; 0 when every run
    exited 0."""
    for n in names:
        log = (out / n / "pytest.log").read_text().splitlines()
        print(f"[calibrate] check {n}: exit {RCS.get(n)}; " + (log[-1] if log else ""))
        for line in log:
            if line.startswith("  ") and ("x " in line) and any(w in line for w in ("large", "medium", "small",
                                                                                       "noise")):
                print(f"    {line.strip()}")
    return 0 if all(RCS.get(n) == 0 for n in names) else 1


def _calibrated(recorded: dict, shown: str, per_run: dict, names: list[str], dtype: str,
                intervals_only: bool) -> tuple[dict, dict]:
    """The snapshot ``recorded`` (file ``shown``) with the floors the runs measured (unless ``intervals_only``)
    and, from the baseline run, the intervals and stabilities it lacks; and the floors it then holds."""
    runs = [per_run[n][shown][0] for n in names if shown in per_run[n]]
    table = next(per_run[n][shown][1] for n in names if shown in per_run[n])
    new = dict(recorded)
    own = compare.recorded_dtype(recorded) == dtype  # floors of the snapshot's own dtype, or a half run against it
    if not intervals_only:
        noise = floors(recorded, runs, table)
        noise["runs"] = [n for n in names if shown in per_run[n]]
        kept = recorded.get("_noise") or {}
        if own:  # the half-precision floors measured against these numbers stay
            new["_noise"] = {**{d: kept[d] for d in compare.HALF_DTYPES if d in kept}, **noise}
        else:
            new["_noise"] = {**kept, dtype: noise}
    else:
        noise = recorded.get("_noise") or {"floor": {}, "unstable": {}}
    base = per_run.get("baseline", {}).get(shown) if own else None
    if base is not None:
        for k in ("_intervals", "_stability"):
            if k in base[0] and k not in recorded:
                new[k] = base[0][k]
    return new, noise


def _write(path: Path, shown: str, recorded: dict, new: dict, noise: dict, dry_run: bool) -> int:
    """Write ``new`` over the snapshot ``recorded`` (unless ``dry_run``) when it adds something; 1 when it does.
    Refuses (SystemExit) where a recorded value would change."""
    keep = {k: v for k, v in recorded.items() if k not in ADDED}
    if {k: v for k, v in new.items() if k not in ADDED} != keep:  # never change a recorded value
        raise SystemExit(f"calibrate: refusing to write {shown}: a recorded value would change")
    if serialize(new) == serialize(recorded):
        return 0
    big = {p: f for p, f in noise["floor"].items() if f > 0}
    print(f"{'would write' if dry_run else 'wrote'} {shown}: {len(big)} number(s) with a floor > 0"
          + (f", unstable ids in {', '.join(noise['unstable'])}" if noise["unstable"] else ""))
    if not dry_run:
        path.write_text(serialize(new))
    return 1


def report_coverage(per_run: dict, names: list[str], project: Path = ROOT) -> None:
    """Leave-one-out: floors from every run but one; how many numbers of that run move beyond
    max(default tolerance, FLOOR_K x those floors) (the default, probes.snapshot's REL_TOL / ABS_TOL, is what the
    claims use; the neuron family's absolute part is wider, so this counts its moves conservatively). A floor that
    covers other perturbations it was not measured on is evidence that it covers machines it has not seen."""
    from probes.snapshot import ABS_TOL, REL_TOL
    for held in names:
        if len(names) < 2:
            return
        moved = total = 0
        worst: list = []
        for shown, (nums, table) in per_run[held].items():
            path = project / shown
            if not path.exists():
                continue
            recorded = {k: v for k, v in json.loads(path.read_text()).items() if k not in ("_noise", "_recorded_with")}
            others = [per_run[n][shown][0] for n in names if n != held and shown in per_run[n]]
            recorded["_noise"] = floors(recorded, others, table)
            d = compare.diff(recorded, nums, REL_TOL, ABS_TOL, table, mode=drift.FLOOR)
            total += len(compare.leaves(recorded, table))
            for m in d.moves:
                if m.kind == "value" or m.kind == "set":
                    moved += 1
                    worst.append(f"{shown.split('/')[-1]} {drift_text.move_text(m)}")
        print(f"[calibrate] leave-one-out: {held}: {moved} of {total} numbers beyond max(tolerance, {drift.FLOOR_K:g} x the "
              f"floor of the other runs)")
        for w in worst[:8]:
            print(f"    {w}")


def report_ratios(per_run: dict, names: list[str], project: Path = ROOT, dtype: str = "float32") -> None:
    """The distribution of floor / interval half-width over the effect numbers that have both (a floor far below
    its interval: the float noise of a statistic is negligible next to its sampling noise)."""
    import numpy as np
    ratios = []
    for shown in sorted({f for n in names for f in per_run[n]}):
        path = project / shown
        if not path.exists():
            continue
        snap = json.loads(path.read_text())
        table = next(per_run[n][shown][1] for n in names if shown in per_run[n])
        fl = (compare.noise_for(snap, dtype)[0] or {}).get("floor", {})
        for p, role, v, iv in compare.leaves(snap, table):
            if iv is not None and role == roles.EFFECT and max(iv) > min(iv):
                ratios.append((fl.get(p, 0.0) / ((max(iv) - min(iv)) / 2), f"{shown.split('/')[-1]} {p}"))
    if not ratios:
        return
    r = np.array([x for x, _ in ratios])
    q = np.quantile(r, [0.5, 0.9, 0.99, 1.0])
    print(f"[calibrate] floor / interval half-width over {len(r)} effect numbers: median {q[0]:.2g}, 90% {q[1]:.2g}, "
          f"99% {q[2]:.2g}, max {q[3]:.2g}; {int((r > 0.1).sum())} above 0.1, {int((r == 0).sum())} exactly 0")
    for x, what in sorted(ratios, reverse=True)[:5]:
        if x > 0.1:
            print(f"    {x:.2g}  {what}")


if __name__ == "__main__":
    raise SystemExit(main())
