"""The measurements of benchmarks/bench_cost.py's three claims that a randomly initialised model cannot reach: each
claim stops at its precondition (no known fact to trace, no induction head to compose with, no tall/short gap to
investigate) before it measures, so their cost is timed here with the selection a trained model would give made
without it, calling the same library functions with the same stimuli and draws as the claim:

* ``tracing.subject_site``: the first 16 facts traced (the claim traces the first 16 *known* ones: the same count)
  and 4 facts of a random-init copy;
* ``induction.composition``: the top previous-token heads of the lower half of the layers (at most the claim's
  ``composition_k_max``) and the 4 top induction heads of the upper half, zeroed and 20 random draws of as many
  heads of the same layers, attention read at the induction heads' layers (on a trained model the two kinds of
  heads lie at a depth of their own: the cost grows with the layers between them);
* ``neuron.workflow``: the steps of ``investigate`` (probes.families.neuron.workflow) on tall/short (lens, layer
  x position, MLP and attribution patching), then exact neuron patching in 2 layers (the first and the middle one:
  Gemma-3 found 2), 10 neurons read against the unembedding, and those and 100 random sets of the same layers and
  sizes ablated over the templated size cases.

    python benchmarks/cost_forced.py MODEL_FOLDER OUT.jsonl [--dtype bfloat16]

One JSON line per claim, as benchmarks/roofline_plugin.py writes them (time, FLOPs, bytes, ops, peak memory).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from roofline_plugin import Count, Peak  # noqa: E402

from fixtures.loaders import stimuli  # noqa: E402
from probes import attention, stats  # noqa: E402
from probes.errors import StimulusError  # noqa: E402
from probes.families.induction import analysis as induction  # noqa: E402
from probes.families.neuron import analysis as neuron  # noqa: E402
from probes.families.neuron import workflow as neuron_workflow  # noqa: E402
from probes.families.tracing import analysis as tracing  # noqa: E402
from probes.loading import load, random_copy  # noqa: E402
from probes.registry import ModelSpec  # noqa: E402


def subject_site(lm) -> None:
    s = stimuli("facts_v1")
    f = tracing.tokenize(lm, s["facts"])
    tracing.trace(lm, f.subset(list(range(s["trace_facts"]))), s["noise"], s["samples"], s["seed"])
    rnd = random_copy(lm, s["null_seed"])
    tracing.trace(rnd, f.subset(list(range(s["null_facts"]))), s["noise"], s["samples"], s["seed"])


def composition(lm) -> None:
    S = stimuli("attention_v1")
    ids, p = induction.random_repeats(lm, S["n_sequences"], S["length"], S["seed"])
    att = attention.attention(lm, ids)
    prev = induction.previous_token_scores(att, p).mean(-1)
    ind = induction.induction_scores(att, p, S["length"]).mean(-1)
    L, H = ind.shape
    half = max(1, L // 2)
    prev_heads = [h for h in attention.top_heads(prev, L * H) if h[0] < half][:S["composition_k_max"]]
    ind_heads = [h for h in attention.top_heads(ind, L * H) if h[0] >= half][:4]
    pool = [(layer, h) for layer in range(half) for h in range(H) if (layer, h) not in prev_heads]
    draws = induction.random_head_sets(stats.rng(S["seed"]), pool, len(prev_heads), S["random_head_draws"])
    induction.ablated_induction_scores(lm, ids, p, S["length"], ind_heads, [prev_heads] + draws)


def workflow(lm) -> None:
    """The steps of ``investigate`` (probes.families.neuron.workflow) on tall/short with its selection fixed as a
    trained model makes it (Gemma-3-270m: lens jumps at 2 layers, 1 and 13 of 18; 10 outlier neurons): neuron patching
    in the first and the middle layer (each resumed from its layer: 1.5 L layer passes per neuron, Gemma-3's took 1.2
    L), the 5 most restoring neurons of each read against the unembedding, then those 10 and 100 random sets of the same
    layers and sizes ablated over the templated size cases. (On a random model ``investigate`` picks as many layers as
    its lens happens to jump at: the work would follow the draw, and the fit in the layers with it.)"""
    stim = stimuli("neuron_v1")
    c = next(neuron.make_case(lm, s["name"], s["clean"], s["corrupted"], s["target"], s["foil"])
             for s in stim["seed"] if s["name"] == "tall_short")
    neuron.logit_diffs(lm, c)
    neuron.logit_lens(lm, c)
    neuron.layer_position_patching(lm, c)
    neuron.mlp_layer_patching(lm, c)
    neuron.attribution_patching(lm, c)
    L = lm.adapter.n_layers
    found = {}
    for layer in (0, L // 2):
        top = np.argsort(-neuron.neuron_patching(lm, c, layer), kind="stable")[:5]
        for n in top:
            neuron.congruence(lm, layer, int(n), 8, spaces=("unembed",))
        found[layer] = top
    size = []
    for s in stim["templated"]:
        if s["family"] == "size":
            try:
                size.append(neuron.make_case(lm, s["name"], s["clean"], s["corrupted"], s["target"], s["foil"]))
            except StimulusError:
                pass
    neuron.ablated_diffs(lm, size or [c], [{}, found] + neuron_workflow.random_neuron_sets(found, lm.adapter.d_mlp))


WORKLOADS = {"tracing.subject_site": subject_site, "induction.composition": composition,
             "neuron.workflow": workflow}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("out")
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args(argv)
    spec = ModelSpec(id=Path(a.folder).name, source="local", path=str(Path(a.folder).resolve()), kind="causal",
                     families=None)
    lm = load(spec, "cpu", a.dtype)
    for claim, fn in WORKLOADS.items():
        peak, count, t0 = Peak(), Count(), time.perf_counter()
        with count:
            fn(lm)
        seconds = time.perf_counter() - t0
        rss, anon = peak.stop()
        with open(a.out, "a") as f:
            f.write(json.dumps({"claim": claim, "model": spec.id, "forced": True, "seconds": seconds,
                                "flops": count.flops, "bytes": count.bytes, "ops": count.ops, "rss_peak": rss,
                                "anon_peak": anon, "outcome": "measured"}) + "\n")
        print(f"{claim}: {seconds:.1f} s, {count.flops / 1e9:.0f} GFLOP", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
