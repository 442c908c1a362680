"""IOI claims: a few attention heads carry indirect-object identification.

Source: seed 004 (Project 41, "Patching heads in IOI", M. X. Cohen), Parts 1-5;
Wang et al. 2022 ("Interpretability in the Wild") for gpt2 expectations.
Stimulus: fixtures/stimuli/ioi_v1.json (the seed's Mike/Emma pair + templated
pairs, both S2 orders). Score: logit(A) - logit(B) at the last position.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fixtures.loaders import ioi_pairs
from probes import figures, stats
from probes.errors import require
from probes.families.ioi import analysis as ioi
from probes.families.ioi import figures as ioi_figures
from probes.loading import random_copy

FAMILY = "ioi"


@pytest.fixture
def prompts(lm, model_cache):
    """The IOI prompt set tokenised for this model (once per model): pairs whose names are single tokens."""
    if "ioi.prompts" not in model_cache:
        model_cache["ioi.prompts"] = ioi.prompt_sets(lm, ioi_pairs(version=1))
    sets, info = model_cache["ioi.prompts"]
    assert info["n_pairs"] >= 20, f"only {info['n_pairs']} IOI pairs are single-token names for this tokenizer"
    return sets, info


@pytest.fixture
def head_prompts(lm, prompts, model_cache):
    """The prompts of the head-level claims (silencing, selectivity, patching): with the registry parameter
    ``ioi_head_pairs`` (default: all pairs), the first that many pairs of the largest group of prompts of equal
    token length, in fixture order, so that a 30-layer model's 270 heads fit a CPU run."""
    sets, info = prompts
    n = lm.spec.param("ioi_head_pairs")
    if not n or n >= info["n_pairs"]:
        return sets, info
    key = ("ioi.head_prompts", n)
    if key not in model_cache:  # from the largest group of equal token length (one batch), in fixture order
        biggest = max(sets, key=lambda s: len(s.texts))
        usable = [p for p in ioi_pairs(version=1) if p.base in biggest.texts][:n]
        model_cache[key] = ioi.prompt_sets(lm, usable)
    return model_cache[key]


def min_gap(lm) -> float:
    return lm.spec.expectation(FAMILY).get("min_gap", 1.0)


@pytest.mark.claim(id="ioi.behaviour", family=FAMILY, kinds=("causal",), source="seed 004 Part 1; Wang et al. 2022",
                   null="IO/S labels exchangeable: sign-flip test of the logit differences",
                   criterion="IO > S on >= the registry's minimum accuracy (default 90%) and sign-flip p < 0.01")
def test_behaviour_prefers_indirect_object(lm, prompts, claim_snapshot, figure_path, figure_title):
    """The model predicts the indirect object over the subject, on the seed pair and the templated set."""
    sets, info = prompts
    # measurement
    res = ioi.behaviour(lm, sets)
    # null control: IO/S labels exchangeable -> logit differences symmetric about 0 (sign-flip test)
    # criterion (threshold from the registry)
    min_acc = lm.spec.expectation(FAMILY).get("min_accuracy", 0.9)
    # snapshot (before the criterion: a broken claim's numbers are compared too), with 95% intervals from
    # resampling the prompts
    ld = stats.resample(res["logit_diffs"])  # (n_boot, prompts)
    claim_snapshot({"n_prompts": res["n_prompts"], "accuracy": res["accuracy"],
                    "mean_logit_diff": res["mean_logit_diff"], "median_logit_diff": res["median_logit_diff"],
                    "dropped_multi_token": info["dropped_multi_token"]},
                   effect=["mean_logit_diff", "accuracy", "median_logit_diff"],
                   intervals={"accuracy": stats.interval((ld > 0).mean(1)),
                              "mean_logit_diff": stats.interval(ld.mean(1)),
                              "median_logit_diff": stats.interval(np.median(ld, 1))})
    # figure: the seed pair's log-softmax panels + the distribution over the set
    seed = next(s for s in sets if ("Mike", "Emma") in s.names) if any(("Mike", "Emma") in s.names for s in sets) \
        else sets[0]
    i = seed.names.index(("Mike", "Emma")) if ("Mike", "Emma") in seed.names else 0
    with torch.no_grad():
        lb = torch.log_softmax(lm.last_logits(seed.base[i:i + 1])[0].float(), -1).cpu().numpy()
        ls = torch.log_softmax(lm.last_logits(seed.source[i:i + 1])[0].float(), -1).cpu().numpy()
    a, b = seed.names[i]
    figures.save(ioi_figures.behaviour(
        figure_title(), lb, ls, int(seed.a_ids[i]), int(seed.b_ids[i]), a, b, seed.texts[i],
        lm.tokenizer.decode(seed.source[i]), res["logit_diffs"], res["null_p_sign_flip"]),
        figure_path())
    # criterion (threshold from the registry)
    assert res["accuracy"] >= min_acc, f"IO>S on {res['accuracy']:.1%} of prompts, expected >= {min_acc:.0%}"
    assert res["null_p_sign_flip"] < 0.01, f"mean logit diff {res['mean_logit_diff']:.3f} not above sign-flip null"


