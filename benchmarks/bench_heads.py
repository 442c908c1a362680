"""Benchmark: head patching / silencing, one forward pass per head (the seed's loop) vs batched.

    python benchmarks/bench_heads.py [--config gpt2] [--prompts 1 8] [--layers 12]

Runs both methods in one process on the same randomly initialised model (built
from the real config in fixtures/configs/) and the same prompts, prints the
times, their ratio and the largest absolute difference between the results,
for each prompt-batch size (1 = the seed's single prompt pair; 8 = a batch).
Target (issue #2): ratio >= 5x on gpt2's full config on CPU, max |diff| < 1e-4.

The loop is the seed's method exactly: one forward of the whole model per head, logits at every position.
Where the speed comes from: heads are grouped by layer and edited in copies of the batch in one forward pass,
the pass starts at the edited layer from the cached clean residual stream, and only the two target logits are
computed. (bench_patching.py also times a lean loop and the prefix key/value cache.)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from probes import ioi  # noqa: E402
from probes.adapters import adapter_for  # noqa: E402
from probes.loading import LoadedModel  # noqa: E402
from probes.registry import ModelSpec  # noqa: E402
from tests.conftest import random_model  # noqa: E402


def make_prompts(vocab: int, P: int, T: int, seed: int = 0) -> ioi.PromptSet:
    """IOI-shaped random prompts: A at 1, B at 3, S2 at T-4 (B in base, A in source)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(1000, vocab - 1, (P, T), generator=g)
    a, b = torch.randint(1000, vocab - 1, (P,), generator=g), torch.randint(1000, vocab - 1, (P,), generator=g)
    base[:, 1], base[:, 3], base[:, T - 4] = a, b, b
    source = base.clone()
    source[:, T - 4] = a
    return ioi.PromptSet(base, source, a, b, [""] * P, [("A", "B")] * P)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="gpt2", help="a config in fixtures/configs (default gpt2)")
    ap.add_argument("--layers", type=int, default=None, help="fewer layers than the real config (default: all)")
    ap.add_argument("--prompts", type=int, nargs="+", default=[1, 8], help="prompt-batch sizes to time")
    ap.add_argument("--tokens", type=int, default=15, help="prompt length (the seed's IOI prompt is 15 tokens)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import json
    cfg = json.loads((Path(__file__).resolve().parents[1] / "fixtures/configs" / f"{a.config}.json").read_text())
    L = a.layers or cfg.get("n_layer") or cfg.get("num_layers")
    model = random_model(a.config, n_layers=L)
    lm = LoadedModel(ModelSpec(id=f"random-{a.config}", source="local", kind="causal", families=[]), model, None,
                     adapter_for(model), torch.device("cpu"), torch.float32)
    heads = ioi.all_heads(lm)
    ok = {}
    for P in a.prompts:
        s = make_prompts(model.config.vocab_size, P, a.tokens)
        print(f"model: randomly initialised {a.config} config, {L} layers x {lm.adapter.n_heads} heads = "
              f"{len(heads)} heads; {P} prompt(s) x {a.tokens} tokens; CPU, {a.threads} threads")
        src = ioi.head_acts(lm, s.source)
        base_acts = ioi.head_acts(lm, s.base)
        jobs = {"patching": lambda l, h: src[l, :, :, h, :],
                "silencing (1 permutation)": ioi.permutation_payload(base_acts, seed=0, rep=0)}
        for name, payload in jobs.items():
            loop, t_loop = timed(lambda: ioi.head_edit_scores_loop(lm, s, heads, payload))
            fast, t_fast = timed(lambda: ioi.head_edit_scores(lm, s, heads, payload))
            diff = (loop - fast).abs().max().item()
            ratio = t_loop / t_fast
            ok[(P, name)] = ratio >= 5 and diff < 1e-4
            print(f"  {name:28s} loop {t_loop:7.2f}s  batched {t_fast:6.2f}s  ratio {ratio:5.1f}x  "
                  f"max|diff| {diff:.2e}")
    for (P, name), good in ok.items():
        print(f"target (>= 5x, max|diff| < 1e-4) with {P} prompt(s), {name}: {'met' if good else 'NOT met'}")


if __name__ == "__main__":
    main()
