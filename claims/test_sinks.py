"""Sink claims: most heads put most of their attention on the first token, and a few residual dimensions at a few
tokens carry activations orders of magnitude larger than the rest.

Source: Xiao et al. 2023 ("Efficient Streaming Language Models with Attention Sinks") and Sun et al. 2024 ("Massive
Activations in Large Language Models"), replicated across many model families. Stimulus:
fixtures/stimuli/attention_v1.json: 16 ordinary English sentences, read with the tokenizer's own special tokens
(the first token is Gemma's ``<bos>``, the first word for GPT-2 and SmolLM2). Intervals resample the sentences. Null:
randomly initialised copies of the same config (3 seeds), whose attention is spread over the context and whose
residual stream has no outliers.
"""
from __future__ import annotations

import numpy as np
import pytest

from fixtures.loaders import stimuli
from probes import attention, figures, stats
from probes.families.sinks import analysis as sinks
from probes.families.sinks import figures as sinks_figures
from probes.loading import random_copy

FAMILY = "sinks"
STIM = stimuli("attention_v1")


@pytest.fixture
def texts(lm, model_cache) -> dict:
    """The sink texts as one batch, with the model's and the random-init copies' attention to the first token and
    residual magnitudes (once per model: shared by the family's claims)."""
    if "sinks.texts" not in model_cache:
        ids, mask, _ = sinks.text_batch(lm, STIM["sink_texts"])
        c = {"sink": sinks.sink_scores(attention.attention(lm, ids, mask), mask),
             "resid": sinks.residual_magnitudes(lm, ids, mask), "null_share": [], "null_top": []}
        for seed in STIM["null_seeds"]:
            rnd = random_copy(lm, seed)
            c["null_share"].append(float((sinks.sink_scores(attention.attention(rnd, ids, mask), mask).mean(-1)
                                          > STIM["sink_threshold"]).mean()))
            c["null_top"].append(sinks.residual_magnitudes(rnd, ids, mask)["top"])
            del rnd  # random_copy holds one copy: the next seed's is built after this one is gone
        model_cache["sinks.texts"] = c
    return model_cache["sinks.texts"]


@pytest.mark.claim(id="sinks.attention", family=FAMILY, kinds=("causal",),
                   source="Xiao et al. 2023, attention sinks",
                   null="the same share in 3 random-init copies of the same config",
                   criterion="most heads (>= 50%) put more than half of their attention on the first token, and "
                             "more heads than in every random-init copy")
def test_most_heads_attend_to_the_first_token(lm, texts, claim_snapshot, figure_path, figure_title):
    """On ordinary text most attention heads put most of their attention on the first token (a sink), whatever it
    is; in randomly initialised copies attention is spread over the context."""
    per_seq = texts["sink"]  # (layers, heads, sentences)
    L, H, n = per_seq.shape
    score = per_seq.mean(-1)
    thr = STIM["sink_threshold"]
    share = float((score > thr).mean())
    draws = stats.boot_means(per_seq.reshape(L * H, n).T)  # (n_boot, L*H): sentences resampled
    names = [attention.head_name((layer, h)) for layer in range(L) for h in range(H)]
    freq = (draws > thr).mean(0)
    sink_heads = [names[i] for i in np.flatnonzero(score.ravel() > thr)]
    null = max(texts["null_share"])
    claim_snapshot({"share_of_heads": share, "sink_heads": sink_heads, "n_heads": L * H,
                    "mean_attention_to_first": float(score.mean()), "null_share_max": null,
                    "share_by_layer": [float(x) for x in (score > thr).mean(1)]},
                   effect=["share_of_heads"], identity=["sink_heads"],
                   intervals={"share_of_heads": stats.interval((draws > thr).mean(1), centre=share),
                              "mean_attention_to_first": stats.mean_ci(per_seq.mean((0, 1)))},
                   stability={"sink_heads": {names[i]: round(float(freq[i]), 4) for i in np.flatnonzero(freq > 0)}})
    figures.save(sinks_figures.sink_map(figure_title(f": {share:.0%} of heads"), score, null, thr),
                 figure_path())
    assert share >= 0.5, (f"{share:.0%} of heads put more than {thr} of their attention on the first token "
                          f"(most heads, >= 50%, needed; mean attention to it {score.mean():.3f})")
    assert share > null, f"{share:.0%} of heads are sinks, not more than in a random-init copy ({null:.0%})"


@pytest.mark.claim(id="sinks.massive_activations", family=FAMILY, kinds=("causal",),
                   source="Sun et al. 2024, massive activations",
                   null="the largest activation of 3 random-init copies of the same config, every layer",
                   criterion="in some layer an activation of the residual stream exceeds 100 and 1000 times the "
                             "layer's median |activation| (Sun et al.'s definition), above every random-init copy's "
                             "largest")
def test_a_few_activations_are_massive(lm, texts, claim_snapshot, figure_path, figure_title):
    """A few residual-stream dimensions at a few tokens (typically the first) carry activations thousands of times
    larger than the median; a randomly initialised copy has none."""
    r = texts["resid"]
    top, median = r["top"], r["median"]
    ratio = top / median
    best = int(np.argmax(ratio))
    massive = [layer for layer in range(len(top)) if top[layer] >= STIM["massive_min_value"] and ratio[layer] >= STIM["massive_min_ratio"]]
    where = sorted({(p, d) for layer in (massive or [best]) for v, p, d in r["top3"][layer]
                    if v >= STIM["massive_min_value"] and v >= STIM["massive_min_ratio"] * median[layer]})
    null_top = np.max(texts["null_top"], axis=0)
    per_seq = r["per_sequence_top"][best]  # (sentences,): each sentence's largest in the layer of the largest ratio
    boot_top = stats.resample(per_seq).max(1)  # the layer's largest over resampled sentences (its median held)
    claim_snapshot({"top_value": float(top[best]), "log10_ratio": float(np.log10(ratio[best])), "layer": best,
                    "massive_layers": [f"L{layer}" for layer in massive],
                    "dimensions": sorted({f"D{d}" for _, d in where}), "positions": sorted({f"P{p}" for p, _ in where}),
                    "median": float(median[best]), "null_top_max": float(null_top.max()),
                    "log10_ratio_by_layer": [float(x) for x in np.log10(ratio)]},
                   effect=["log10_ratio", "top_value"],
                   identity=["massive_layers", "dimensions", "positions"],
                   intervals={"top_value": stats.interval(boot_top, centre=float(top[best])),
                              "log10_ratio": stats.interval(np.log10(boot_top / median[best]),
                                                            centre=float(np.log10(ratio[best])))})
    figures.save(sinks_figures.massive_activations(
        figure_title(f": largest {top[best]:.4g} at layer {best} ({ratio[best]:.3g}x the median)"), top, median, null_top, STIM["massive_min_value"]),
        figure_path())
    assert massive, (f"no activation of the residual stream exceeds {STIM['massive_min_value']:g} and "
                     f"{STIM['massive_min_ratio']:g}x its layer's median (largest ratio {ratio[best]:.3g}, value "
                     f"{top[best]:.4g}, at layer {best})")
    assert top[best] > null_top.max(), (f"the largest activation {top[best]:.4g} is not above a random-init copy's "
                                        f"{null_top.max():.4g}")