@pytest.mark.claim(id="ioi.head_silencing", family=FAMILY, kinds=("causal",), source="seed 004 Part 2",
                   null="per-prompt deltas of a head that carries nothing centre on 0 (t-test, Bonferroni over all "
                        "heads)",
                   criterion="the most damaging head is significant and lowers the clean IOI score by >= 20%")
def test_silencing_some_heads_lowers_ioi(lm, head_prompts, exact, claim_snapshot, figure_path, figure_title):
    """Silencing one head (permuting its output) lowers the IOI score: for the top head by >= 20% of the clean
    score, consistently across prompts."""
    sets, _ = head_prompts
    # measurement: exact for every head, or (many heads on a CPU, see --exact) attribution screens every head and
    # the most damaging 8 plus 16 random others are measured exactly; the criterion only uses exact values, and
    # measuring more heads exactly could only add heads that pass it
    res = ioi.silencing(lm, sets, n_perm=3, seed=0, exact=exact)
    d, per, measured = res["delta"], res["delta_per_prompt"], res["measured"]  # (L, H), (L, H, P), (L, H)
    L, H = d.shape
    # null control: a head that does not carry IOI has per-prompt deltas centred on 0 (one-sample t-test,
    # Bonferroni over all L x H heads, measured or not); and there must be an IOI score to lower
    _, p = stats.ttest_1samp(per)
    sig_neg = stats.bonferroni(p) & (np.nan_to_num(d) < 0)
    worst = np.unravel_index(np.nanargmin(d), d.shape)
    r = float(np.corrcoef(res["head_norm"][measured], d[measured])[0, 1])
    top = ioi.top_heads(np.where(measured, d, np.inf), 5)
    snap = {"clean_mean": res["clean_mean"], "n_significant_negative": int(sig_neg.sum()),
            "top_heads": top, "norm_effect_r": r}
    if not exact:
        snap.update(n_prompts=int(per.shape[-1]), measured_exactly=[f"{layer}.{h}" for layer, h in zip(*np.nonzero(measured))],
                    screen_agreement=res["agreement"])
    # intervals: the prompts resampled (each head's mean delta; which heads are in the top 5)
    draws = stats.boot_means(np.moveaxis(np.nan_to_num(per), -1, 0).reshape(per.shape[-1], L * H))
    draws[:, ~measured.ravel()] = np.inf
    names = [f"{i // H}.{i % H}" for i in range(L * H)]
    col = {n: i for i, n in enumerate(names)}
    # measured_exactly (the heads the attribution screen sent to exact measurement) is a detail of the method: a
    # diagnostic, not an identity of the finding
    claim_snapshot(snap, effect=["clean_mean", "top_heads[].delta"],
                   identity=["top_heads[].head"],
                   intervals={"clean_mean": stats.mean_ci(res["clean_per_prompt"]),
                              "top_heads": [{"delta": stats.interval(draws[:, col[t["head"]]])} for t in top]},
                   stability={"top_heads": stats.top_k_stability(draws, 5, names, "neg")})
    figures.save(ioi_figures.head_effects(figure_title(), d if exact else res["estimate"],
                                          third="norm", head_norm=res["head_norm"],
                                          kind="silenced" if exact else "silenced (attribution estimate)"),
                 figure_path())
    require(res["clean_mean"] >= min_gap(lm), f"clean IOI score {res['clean_mean']:.3f} (needs >= {min_gap(lm)}): "
                                               "the model shows no IOI to silence (see ioi.behaviour)")
    assert sig_neg[worst], f"the most damaging head {worst} is not significant (p={p[worst]:.2g})"
    assert d[worst] <= -0.2 * res["clean_mean"], \
        f"top head lowers IOI by {-d[worst]:.3f}, < 20% of the clean score {res['clean_mean']:.3f}"


