"""What the catalogue costs from 135M to 7B parameters: every causal claim family's measurement on randomly
initialised models of real configs, fitted against the number of layers, and predicted for each full config on this
machine and on a GPU of stated throughput.

    python benchmarks/bench_cost.py [--configs smollm2-135m,qwen2.5-0.5b,...] [--layers 2,4,6] [--threads 2]
                                    [--dtype bfloat16] [--validate smollm2-135m] [--gpu "H100 SXM"]
                                    [--work DIR] [--json docs/data/cost.json]

**What runs.** For each config of ``fixtures/configs/`` and each layer count of ``--layers``, a model of that config
cut to that many layers (every other size real: width, heads, key/value heads, MLP, vocabulary) is initialised at
random (seed 0) and saved with SmolLM2's tokenizer; the claims of every causal family then run on it in one pytest
process, in ``--dtype`` (bfloat16: what models of this size are run in, and what a 7B model's memory allows here)
on ``--threads`` threads, under the registry parameters of the real LMs (``ioi_head_pairs = 24``), with a fresh
model cache (each random-init null is built, as on a first run). Under benchmarks/roofline_plugin.py's counter each
claim's wall time (fixtures included: the family's shared passes, its nulls), the process's peak resident memory,
the floating-point operations of its matrix products and attention (``torch.utils.flop_counter``'s formulas), the
bytes of its ops' tensors and the number of ops it dispatched are recorded. A config whose vocabulary is smaller
than the tokenizer's (Phi-3, Mistral: 32k) gets the tokenizer's 49152 rows; the table says so.

A random model fails the claims' criteria, but each claim measures before it judges, except three that stop at their
precondition (no known fact to trace, no induction head to compose with, no tall/short gap to investigate): their
measurements are timed by benchmarks/cost_forced.py, with the selection a trained model would give made without it.

**The fit.** Per family and config, the counted work (FLOPs, bytes, ops) as a polynomial ``a + b L + c L^2`` in the
layers (least squares, ``b, c >= 0``): a family's passes grow with the layers they run through, and per-head or
per-layer sweeps resumed from their own layer grow with the layers again (L(L+1)/2 layer passes). Taken at the real
depth, it is the full model's work. Its time is the deepest cut's measured time plus the FLOPs the full depth adds,
at the config's **marginal rate**: the FLOP rate that fits how much the time of every family grew between
consecutive cuts (each family's fixed cost, stimuli, statistics and figures, cancels). Peak memory is the deepest
cut's plus the weights the full depth adds, twice (the model and one random-init null). The
claims run with ``--exact off``, the regime ``--exact auto`` picks on a CPU for every one of these configs at full
depth (over 64 heads: the heads screened by attribution, the top 8 and 16 others measured exactly); a shortened
model with few heads would otherwise measure them all. ``--validate`` runs the full-depth config too, and its
measured cost is printed beside the prediction.

**The GPU.** ``max(FLOPs / peak FLOP/s, bytes / bandwidth) + ops x per-op time`` at the stated GPU's dense
bfloat16 peak, memory bandwidth (the vendors' data sheets) and 10 us per eager PyTorch op: a bound from counted
work, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fixtures import real_configs  # noqa: E402
from probes.history import benchmark_record  # noqa: E402

CONFIGS = ["smollm2-135m", "qwen2.5-0.5b", "llama-3.2-1b", "gemma-2-2b", "phi-3-mini-4k-instruct", "mistral-7b-v0.1"]
FAMILIES = ["ioi", "grammar", "neuron", "recommender", "induction", "sinks", "successor", "tracing"]  # causal ones
PARAMS = {"ioi_head_pairs": 24}  # the real LMs' registry parameters (fixtures/models.toml)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# Stated GPUs: dense bfloat16 tensor-core peak, HBM bandwidth (the vendor's data sheets), and the time eager PyTorch
# spends per op (kernel launch and Python dispatch: about 10 us on a current CPU host)
GPUS = {"H100 SXM": {"flops_s": 989e12, "bandwidth_bytes_s": 3.35e12, "op_s": 10e-6},
        "A100 80GB": {"flops_s": 312e12, "bandwidth_bytes_s": 2.0e12, "op_s": 10e-6},
        "L4": {"flops_s": 121e12, "bandwidth_bytes_s": 0.3e12, "op_s": 10e-6}}


def tokenizer_folder() -> Path:
    """SmolLM2's tokenizer files (its GGUF dequantised once into the model cache)."""
    from fixtures.models import resolve
    from probes import access
    return Path(access.folder(resolve("smollm2-135m")))


