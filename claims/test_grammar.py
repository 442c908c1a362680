"""Grammar claims: MLP expansion neurons are tuned to nouns vs verbs, reliably across word splits and layers.

Source: seed 000 (Project 44, "Grammar tuning in MLP neurons", M. X. Cohen), Parts 1-8; reference model
EleutherAI/gpt-neo-125m. Stimulus: fixtures/stimuli/words_v1.json (WordNet 3.0 noun-only and verb-only
lemmas, most frequent first), filtered per model to single tokens with a leading space, split odd/even;
fixtures/stimuli/token_order_v1.json for Part 8. Activations: site ``mlp_act`` (post-activation expansion),
every layer from one forward pass per word batch, shared by all claims of a model.
"""
from __future__ import annotations

import numpy as np
import pytest

from fixtures.loaders import token_order_sentences, word_lists
from probes import figures, stats
from probes.families.grammar import analysis as grammar
from probes.families.grammar import figures as grammar_figures
from probes.loading import random_copy

FAMILY = "grammar"
N_NULL = 200
N_BOOT_LAYER = 200  # bootstrap draws of the per-layer claims (every layer of a model: fewer draws each)


@pytest.fixture
def words(lm, model_cache) -> grammar.GrammarData:
    """Activations of nouns-1, nouns-2, verbs-1, verbs-2 at every layer (computed once per model)."""
    if "grammar.words" not in model_cache:
        model_cache["grammar.words"] = grammar.collect(lm, word_lists())
    data = model_cache["grammar.words"]
    n, v = len(data.words.nouns), len(data.words.verbs)
    assert min(n, v) >= 100, f"only {n} nouns / {v} verbs are single tokens for this tokenizer (need >= 100 each)"
    return data