@pytest.mark.claim(id="ioi.head_norms", family=FAMILY, kinds=("causal",), source="seed 004 Part 3",
                   null="randomly initialised models of the same config (3 seeds)",
                   criterion="across-head norm CV above 1.5x every random-init CV")
def test_head_norms_are_head_specific(lm, prompts, claim_snapshot, figure_path, figure_title):
    """Attention-head activation norms are head-specific: at a given layer and token, heads differ in norm
    (coefficient of variation across heads, position 0 excluded) far more than in randomly initialised models
    of the same config, whose heads are interchangeable."""
    sets, _ = prompts
    layer = lm.spec.param("head_activation_layer", lm.adapter.n_layers // 2)
    pp = ioi.head_norm_cv_per_prompt(lm, sets)
    observed, per_prompt = float(pp.mean()), pp.numpy()  # observed: ioi.head_norm_cv
    # null control: the same statistic on randomly initialised models of the same config
    null = [ioi.head_norm_cv(random_copy(lm, seed), sets) for seed in range(3)]
    s0 = sets[0]
    acts = ioi.head_acts(lm, s0.source[:1])
    nmap = ioi.head_norm_map(acts)
    claim_snapshot({"head_cv": observed, "random_init_head_cv": null, "layer": layer,
                    "norm_by_layer": nmap[:, 1:].mean(1).tolist()}, effect=["head_cv"],
                   intervals={"head_cv": stats.mean_ci(per_prompt)})  # the prompts resampled
    labels = [lm.tokenizer.decode([t]) for t in s0.source[0].tolist()]
    figures.save(ioi_figures.head_activations(figure_title(), acts[layer, 0].float().cpu().numpy(),
                                              labels, layer, nmap, null, observed), figure_path())
    # criterion (last: a broken claim still shows its numbers and figure)
    assert observed > 1.5 * max(null), f"across-head norm CV {observed:.3f} not above 1.5x random-init CVs " \
                                       f"{[round(x, 3) for x in null]}"


@pytest.mark.claim(id="ioi.mention_selectivity", family=FAMILY, kinds=("causal",), source="seed 004 Part 4",
                   null="dimensions shuffled across heads",
                   criterion="some layer's selectivity ratio beats the null significantly (Bonferroni over layers) "
                             "and by >= 25%")
def test_heads_tell_first_from_second_mention(lm, head_prompts, claim_snapshot, figure_path, figure_title):
    """In some layer, a few heads separate the first from the second mention of the repeated name: the
    head selectivity ratio exceeds a null in which dimensions are shuffled across heads, significantly
    (Bonferroni over layers) and by at least 25% of the null mean (a minimal effect size)."""
    sets, _ = head_prompts
    res = ioi.mention_selectivity(lm, sets, n_null=1000, seed=0)
    L = len(res["ratio"])
    sig = (res["p"] < 0.05 / L) & (res["ratio"] >= 1.25 * res["null_mean"])
    best = int(np.argmax(res["ratio"] / res["null_mean"]))
    claim_snapshot({"ratio": res["ratio"], "null_q95": res["null_q95"], "significant_layers": np.flatnonzero(sig)},
                   effect=["ratio"], identity=["significant_layers"],
                   intervals={"ratio": stats.mean_ci(res["ratio_per_prompt"])})  # the prompts resampled
    s0 = sets[0]
    acts = ioi.head_acts(lm, s0.source[:1])[:, 0].float()  # (L, T, H, dh)
    pos = ioi.repeat_positions(s0.source[:1], s0.a_ids[:1])[0]
    skip = max(1, L // 8)
    layers = list(range(0, L, skip))
    maps = [(acts[layer, pos[0]] - acts[layer, pos[1]]).cpu().numpy() for layer in layers]
    figures.save(ioi_figures.mention_selectivity(figure_title(), maps, layers,
                                                 res["ratio"], res["null_mean"], res["null_q95"], s0.names[0][0]),
                 figure_path())
    # criterion (last: a broken claim still shows its numbers and figure)
    assert sig.any(), (f"no layer's selectivity ratio beats the head-shuffled null by 25% (best: layer {best}, "
                       f"ratio {res['ratio'][best]:.3f} vs null {res['null_mean'][best]:.3f}, p={res['p'][best]:.3g})")


@pytest.mark.claim(id="ioi.head_patching", family=FAMILY, kinds=("causal",), source="seed 004 Part 5; Wang et al. 2022",
                   null="uniform heads: the top k of n would carry about k/n of the effect",
                   criterion="the prompts differ by >= the minimum gap; the top head is significant and moves >= 10% "
                             "of the gap; the top 5% of heads carry >= 50%")
def test_few_heads_carry_the_patching_effect(lm, head_prompts, claim_snapshot, figure_path, figure_title):
    """Patching single heads from the source run (S2 = A) into the base run (S2 = B) moves the IOI score toward
    the source; a few heads (5% of all) carry at least half of the summed effect."""
    sets, _ = head_prompts  # every head measured exactly (positions before S2 come from a key/value cache)
    res = ioi.patching(lm, sets)
    d, per, gap = res["delta"], res["delta_per_prompt"], res["gap"]
    n = d.size
    k = max(1, math.ceil(0.05 * n))
    share = float(np.sort(np.abs(d).ravel())[::-1][:k].sum() / np.abs(d).sum())
    # null control: if no heads were special, the top k of n heads would carry about k/n of the effect
    # (uniform spread), and a head's per-prompt deltas would centre on 0 (t-test, Bonferroni over heads)
    _, p = stats.ttest_1samp(per)
    top = np.unravel_index(np.argmax(np.abs(d)), d.shape)
    heads8 = ioi.top_heads(d, 8, sign=0)
    # intervals: the prompts resampled (each head's delta, the top-k share, the gap; which heads are in the top 8)
    L, H = d.shape
    draws = stats.boot_means(np.moveaxis(per, -1, 0).reshape(per.shape[-1], L * H))
    mag = np.sort(np.abs(draws), 1)[:, ::-1]
    names = [f"{i // H}.{i % H}" for i in range(L * H)]
    col = {n: i for i, n in enumerate(names)}
    claim_snapshot({"gap": gap, "k": k, "top_k_share": share, "top_heads": heads8},
                   effect=["top_k_share", "top_heads[].delta", "gap"], identity=["top_heads[].head"],
                   intervals={"top_k_share": stats.interval(mag[:, :k].sum(1) / mag.sum(1), centre=share),
                              "gap": stats.mean_ci(res["gap_per_prompt"]),
                              "top_heads": [{"delta": stats.interval(draws[:, col[t["head"]]])} for t in heads8]},
                   stability={"top_heads": stats.top_k_stability(draws, 8, names, "abs")})
    figures.save(ioi_figures.head_effects(figure_title(), d, third="std", kind="patched"),
                 figure_path())
    require(gap <= -min_gap(lm), f"source - base score gap {gap:.3f} (needs <= -{min_gap(lm)}): the model shows no "
                                 "IOI to patch (see ioi.behaviour)")
    assert stats.bonferroni(p)[top], f"top head {top} not significant across prompts (p={p[top]:.2g})"
    assert share >= 0.5, f"top {k}/{n} heads carry {share:.0%} of |delta IOI| (uniform: {k / n:.0%}), need >= 50%"
    assert abs(d[top]) >= 0.1 * abs(gap), f"top head moves {d[top]:.3f}, < 10% of the gap {gap:.3f}"
