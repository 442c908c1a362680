"""Benchmark: neuron patching, one forward pass per neuron (the seed's loop) vs batched exact patching vs
attribution patching; and how well attribution tracks exact patching on the trained organisms.

    python benchmarks/bench_neurons.py [--config gpt2] [--layer 6] [--loop-neurons 512] [--tokens 6]

Part 1 (speed) runs in one process on a randomly initialised model built from the real config in
fixtures/configs/ (gpt2: 12 layers x 3072 neurons), with a seed-shaped case ("John is tall. Mary is": 6 tokens,
the corruption at position 2; random token ids). It times, on the same neurons, the loop and the batched exact
patching (max |diff| < 1e-4), then the batched patching of the whole layer against the loop's per-neuron time
times the layer's size (target: >= 20x), and attribution patching of every neuron of every layer (one forward +
one backward). The batched patching starts at the patched layer from the cached residual stream, takes the
shared prefix (positions before the corruption) from a key/value cache, and reads out only the target - foil
direction at the last position.

Part 2 (accuracy of the screen) computes, on the trained gpt2 and GPT-Neo organisms and the seed's size cases,
the correlation between attribution and exact restorations of every neuron of every layer, and how many of the
exact top-10 neurons of each layer are in the attribution's top-10.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from probes import neuron as Nn  # noqa: E402
from probes.adapters import adapter_for  # noqa: E402
from probes.loading import LoadedModel, load  # noqa: E402
from probes.registry import ModelSpec, resolve  # noqa: E402
from tests.conftest import random_model  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def speed(a) -> bool:
    cfg = json.loads((ROOT / "fixtures/configs" / f"{a.config}.json").read_text())
    L = cfg.get("n_layer") or cfg.get("num_layers")
    model = random_model(a.config, n_layers=L)
    lm = LoadedModel(ModelSpec(id=f"random-{a.config}", source="local", kind="causal", families=[]), model, None,
                     adapter_for(model), torch.device("cpu"), torch.float32)
    g = torch.Generator().manual_seed(0)
    V = model.config.vocab_size
    clean = torch.randint(1000, V - 1, (1, a.tokens), generator=g)
    corr = clean.clone()
    corr[0, 2] = (clean[0, 2] + 1) % V
    case = Nn.Case("random", clean, corr, target=int(clean[0, 2]), foil=int(corr[0, 2]))
    N = lm.adapter.d_mlp
    idx = np.arange(min(a.loop_neurons, N))
    print(f"model: randomly initialised {a.config} config, {L} layers x {N} neurons; 1 case x {a.tokens} tokens; "
          f"CPU, {a.threads} threads; layer {a.layer}")
    loop, t_loop = timed(lambda: Nn.neuron_patching_loop(lm, case, a.layer, idx))
    fast, t_fast = timed(lambda: Nn.neuron_patching(lm, case, a.layer, idx))
    diff = float(np.abs(loop - fast).max())
    ratio = t_loop / t_fast
    print(f"  {len(idx)} neurons: loop {t_loop:7.2f}s  batched {t_fast:6.2f}s  ratio {ratio:5.1f}x  "
          f"max|diff| {diff:.2e}")
    _, t_layer = timed(lambda: Nn.neuron_patching(lm, case, a.layer))
    t_loop_layer = t_loop / len(idx) * N
    ratio_layer = t_loop_layer / t_layer
    print(f"  whole layer ({N} neurons): batched {t_layer:.2f}s; loop {t_loop_layer:.0f}s (extrapolated from the "
          f"{len(idx)} timed: one forward per neuron, constant cost)  ratio {ratio_layer:.1f}x")
    _, t_attr = timed(lambda: Nn.attribution_patching(lm, case))
    print(f"  attribution patching, all {L} x {N} = {L * N} neurons: {t_attr:.2f}s "
          f"({t_loop / len(idx) * N * L / t_attr:.0f}x faster than the loop over all of them, extrapolated)")
    good = ratio_layer >= 20 and diff < 1e-4
    print(f"target (patching a whole layer: batched >= 20x faster than the loop, max|diff| < 1e-4): "
          f"{'met' if good else 'NOT met'} ({ratio_layer:.1f}x; on the {len(idx)} timed neurons alone, with the "
          f"batched run's fixed setup cost: {ratio:.1f}x)")
    return good


def accuracy() -> None:
    stim = json.loads((ROOT / "fixtures/stimuli/neuron_v1.json").read_text())["seed"]
    for name in ("gpt2-organism", "gpt-neo-organism"):
        lm = load(resolve(name), device="cpu")
        for c in stim:
            case = Nn.make_case(lm, c["name"], c["clean"], c["corrupted"], c["target"], c["foil"])
            attr = Nn.attribution_patching(lm, case)
            exact = np.stack([Nn.neuron_patching(lm, case, l) for l in range(lm.adapter.n_layers)])
            r = np.corrcoef(attr.ravel(), exact.ravel())[0, 1]
            hits = [len(set(np.argsort(-exact[l])[:10]) & set(np.argsort(-attr[l])[:10]))
                    for l in range(lm.adapter.n_layers)]
            print(f"  {name:17s} {c['name']:11s} r(attribution, exact) = {r:.3f}; exact top-10 found in the "
                  f"attribution top-10, per layer: {hits}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="gpt2", help="a config in fixtures/configs (default gpt2)")
    ap.add_argument("--layer", type=int, default=6)
    ap.add_argument("--loop-neurons", type=int, default=512, help="neurons timed with the loop (default 512)")
    ap.add_argument("--tokens", type=int, default=6, help="prompt length (the seed's tall/short prompt: 6)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    speed(a)
    print("attribution vs exact patching on the trained organisms (all neurons of all layers):")
    accuracy()


if __name__ == "__main__":
    main()