def build(name: str, layers: int, out: Path, tok: Path) -> dict:
    """A random-init float32 model of ``name`` cut to ``layers`` blocks, saved in ``out`` with SmolLM2's tokenizer;
    its shape (parameters counted, the real config's layer count)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    d = real_configs.shortened(name, layers)
    real_vocab = d["vocab_size"]
    d["vocab_size"] = max(real_vocab, len(AutoTokenizer.from_pretrained(tok)))
    mt = d.pop("model_type")
    cfg = AutoConfig.for_model(mt, **d)
    if not (out / "model.safetensors").exists():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg).eval()
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        for f in TOKENIZER_FILES:
            shutil.copy(tok / f, out / f)
        del model
    full = real_configs.load(name)
    with torch.device("meta"):
        m = AutoModelForCausalLM.from_config(cfg)
    return {"params": sum(p.numel() for p in m.parameters()), "vocab": d["vocab_size"], "real_vocab": real_vocab,
            "real_layers": real_configs.n_layers(full)}


def registry(path: Path, models: dict[str, Path]) -> None:
    lines = []
    for mid, folder in models.items():
        lines += [f"[models.{mid}]", 'source = "local"', f'path = "{folder}"', 'kind = "causal"',
                  f"families = {json.dumps(FAMILIES)}", f"[models.{mid}.params]",
                  *[f"{k} = {json.dumps(v)}" for k, v in PARAMS.items()], ""]
    path.write_text("\n".join(lines))


def run(mode: str, mid: str, reg: Path, work: Path, threads: int, timeout: float, dtype: str = "float32") -> tuple[list[dict], float, int]:
    """One pytest process over every claim of ``mid``: the plugin's rows, the wall time, the exit status."""
    out = work / f"{mid}.{mode}.jsonl"
    out.unlink(missing_ok=True)
    env = {**os.environ, "ROOFLINE_MODE": mode, "ROOFLINE_OUT": str(out), "OMP_NUM_THREADS": str(threads),
           "INTERP_CLAIMS_CACHE": str(work / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", *[f"claims/test_{f}.py" for f in FAMILIES], "-p", "roofline_plugin", "-p", "no:cacheprovider", "-n", "0",
           "-q", "--models", mid, "--dtype", dtype, "--exact", "off", "-o", f"claims_registry={reg}", "-o", f"claims_snapshots={work / 'snapshots'}",
           f"--artifacts={work / ('art-' + mid)}"]
    t0 = time.perf_counter()
    try:
        rc = subprocess.call(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        rc = 124
    wall = time.perf_counter() - t0
    rows = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    return rows, wall, rc



def forced(folder: Path, work: Path, threads: int, timeout: float, dtype: str) -> list[dict]:
    """benchmarks/cost_forced.py on ``folder``: the rows of the claims a random model stops before measuring."""
    out = work / f"{folder.name}.forced.jsonl"
    out.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "INTERP_CLAIMS_CACHE": str(work / "cache")}
    try:
        subprocess.call([sys.executable, str(ROOT / "benchmarks" / "cost_forced.py"), str(folder), str(out),
                         "--dtype", dtype], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    return [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []


def measure(name: str, layers: int, work: Path, tok: Path, a) -> dict:
    """One config at one layer count: built, its claims counted and timed, the three gated claims forced."""
    folder = work / f"{name}-L{layers}"
    mid = f"{name}-L{layers}".replace(".", "_")
    t0 = time.perf_counter()
    info = build(name, layers, folder, tok)
    built = time.perf_counter() - t0
    reg = work / "models.toml"
    registry(reg, {mid: folder})
    rows, wall, rc = run("count", mid, reg, work, a.threads, a.timeout, a.dtype)
    force = {r["claim"]: r for r in forced(folder, work, a.threads, a.timeout, a.dtype)}
    for r in rows:
        if r["claim"] in force and r.get("precondition"):
            r.update({k: force[r["claim"]][k] for k in ("seconds", "flops", "bytes", "ops", "rss_peak", "anon_peak")},
                     forced=True)
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(work / "cache", ignore_errors=True)
    shutil.rmtree(work / ("art-" + mid), ignore_errors=True)
    print(f"[cost] {name} at {layers} layers ({info['params'] / 1e6:.0f}M parameters): {len(rows)} claims, "
          f"{sum(r['seconds'] for r in rows):.0f} s in them, pytest exit {rc}, {wall:.0f} s wall "
          f"(+ {built:.0f} s to build)", flush=True)
    return {"config": name, "layers": layers, **info, "wall_s": wall, "exit": rc, "rows": rows}


def family_sums(rows: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in rows:
        f = out.setdefault(r["claim"].split(".")[0], {"seconds": 0.0, "flops": 0, "bytes": 0, "ops": 0,
                                                      "rss_peak": 0, "forced": []})
        for k in ("seconds", "flops", "bytes", "ops"):
            f[k] += r.get(k, 0)
        f["rss_peak"] = max(f["rss_peak"], r.get("rss_peak", 0))
        if r.get("forced"):
            f["forced"].append(r["claim"])
    return out


def coefficients(xs: list[int], ys: list[float]) -> np.ndarray:
    """``(c, b, a)`` of ``a + b L + c L^2`` (degree at most 2 and below the number of points) by least squares with
    ``b, c >= 0``: a family's work does not shrink as layers are added, and a selection that happens to cost less at
    one depth (a random model's top heads lying lower) must not bend the curve down. The intercept is free (the
    shallowest cut can sit in a cheaper regime: fewer heads than the screen measures exactly)."""
    from scipy.optimize import lsq_linear
    deg = min(2, len(xs) - 1)
    X = np.array([[float(x) ** k for k in range(deg, -1, -1)] for x in xs])
    scale = X.max(0)
    fit = lsq_linear(X / scale, np.asarray(ys, dtype=float), bounds=([0.0] * deg + [-np.inf], np.inf),
                     method="bvls")
    return fit.x / scale


def poly(xs: list[int], ys: list[float], x: int) -> float:
    """That polynomial at ``x``."""
    return float(np.polyval(coefficients(xs, ys), x))


def growth(xs: list[int], ys: list[float], x: int) -> float | None:
    """How fast that polynomial grows at ``x``: the exponent k of a local ``L^k`` (d log y / d log L); 1 for work
    proportional to the layers, 2 for a sweep resumed from each layer, 0 for work the layers do not change."""
    if len(xs) < 2:
        return None
    c = coefficients(xs, ys)
    y = np.polyval(c, x)
    return float(x * np.polyval(np.polyder(c), x) / y) if y > 0 else None


def marginal_rate(sums: list[dict]) -> float:
    """Seconds per FLOP that the work added between consecutive cuts took, over every family of one config (least
    squares through the origin on the increments: each family's fixed cost, its stimuli, statistics and figures,
    cancels out). FLOPs alone: with ops or bytes beside them, a few increments of one config cannot tell the terms
    apart (they grow together) and the fit trades one for another."""
    dx = np.array([b[f]["flops"] - a[f]["flops"] for a, b in zip(sums, sums[1:]) for f in a if f in b], dtype=float)
    dt = np.array([b[f]["seconds"] - a[f]["seconds"] for a, b in zip(sums, sums[1:]) for f in a if f in b])
    return max(0.0, float(dx @ dt / (dx @ dx))) if dx.any() else 0.0


def full_params(name: str, vocab: int) -> int:
    """Parameters of the full config (its vocabulary as the benchmark ran it), counted on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    d = real_configs.load(name)
    d["vocab_size"] = vocab
    mt = d.pop("model_type")
    with torch.device("meta"):
        m = AutoModelForCausalLM.from_config(AutoConfig.for_model(mt, **d))
    return sum(p.numel() for p in m.parameters())


def fit(runs: list[dict], gpu: dict) -> list[dict]:
    """Per config and family: the counted work at the real layer count (:func:`coefficients`' polynomials in the
    layers), its time on this machine (the deepest cut's, plus the added FLOPs at the config's
    :func:`marginal_rate`) and on the stated GPU, and the predicted peak memory."""
    out = []
    for name in dict.fromkeys(r["config"] for r in runs):
        mine = sorted([r for r in runs if r["config"] == name and r["layers"] != r["real_layers"]],
                      key=lambda r: r["layers"])
        full = next((r for r in runs if r["config"] == name and r["layers"] == r["real_layers"]), None)
        if not mine:
            continue
        Ls = [r["layers"] for r in mine]
        sums = [family_sums(r["rows"]) for r in mine]
        Lreal = mine[0]["real_layers"]
        params = full_params(name, mine[0]["vocab"])
        rate = marginal_rate(sums)
        bytes_per_param = 2 if mine[0].get("dtype") in ("bfloat16", "float16") else 4
        measured_full = family_sums(full["rows"]) if full else {}
        for fam in FAMILIES:
            if not all(fam in s for s in sums):
                continue
            at = {k: poly(Ls, [s[fam][k] for s in sums], Lreal) for k in ("flops", "bytes", "ops")}
            deep = sums[-1][fam]  # the deepest measured cut, and the work the full depth adds to it
            # its peak, plus the weights the full depth adds, twice: the model and a random-init null
            rss = deep["rss_peak"] + 2 * bytes_per_param * (params - mine[-1]["params"])
            cpu_s = deep["seconds"] + rate * (at["flops"] - deep["flops"])
            gpu_s = max(at["flops"] / gpu["flops_s"], at["bytes"] / gpu["bandwidth_bytes_s"]) + at["ops"] * gpu["op_s"]
            grows = {k: growth(Ls, [s[fam][k] for s in sums], Lreal) for k in ("flops", "ops")}
            row = {"config": name, "family": fam, "growth": grows, "real_layers": Lreal, "params": params,
                   "vocab": mine[0]["vocab"], "real_vocab": mine[0]["real_vocab"],
                   "measured": {str(L): {k: s[fam][k] for k in ("seconds", "flops", "bytes", "ops", "rss_peak")}
                                for L, s in zip(Ls, sums)},
                   "forced": sorted({c for s in sums for c in s[fam]["forced"]}),
                   "predicted": {**at, "cpu_s": cpu_s, "gpu_s": gpu_s, "rss_peak": rss},
                   "marginal_flops_s": 1 / rate if rate > 0 else None}
            if fam in measured_full:
                row["measured_full"] = {k: measured_full[fam][k] for k in ("seconds", "flops", "ops", "rss_peak")}
            out.append(row)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default=",".join(CONFIGS), help="names of fixtures/configs/*.json")
    ap.add_argument("--layers", default="2,4,6", help="the layer counts each config is cut to (default 2,4,6)")
    ap.add_argument("--validate", default="smollm2-135m",
                    help="configs also run at full size, to set the measured cost beside the prediction ('' none)")
    ap.add_argument("--threads", type=int, default=2, help="threads of the one pytest process (default 2)")
    ap.add_argument("--dtype", default="bfloat16", help="the models' dtype (default bfloat16)")
    ap.add_argument("--gpu", default="H100 SXM", choices=sorted(GPUS), help="the stated GPU of the prediction")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds one pytest process may take")
    ap.add_argument("--work", default=None, help="a folder for the models and raw rows (default: a temporary one); "
                                                 "runs already in its raw.json are not run again")
    ap.add_argument("--json", default=None, help="write the measurements and the fit here")
    a = ap.parse_args(argv)
    started = time.time()
    known = sorted(p.stem for p in real_configs.CONFIGS.glob("*.json")  # the causal LMs (the families measured)
                   if real_configs.load(p.stem)["model_type"] != "bert")
    unknown = [c for c in a.configs.split(",") + [c for c in a.validate.split(",") if c] if c not in known]
    if unknown:
        ap.error(f"no causal-LM config {', '.join(unknown)} in fixtures/configs/; choose from {', '.join(known)}")
    work = Path(a.work or tempfile.mkdtemp(prefix="bench-cost-"))
    work.mkdir(parents=True, exist_ok=True)
    raw = work / "raw.json"
    runs = json.loads(raw.read_text()) if raw.exists() else []
    tok = tokenizer_folder()
    check = [c for c in a.validate.split(",") if c]
    plan = [(c, L) for c in a.configs.split(",")
            for L in [int(x) for x in a.layers.split(",")] + ([real_configs.n_layers(real_configs.load(c))]
                                                               if c in check else [])]
    for name, L in plan:
        if any(r["config"] == name and r["layers"] == L and r["dtype"] == a.dtype for r in runs):
            continue
        runs.append({**measure(name, L, work, tok, a), "dtype": a.dtype, "threads": a.threads})
        raw.write_text(json.dumps(runs))
    runs = [r for r in runs if r["dtype"] == a.dtype]
    rows = fit(runs, GPUS[a.gpu])
    print(f"\n{'config':<24} {'family':<12} {'layers':>6} {'pred. s':>9} {'meas. s':>8} {'GPU s':>7} "
          f"{'TFLOP':>7} {'peak GB':>8}  forced")
    for r in rows:
        p, m = r["predicted"], r.get("measured_full", {})
        print(f"{r['config']:<24} {r['family']:<12} {r['real_layers']:>6} {p['cpu_s']:9.0f} "
              f"{m.get('seconds', float('nan')):8.0f} {p['gpu_s']:7.1f} {p['flops'] / 1e12:7.1f} "
              f"{p['rss_peak'] / 1e9:8.1f}  {', '.join(r['forced'])}")
    for name in dict.fromkeys(r["config"] for r in rows):
        mine = [r for r in rows if r["config"] == name]
        print(f"{name}: the catalogue's causal families {sum(r['predicted']['cpu_s'] for r in mine) / 60:.0f} min "
              f"on this machine, {sum(r['predicted']['gpu_s'] for r in mine) / 60:.1f} min on the {a.gpu} "
              f"(counted work), peak {max(r['predicted']['rss_peak'] for r in mine) / 1e9:.1f} GB")
    if a.json:
        Path(a.json).write_text(json.dumps({
            **benchmark_record("benchmarks/bench_cost.py", argv, started),
            "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "threads": a.threads, "dtype": a.dtype,
            "gpu": {"name": a.gpu, **GPUS[a.gpu]}, "params": PARAMS,
            "runs": [{k: v for k, v in r.items() if k != "rows"} | {"families": family_sums(r["rows"])}
                     for r in runs],
            "rows": rows}, indent=1) + "\n")
        print(f"[cost] wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
