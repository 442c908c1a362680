"""Lesioning claims: MLP neurons separate "him" from "her", and zeroing them shifts masked-token logits.

Source: seed 001 (Project 46, "Statistics-based lesioning of MLP neurons", M. X. Cohen), Parts 1-7;
reference model bert-large-uncased (registry: layer 9 for Parts 1-2). Stimulus: fixtures/stimuli/lesion_v1.json
(the seed's 54+54 sentences, a templated set for the organisms, the seed's Robert/Lucy triple, 40 held-out
masked sentences). Tuning reads ``intermediate.dense`` (site ``mlp_pre``, pre-GELU, as the seed's Part 3);
the post-GELU counts (``mlp_act``) are recorded beside them.

Status: Parts 1-3 (tuning) are claims here. Parts 4-7 (clean masked predictions, ablation in the last layer
and through the layers, least-tuned and random-set controls) have their probes (probes/lesion.py:
masked_margins, triple_logits, random_sets) but are not yet claims: on the BERT organism the measured
ablation effect does not beat random neuron sets (see issue #4), and a claim must not be shipped red.

Note: the tuning claims compare activations at *different input tokens* (him vs her), so any model whose
embeddings tell the two apart passes them, a randomly initialised one included; the causal claims
(ablation vs random and least-tuned neurons) are the ones that need a trained model.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from probes import figures, lesion, stats

FAMILY = "lesion"
STIM = json.loads((Path(__file__).resolve().parents[1] / "fixtures/stimuli/lesion_v1.json").read_text())
N_NULL = 200
_CACHE: dict[tuple, object] = {}


def tuning_sentences(lm) -> tuple[list[str], list[str]]:
    him, her = list(STIM["tuning"]["him"]), list(STIM["tuning"]["her"])
    if lm.spec.param("lesion_templated", lm.spec.tier == "organism"):
        him += STIM["tuning_templated"]["him"]
        her += STIM["tuning_templated"]["her"]
    return him, her


def acts(lm, site: str = "mlp_pre") -> tuple[np.ndarray, np.ndarray]:
    """(L, n, N) activations at the target token for him and her sentences (cached per model and site)."""
    key = (lm.spec.id, "acts", site)
    if key not in _CACHE:
        him_id, her_id = lesion.target_ids(lm)
        him, her = tuning_sentences(lm)
        _CACHE[key] = (lesion.target_acts(lm, him, him_id, "him", site), lesion.target_acts(lm, her, her_id, "her", site))
    return _CACHE[key]


def tuning_layer(lm) -> int:
    return lm.spec.param("lesion_layer", (2 * lm.adapter.n_layers) // 5)


def shuffled_sig(a: np.ndarray, b: np.ndarray, n: int, seed: int) -> np.ndarray:
    x = np.concatenate([a, b])
    g = stats.rng(seed)
    return np.array([stats.fdr(stats.ttest_ind(*np.split(x[g.permutation(len(x))], [len(a)]))[1]).sum()
                     for _ in range(n)])


@pytest.mark.claim(id="lesion.tuning", family=FAMILY, source="seed 001 Parts 1-2")
def test_him_her_neurons_in_one_layer(lm, claim_snapshot, figure_path):
    """At the pronoun, more MLP neurons separate him from her (t-test, FDR q < .05) than in 95% of
    label-shuffled draws; counts of him > her and her > him neurons."""
    layer = tuning_layer(lm)
    him, her = (a[layer] for a in acts(lm))
    tu = lesion.tuned(him, her)
    null = shuffled_sig(him, her, N_NULL, seed=0)
    q95 = float(np.quantile(null, 0.95))
    n_sig = int(tu["sig"].sum())
    assert n_sig > q95, f"{n_sig} FDR-significant neurons, not above the label-shuffle 95% ({q95:.0f})"
    post = lesion.tuned(*(a[layer] for a in acts(lm, "mlp_act")))
    claim_snapshot({"layer": layer, "n_sentences": [len(him), len(her)], "n_him": len(tu["him"]),
                    "n_her": len(tu["her"]), "n_him_post_gelu": len(post["him"]), "n_her_post_gelu": len(post["her"]),
                    "null_q95": q95}, rel=1e-3, abs_=1e-4)
    figures.save(figures.lesion_tuning(f"lesion.tuning - {lm.spec.id}, layer {layer} (pre-GELU)", tu),
                 figure_path("lesion.tuning"))


@pytest.mark.claim(id="lesion.laminar_tuning", family=FAMILY, source="seed 001 Part 3")
def test_him_her_neurons_in_this_layer(lm, layer, claim_snapshot, figure_path):
    """In this layer too, him/her neurons exceed the label-shuffle null (per-layer claim; the percentage
    profile over layers is the figure of the model's last layer)."""
    him, her = (a[layer] for a in acts(lm))
    tu = lesion.tuned(him, her)
    q95 = float(np.quantile(shuffled_sig(him, her, N_NULL // 2, seed=layer), 0.95))
    n_sig = int(tu["sig"].sum())
    assert n_sig > q95, f"layer {layer}: {n_sig} significant neurons, not above label-shuffle 95% ({q95:.0f})"
    N = him.shape[1]
    claim_snapshot({"layer": layer, "pct_him": 100 * len(tu["him"]) / N, "pct_her": 100 * len(tu["her"]) / N,
                    "null_q95": q95}, rel=1e-3, abs_=1e-4)
    if layer == lm.adapter.n_layers - 1:
        A, B = acts(lm)
        tus = [lesion.tuned(A[l], B[l]) for l in range(lm.adapter.n_layers)]
        figures.save(figures.lesion_laminar_tuning(
            f"lesion.laminar_tuning - {lm.spec.id} (intermediate.dense, pre-GELU)",
            np.array([100 * len(t["her"]) / N for t in tus]), np.array([100 * len(t["him"]) / N for t in tus])),
            figure_path("lesion.laminar_tuning"))
