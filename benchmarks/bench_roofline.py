"""Every claim against the machine's limit, measured in one run: what each claim x model executed (floating-point
operations, bytes through memory), how long it took and how much memory it held, beside the arithmetic and memory
throughput this machine reaches with the same threads.

    python benchmarks/bench_roofline.py [--models smollm2-135m,gemma3-270m] [-k EXPR] [--threads 1]
                                        [--json docs/data/roofline.json]

Two pytest passes over the claims of the named models (``-k`` narrows them), each one process on ``--threads``
threads (default 1: what each xdist worker of the default ``pytest claims/ -n auto`` gets on 2 cores):

* **count**: each claim's setup (its fixtures) and body under a ``TorchDispatchMode``
  (benchmarks/roofline_plugin.py) that adds up the FLOPs of every op with a formula in ``torch.utils.flop_counter``
  (matrix products, attention; element-wise ops are not counted) and the bytes of every non-view op's tensor inputs
  and outputs (the traffic if no cache kept anything: an upper bound);
* **time**: the same claims, plain: each claim's wall time (setup included) and the process's peak resident memory
  while it ran, and of it the peak anonymous memory (resident less file-backed pages: model weights are read
  through mmap from the model cache, pages the kernel can drop and that processes mapping one file share); and
  **where the time went**, from the main thread's stack sampled every 5 ms: the models' passes (torch and the model
  code: matrix products and the element-wise work around them), loading (a model or a random-init copy),
  statistics (numpy, scipy), figures (matplotlib), the tokenizer, and the claims' own code.

**The limit**, measured in the same run with the same threads: GEMM throughput (the best of float32 matrix products
of the models' own MLP shapes on 512 tokens) and memory bandwidth (a 256 MiB copy, bytes read + written). A claim's
**roofline time** is ``max(FLOPs / GEMM throughput, bytes / bandwidth)``, the least time its counted work needs on
this machine; its **fraction of the limit** is that over its measured time. A fraction near 1 is a claim bound by
arithmetic or memory traffic; a small one spends its time elsewhere (Python loops over components, tiny batches,
element-wise work, tokenisation, statistics on the CPU in numpy). A fraction above 100% marks a claim whose counted
bytes mostly stayed in the CPU's caches (the byte count is an upper bound of the traffic): its bound is then its
arithmetic, or time outside both. Ratios travel between machines; seconds do not.

A claim's time and FLOPs include the fixtures it is the first to need (the model's load, a family's shared
activations, its random-init nulls): the claims after it in the same family then find them in the model's cache
(a row of 0 GFLOP). Peak memory is the process's resident memory while the claim ran, its model and what the
family keeps included.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
from fixtures.models import resolve  # noqa: E402
from probes import access  # noqa: E402
from probes.history import benchmark_record  # noqa: E402
from docs import went_to  # noqa: E402 - the performance page's wording of the same shares
from roofline_plugin import WHERE  # noqa: E402


def gemm_limit(shapes: list[tuple[int, int, int]], seconds: float = 0.5) -> tuple[float, tuple]:
    """The best float32 GEMM throughput (FLOP/s) over ``shapes`` (M, K, N), each timed for about ``seconds``."""
    best, where = 0.0, None
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        a @ b  # warm up
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            reps += 1
        rate = 2 * m * k * n * reps / (time.perf_counter() - t0)
        if rate > best:
            best, where = rate, (m, k, n)
    return best, where


def bandwidth_limit(mib: int = 256, reps: int = 6) -> float:
    """Memory bandwidth (bytes/s) of a large copy: read + write."""
    a = torch.randn(mib * (1 << 20) // 4)
    b = torch.empty_like(a)
    b.copy_(a)
    t0 = time.perf_counter()
    for _ in range(reps):
        b.copy_(a)
    return 2 * a.numel() * 4 * reps / (time.perf_counter() - t0)


def run_pass(mode: str, models: str, k: str | None, threads: int, out: Path) -> int:
    env = {**os.environ, "ROOFLINE_MODE": mode, "ROOFLINE_OUT": str(out), "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", "claims/", "-p", "roofline_plugin", "-p", "no:cacheprovider", "-n", "0",
           "-q", "--models", models, f"--artifacts={out.parent / ('art-' + mode)}"] + (["-k", k] if k else [])
    t0 = time.perf_counter()
    print(f"[roofline] {mode} pass: {' '.join(cmd[1:])}", flush=True)
    rc = subprocess.call(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"[roofline] {mode} pass: exit {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
    return rc


# What each heavy claim's measurement cannot do without (its design: prompts, draws, nulls), to set beside what it
# executed: a claim whose counted work is far above this does arithmetic it does not need.
MINIMUM = {
    "induction.ablation": "1 clean pass of the 16 repeated sequences, then 1 top-k and 20 random-draw ablations, "
                          "each from its first ablated layer; the loss needs every logit at the 25 second-repeat "
                          "positions",
    "induction.composition": "1 clean pass, then 1 + 20 ablations from the first zeroed layer up to the last "
                             "induction head's layer (attention weights there only)",
    "induction.previous_token": "the family's shared passes: the model and 3 random-init copies over the 16 "
                                "sequences with attention weights, the copies' losses at 50 positions",
    "neuron.workflow": "the investigation (lens, layer x position and per-neuron patching of the jump layers), then "
                       "102 neuron-set ablations (found, 100 random, none) of the templated size cases from the first "
                       "ablated layer; 2 unembedding rows at the last position",
    "ioi.head_patching": "one patched pass per head and prompt set, from the head's layer (the shared prefix "
                         "cached); 2 unembedding rows at the last position",
    "ioi.head_silencing": "3 permutations x every head x prompt set, each pass from the head's layer (a "
                          "permuted head changes every position: no prefix is shared)",
    "ioi.head_norms": "head outputs of every layer over the prompt sets, for the model and 3 random-init copies",
    "grammar.token_order": "the model and 5 random-init copies, 2 passes each (the sentences with their scrambled "
                           "orders; every token alone); MLP activations of every layer",
    "grammar.stimuli": "one pass over the stimulus words, MLP activations of every layer (shared by the family)",
    "tracing.subject_site": "per layer, 3 position classes x the traced facts, corrupted and restored, resumed after "
                            "the layer; one position's full-vocabulary probability",
    "neuron.top_contexts": "one pass over the held-out corpus, one neuron's activation",
    "sinks.attention": "the model and 3 random-init copies, one pass with attention weights each",
}


def merge(count: list[dict], timed: list[dict], peak_flops: float, bw: float) -> list[dict]:
    """One row per claim x model (the layers of a per-layer claim added up)."""
    rows: dict[tuple, dict] = {}
    for r in count:
        x = rows.setdefault((r["claim"], r["model"]), {"claim": r["claim"], "model": r["model"], "tests": 0,
                                                       "flops": 0, "bytes": 0, "seconds": 0.0, "rss_peak": 0})
        x["flops"] += r["flops"]
        x["bytes"] += r["bytes"]
        x["tests"] += 1
    for r in timed:
        x = rows.get((r["claim"], r["model"]))
        if x is not None:
            x["seconds"] += r["seconds"]
            x["rss_peak"] = max(x["rss_peak"], r["rss_peak"])
            x["anon_peak"] = max(x.get("anon_peak", 0), r.get("anon_peak", 0))
            where = x.setdefault("where", {})
            for k, v in r.get("where", {}).items():
                where[k] = where.get(k, 0.0) + v
    out = []
    for x in rows.values():
        t_roof = max(x["flops"] / peak_flops, x["bytes"] / bw)
        x.update(gflops=x["flops"] / 1e9, gbytes=x["bytes"] / 1e9, rss_gb=x["rss_peak"] / 1e9,
                 anon_gb=x.get("anon_peak", 0) / 1e9, minimum=MINIMUM.get(x["claim"]),
                 achieved_gflops_s=x["flops"] / x["seconds"] / 1e9 if x["seconds"] else None,
                 roofline_s=t_roof, fraction=t_roof / x["seconds"] if x["seconds"] else None,
                 bound="arithmetic" if x["flops"] / peak_flops >= x["bytes"] / bw else "memory")
        out.append(x)
    return sorted(out, key=lambda x: -x["seconds"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="smollm2-135m,gemma3-270m", help="registry ids (comma-separated)")
    ap.add_argument("-k", default=None, help="a pytest -k expression over the claims")
    ap.add_argument("--threads", type=int, default=1, help="threads of each pass and of the limits (default 1)")
    ap.add_argument("--json", default=None, help="write the table (and the limits, machine, versions) here")
    a = ap.parse_args(argv)
    started = time.time()
    torch.set_num_threads(a.threads)
    shapes = []
    for mid in a.models.split(","):
        c = access.config(resolve(mid))
        d, f = c.get("hidden_size") or c.get("n_embd"), c.get("intermediate_size") or 4 * (c.get("n_embd") or 0)
        shapes += [(512, d, f), (512, f, d)]
    peak_flops, shape = gemm_limit(shapes)
    bw = bandwidth_limit()
    print(f"[roofline] limit on {a.threads} thread(s): GEMM {peak_flops / 1e9:.1f} GFLOP/s (float32, {shape}), "
          f"memory {bw / 1e9:.1f} GB/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = {m: Path(tmp) / f"{m}.jsonl" for m in ("count", "time")}
        rcs = {m: run_pass(m, a.models, a.k, a.threads, out[m]) for m in ("time", "count")}
        read = {m: [json.loads(x) for x in out[m].read_text().splitlines()] if out[m].exists() else [] for m in out}
    rows = merge(read["count"], read["time"], peak_flops, bw)
    total = {k: sum(r[k] for r in rows) for k in ("flops", "bytes", "seconds")}
    total["where"] = {k: sum(r.get("where", {}).get(k, 0.0) for r in rows) for k in WHERE}
    total_roof = max(total["flops"] / peak_flops, total["bytes"] / bw)
    print(f"\n{'claim':<28} {'model':<14} {'s':>7} {'peak GB':>8} {'anon GB':>8} {'GFLOP':>8} {'GB moved':>9} "
          f"{'GFLOP/s':>8} {'of limit':>9}  {'bound':<10}  time went to")
    for r in rows:
        print(f"{r['claim']:<28} {r['model']:<14} {r['seconds']:7.1f} {r['rss_gb']:8.2f} {r['anon_gb']:8.2f} "
              f"{r['gflops']:8.1f} {r['gbytes']:9.1f} {r['achieved_gflops_s'] or 0:8.2f} "
              f"{100 * (r['fraction'] or 0):8.1f}%  {r['bound']:<10}  {went_to(r.get('where'))}")
    print(f"{'all':<43} {total['seconds']:7.1f} {'':>17} {total['flops'] / 1e9:8.1f} {total['bytes'] / 1e9:9.1f} "
          f"{total['flops'] / total['seconds'] / 1e9 if total['seconds'] else 0:8.2f} "
          f"{100 * total_roof / total['seconds'] if total['seconds'] else 0:8.1f}%  {'':<10}  "
          f"{went_to(total['where'], 0.01)}")
    if a.json:
        Path(a.json).write_text(json.dumps({
            **benchmark_record("benchmarks/bench_roofline.py", argv, started),
            "threads": a.threads, "exit": rcs,
            "limit": {"gemm_flops_s": peak_flops, "gemm_shape": shape, "bandwidth_bytes_s": bw},
            "total": {**total, "roofline_s": total_roof}, "rows": rows}, indent=1) + "\n")
        print(f"[roofline] wrote {a.json}")
    return 0 if all(rc in (0, 6) for rc in rcs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