def probe_layer(lm) -> int:
    return lm.spec.param("grammar_layer", lm.adapter.n_layers // 2)


def top_neurons(tu: dict, k: int = 5) -> list[dict]:
    order = np.argsort(-np.nan_to_num(np.abs(tu["t"])))[:k]
    return [{"neuron": int(i), "t": float(tu["t"][i]), "d": float(tu["d"][i])} for i in order]


def boot_tuning(a: np.ndarray, b: np.ndarray, n_boot: int = stats.N_BOOT, seed: int = 0) -> dict:
    """The tuning statistics in every bootstrap resample of the words (each group resampled): t, d, p, FDR
    discoveries, (n_boot, neurons) each."""
    t, d = stats.boot_ttest_ind(a, b, n_boot, seed)
    p = stats.t_to_p(t, len(a) + len(b) - 2)
    return {"t": t, "d": d, "p": p, "sig": stats.fdr_masks(p)}


@pytest.mark.claim(id="grammar.stimuli", family=FAMILY, source="seed 000 Part 1",
                   null="none needed: a property of the stimuli, not the weights",
                   criterion="nouns and verbs differ in token length with |Cohen's d| < 0.8")
def test_word_length_is_not_a_large_confound(lm, words, claim_snapshot, figure_path, figure_title):
    """The single-token nouns and verbs differ in length by less than a large effect (|d| < 0.8), so length
    cannot by itself produce the noun/verb tuning claimed below."""
    lc = grammar.length_confound(words.words.nouns, words.words.verbs)
    ln, lv, t, p, d = lc["len_nouns"], lc["len_verbs"], lc["t"], lc["p"], lc["d"]
    _, bd = stats.boot_ttest_ind(ln[:, None], lv[:, None])  # the words resampled
    claim_snapshot({"n_nouns": len(ln), "n_verbs": len(lv), "candidates": list(words.words.n_candidates),
                    "length_t": t, "length_p": p, "length_d": d}, effect=["length_d"], rel=1e-4, abs_=1e-6,
                   intervals={"length_d": stats.interval(bd[:, 0])})
    figures.save(grammar_figures.lengths(figure_title(), ln, lv, t, p, d),
                 figure_path())
    assert abs(d) < 0.8, f"nouns and verbs differ in length with Cohen's d = {d:.2f} (a large confound)"


@pytest.mark.claim(id="grammar.neurons", family=FAMILY, source="seed 000 Parts 2-3",
                   null="noun/verb labels shuffled (seeded draws)",
                   criterion="FDR-significant neurons above the shuffle null's 95th percentile")
def test_noun_verb_neurons_in_one_layer(lm, words, claim_snapshot, figure_path, figure_title):
    """In the probed layer, more neurons separate nouns from verbs (t-test, FDR q < .05, split 1) than in
    95% of label-shuffled draws."""
    layer = probe_layer(lm)
    a = words.layer(layer)
    tu = grammar.tuning(a["nouns1"], a["verbs1"])
    null = grammar.shuffled_counts(a["nouns1"], a["verbs1"], n=N_NULL, seed=0)  # null: labels shuffled
    q95 = float(np.quantile(null, 0.95))
    top = top_neurons(tu)
    bt = boot_tuning(a["nouns1"], a["verbs1"])  # intervals: the words resampled
    claim_snapshot({"layer": layer, "n_neurons": len(tu["t"]), "n_sig": tu["n_sig"], "n_large": tu["n_large"],
                    "n_sig_large": tu["n_sig_large"], "null_q95": q95, "top": top},
                   effect=["n_sig", "n_sig_large", "top[].t"], identity=["top[].neuron"],
                   intervals={"n_sig": stats.interval(bt["sig"].sum(1), centre=tu["n_sig"]),
                              "n_sig_large": stats.interval((bt["sig"] & (np.abs(bt["d"]) > 0.8)).sum(1),
                                                            centre=tu["n_sig_large"]),
                              "top": [{"t": stats.interval(bt["t"][:, x["neuron"]])} for x in top]},
                   stability={"top": stats.top_k_stability(np.nan_to_num(bt["t"]), 5, range(len(tu["t"])), "abs")})
    figures.save(grammar_figures.neurons(figure_title(f", layer {layer}"), a["nouns1"], a["verbs1"],
                                         tu["t"], tu["d"], tu["sig"], null), figure_path())
    assert tu["n_sig"] > q95, f"{tu['n_sig']} FDR-significant neurons, not above the label-shuffle 95% ({q95:.0f})"


@pytest.mark.claim(id="grammar.split_half", family=FAMILY, source="seed 000 Part 4",
                   null="labels shuffled within each word split",
                   criterion="r(split 1, split 2) of neuron t-values above the null's 95%; neurons significant in "
                             "both splits agree in sign (>= 95%)")
def test_tuning_replicates_across_word_splits(lm, words, claim_snapshot, figure_path, figure_title):
    """Neuron t-values from independent word splits agree: r(split 1, split 2) exceeds the 95th percentile of
    a null with labels shuffled within each split, and neurons significant in both splits (Bonferroni)
    agree in sign."""
    layer = probe_layer(lm)
    a = words.layer(layer)
    sh = grammar.split_half(a)
    null = grammar.split_half_null(a, n=N_NULL, seed=0)
    q95 = float(np.quantile(null, 0.95))
    # intervals: the words of each group resampled (nouns-1 and verbs-2 the same way in every split they enter)
    t1, _ = stats.boot_ttest_ind(a["nouns1"], a["verbs1"], seed=0, seed_b=1)
    t2, _ = stats.boot_ttest_ind(a["nouns2"], a["verbs2"], seed=2, seed_b=3)
    t12, _ = stats.boot_ttest_ind(a["nouns1"], a["verbs2"], seed=0, seed_b=3)
    n1, n2 = len(a["nouns1"]) + len(a["verbs1"]), len(a["nouns2"]) + len(a["verbs2"])
    both = (stats.t_to_p(t1, n1 - 2) < 0.05 / t1.shape[1]) & (stats.t_to_p(t2, n2 - 2) < 0.05 / t2.shape[1])
    claim_snapshot({"layer": layer, "r_split1_split2": sh["r_12"], "r_split1_split12": sh["r_1_12"],
                    "n_both_sig": sh["n_both_sig"], "sign_agreement": sh["sign_agreement"], "null_q95": q95},
                   effect=["r_split1_split2", "r_split1_split12", "n_both_sig"],
                   allow_nan=True,  # sign_agreement has no value when no neuron is significant in both splits
                   intervals={"r_split1_split2": stats.interval(stats.rowwise_corr(t1, t2), centre=sh["r_12"]),
                              "r_split1_split12": stats.interval(stats.rowwise_corr(t1, t12), centre=sh["r_1_12"]),
                              "n_both_sig": stats.interval(both.sum(1), centre=sh["n_both_sig"])})
    figures.save(grammar_figures.split_half(figure_title(f", layer {layer}"), sh, null),
                 figure_path())
    assert sh["r_12"] > q95, f"split-half r = {sh['r_12']:.3f}, not above the label-shuffle 95% ({q95:.3f})"
    assert sh["n_both_sig"] == 0 or sh["sign_agreement"] >= 0.95, f"sign agreement {sh['sign_agreement']:.2f}"


@pytest.mark.claim(id="grammar.distributions", family=FAMILY, source="seed 000 Part 5",
                   null="split-2 labels shuffled",
                   criterion="the split-1 strongest neurons keep their sign on split 2, |d| above the null's 95%, "
                             "one |d| > 0.8")
def test_strongest_neurons_generalise_to_held_out_words(lm, words, claim_snapshot, figure_path, figure_title):
    """The strongest positive and negative neurons chosen on split 1 keep separating nouns from verbs on the
    held-out split 2: same sign, |d| above the label-shuffled split-2 null (95%), and at least one of the two
    with a large effect (|d| > 0.8)."""
    layer = probe_layer(lm)
    a = words.layer(layer)
    t1 = np.nan_to_num(grammar.tuning(a["nouns1"], a["verbs1"])["t"])
    max_t, min_t = int(np.argmax(t1)), int(np.argmin(t1))
    d2 = stats.cohens_d(a["nouns2"][:, [max_t, min_t]], a["verbs2"][:, [max_t, min_t]])
    g = stats.rng(0)
    x = np.concatenate([a["nouns2"], a["verbs2"]])[:, [max_t, min_t]]
    n2 = len(a["nouns2"])
    null = np.array([np.abs(stats.cohens_d(*np.split(x[g.permutation(len(x))], [n2]))) for _ in range(N_NULL)])
    q95 = np.quantile(null, 0.95, axis=0)
    # intervals: the words resampled (split 1 for the t-values and the choice of neurons, split 2 for the d's)
    bt1, _ = stats.boot_ttest_ind(a["nouns1"], a["verbs1"])
    _, bd2 = stats.boot_ttest_ind(a["nouns2"][:, [max_t, min_t]], a["verbs2"][:, [max_t, min_t]], seed=2)
    bt1n = np.nan_to_num(bt1)
    claim_snapshot({"layer": layer, "max_t_neuron": max_t, "min_t_neuron": min_t, "t_split1": [t1[max_t], t1[min_t]],
                    "d_split2": d2},
                   effect=["t_split1", "d_split2"], identity=["max_t_neuron", "min_t_neuron"],
                   intervals={"t_split1": [stats.interval(bt1[:, max_t]), stats.interval(bt1[:, min_t])],
                              "d_split2": [stats.interval(bd2[:, 0]), stats.interval(bd2[:, 1])]},
                   stability={"max_t_neuron": {str(max_t): float((bt1n.argmax(1) == max_t).mean())},
                              "min_t_neuron": {str(min_t): float((bt1n.argmin(1) == min_t).mean())}})
    figures.save(grammar_figures.distributions(figure_title(f", layer {layer}"), a, t1,
                                               max_t, min_t), figure_path())
    assert d2[0] > 0 and d2[1] < 0, f"held-out Cohen's d of the strongest neurons changed sign: {d2.round(2).tolist()}"
    assert (np.abs(d2) > q95).all(), f"held-out |d| {np.abs(d2).round(2).tolist()} vs null 95% {q95.round(2).tolist()}"
    assert np.abs(d2).max() > 0.8, f"held-out Cohen's d of the strongest neurons: {d2.round(2).tolist()}, none large"


@pytest.mark.claim(id="grammar.within_vs_across", family=FAMILY, source="seed 000 Part 6",
                   null="within-category contrasts (nouns-1 vs nouns-2, verbs-1 vs verbs-2)",
                   criterion="more FDR-significant neurons and a larger median |d| across categories than within, in "
                             "both splits")
def test_across_category_exceeds_within_category(lm, words, claim_snapshot, figure_path, figure_title):
    """Nouns vs verbs gives more significant neurons (FDR) and larger effects than the within-category null
    (nouns-1 vs nouns-2, verbs-1 vs verbs-2), in both splits."""
    layer = probe_layer(lm)
    a = words.layer(layer)
    across1, across2 = grammar.tuning(a["nouns1"], a["verbs1"]), grammar.tuning(a["nouns2"], a["verbs2"])
    wn, wv = grammar.tuning(a["nouns1"], a["nouns2"]), grammar.tuning(a["verbs1"], a["verbs2"])
    within_sig = max(wn["n_sig"], wv["n_sig"])
    med_across, med_within = float(np.nanmedian(np.abs(across1["d"]))), float(np.nanmedian(np.abs(wn["d"])))
    b1, b2 = boot_tuning(a["nouns1"], a["verbs1"], seed=0), boot_tuning(a["nouns2"], a["verbs2"], seed=2)
    claim_snapshot({"layer": layer, "n_sig_across": [across1["n_sig"], across2["n_sig"]],
                    "n_sig_within": [wn["n_sig"], wv["n_sig"]], "median_abs_d_across": med_across,
                    "median_abs_d_within": med_within},
                   effect=["median_abs_d_across", "n_sig_across"],
                   intervals={"median_abs_d_across": stats.interval(np.nanmedian(np.abs(b1["d"]), 1), centre=med_across),
                              "n_sig_across": [stats.interval(b1["sig"].sum(1), centre=across1["n_sig"]),
                                               stats.interval(b2["sig"].sum(1), centre=across2["n_sig"])]})
    figures.save(grammar_figures.within_across(figure_title(f", layer {layer}"),
                                               across1["t"], across2["t"], wn["t"], wv["t"], across1["d"], wn["d"]),
                 figure_path())
    assert min(across1["n_sig"], across2["n_sig"]) > within_sig, \
        f"across-category significant neurons {across1['n_sig']}/{across2['n_sig']} vs within {within_sig}"
    assert med_across > med_within, f"median |d| across {med_across:.3f} <= within {med_within:.3f}"


def laminar_row(lm, words, layer: int) -> dict:
    """Seed Part 7 numbers for one layer (cached: the per-layer claims and the profile figure share them)."""
    key = ("grammar.laminar", layer)
    if key not in lm.cache:
        a = words.layer(layer)
        sh, tu = grammar.split_half(a), grammar.tuning(a["nouns1"], a["verbs1"])
        null = grammar.split_half_null(a, n=N_NULL // 2, seed=layer)
        # intervals: the words resampled (fewer draws per layer: every layer of the model is a claim)
        bt = boot_tuning(a["nouns1"], a["verbs1"], N_BOOT_LAYER, seed=0)
        t2, _ = stats.boot_ttest_ind(a["nouns2"], a["verbs2"], N_BOOT_LAYER, seed=2)
        abs_t_sig = np.where(bt["sig"], np.abs(np.nan_to_num(bt["t"])), 0.0).sum(1) / np.maximum(bt["sig"].sum(1), 1)
        prop = tu["n_sig"] / len(tu["t"])
        mat = float(np.abs(tu["t"][tu["sig"]]).mean()) if tu["n_sig"] else 0.0
        lm.cache[key] = {"prop_sig": prop, "mean_abs_t_sig": mat,
                        "r_split": sh["r_12"], "null_q95": float(np.quantile(null, 0.95)),
                        "_intervals": {"prop_sig": stats.interval(bt["sig"].mean(1), centre=prop),
                                       "mean_abs_t_sig": stats.interval(abs_t_sig, centre=mat),
                                       "r_split": stats.interval(stats.rowwise_corr(bt["t"], t2), centre=sh["r_12"])}}
    return lm.cache[key]


@pytest.mark.claim(id="grammar.laminar", family=FAMILY, source="seed 000 Part 7",
                   null="labels shuffled within each split, per layer",
                   criterion="this layer's split-half r above the null's 95%")
def test_tuning_replicates_in_this_layer(lm, layer, words, claim_snapshot, figure_path, figure_title):
    """In this layer, noun/verb tuning replicates across word splits beyond the label-shuffle null
    (per-layer claim; the seed's laminar profile is the figure of the model's last layer)."""
    row = {k: v for k, v in laminar_row(lm, words, layer).items() if k != "_intervals"}
    claim_snapshot({"layer": layer, **row}, effect=["r_split", "prop_sig", "mean_abs_t_sig"],
                   intervals=laminar_row(lm, words, layer)["_intervals"])
    if layer == lm.adapter.n_layers - 1:  # the profile over all layers, drawn once per model
        rows = [laminar_row(lm, words, lay) for lay in range(lm.adapter.n_layers)]
        cols = [np.array([r[k] for r in rows]) for k in ("prop_sig", "mean_abs_t_sig", "r_split", "null_q95")]
        figures.save(grammar_figures.laminar(figure_title(), *cols), figure_path())
    assert row["r_split"] > row["null_q95"], \
        f"layer {layer}: split-half r {row['r_split']:.3f} not above label-shuffle 95% {row['null_q95']:.3f}"


@pytest.mark.claim(id="grammar.token_order", family=FAMILY, source="seed 000 Part 8",
                   null="randomly initialised models of the same config (5 seeds)",
                   criterion="in some layer the context gap or its decline from the first layer exceeds every "
                             "random-init model's")
def test_context_shapes_mlp_activations(lm, model_cache, claim_snapshot, figure_path, figure_title):
    """Context shapes MLP activations beyond token identity and position. Compared with randomly initialised
    models of the same config (5 seeds), in some layer either (a) the context gap r(sentence, scrambled) -
    r(sentence, words) is larger, or (b) the decline of r(sentence, words) from the first layer is larger,
    by >= 0.05 and >= 3 null SDs (averaged over the fixture sentences)."""
    # the family's last claim reads its own sentences, not the words' activations of every layer (Gemma-3-270m:
    # 0.75 GB), which were held beside its five random-init copies: released here (a later claim asking for them
    # computes them again)
    model_cache.pop("grammar.words", None)
    sents = token_order_sentences()

    def stats_of(model, keep=None):
        runs = grammar.token_order_many(model, sents, list(range(len(sents))))  # sentence i scrambled with seed i
        if keep is not None:
            keep.append(runs[0])  # the first sentence's activations, for the figure
            keep.append(np.stack([x["r"] for x in runs]))  # (sentences, L, 3), for the intervals
        r = np.mean([x["r"] for x in runs], 0)  # (L, 3)
        return r, r[:, 1] - r[:, 0], r[0, 0] - r[:, 0]  # r, context gap, decline from layer 0
    kept: list = []
    r, gap, decline = stats_of(lm, kept)
    nulls = [stats_of(random_copy(lm, seed)) for seed in range(5)]  # null: untrained models
    ng, nd = np.array([n[1] for n in nulls]), np.array([n[2] for n in nulls])
    ok_gap = (gap - ng.mean(0) >= np.maximum(0.05, 3 * ng.std(0, ddof=1)))
    ok_dec = (decline - nd.mean(0) >= np.maximum(0.05, 3 * nd.std(0, ddof=1)))
    ok_dec[0] = False  # the decline is 0 at layer 0 by construction
    # intervals: the sentences resampled (the per-layer gap and decline, and which layers pass against the null)
    rs = stats.resample(kept[1])  # (n_boot, sentences, L, 3)
    bg = (rs[..., 1] - rs[..., 0]).mean(1)
    bdec = (rs[:, :, :1, 0] - rs[..., 0]).mean(1)
    pass_gap = bg - ng.mean(0) >= np.maximum(0.05, 3 * ng.std(0, ddof=1))
    pass_dec = bdec - nd.mean(0) >= np.maximum(0.05, 3 * nd.std(0, ddof=1))
    pass_dec[:, 0] = False
    claim_snapshot({"r_sentence_words": r[:, 0], "r_sentence_scrambled": r[:, 1], "r_scrambled_words": r[:, 2],
                    "context_gap": gap, "random_init_gap": ng.mean(0), "decline": decline,
                    "random_init_decline": nd.mean(0), "layers_gap": np.flatnonzero(ok_gap),
                    "layers_decline": np.flatnonzero(ok_dec)},
                   effect=["context_gap", "decline"], identity=["layers_gap", "layers_decline"],
                   intervals={"context_gap": stats.interval(bg), "decline": stats.interval(bdec)},
                   stability={"layers_gap": {str(i): round(float(f), 4) for i, f in enumerate(pass_gap.mean(0))},
                              "layers_decline": {str(i): round(float(f), 4) for i, f in enumerate(pass_dec.mean(0))}})
    layer = min(lm.spec.param("grammar_layer", 3), lm.adapter.n_layers - 1)
    figures.save(grammar_figures.token_order(figure_title(), dict(kept[0], r=r), layer,
                                             np.mean([n[0] for n in nulls], 0)),
                 figure_path())
    assert ok_gap.any() or ok_dec.any(), (
        f"context gap {gap.round(3).tolist()} (random init {ng.mean(0).round(3).tolist()}) and decline "
        f"{decline.round(3).tolist()} (random init {nd.mean(0).round(3).tolist()}) do not exceed the random-init "
        "null by 0.05 and 3 SDs in any layer")
