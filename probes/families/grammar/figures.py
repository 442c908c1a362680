"""The grammar claims' figures (seed 000, Parts 1-8): word lengths, tuned neurons, split halves, activation
distributions, within- vs across-category t-values, layers, token order.

Each function returns a matplotlib Figure drawn under the suite's style (:func:`probes.figures.styled`);
``probes.figures.save`` writes it.
"""
from __future__ import annotations

import numpy as np
from matplotlib.gridspec import GridSpec

from ...figures import figure, line_hist, styled, subplots


@styled
def lengths(title: str, len_nouns: np.ndarray, len_verbs: np.ndarray, t: float, p: float, d: float):
    """Seed 000 Part 1: word-length histograms with the t-test and Cohen's d."""
    fig, ax = subplots(figsize=(10, 3))
    m = int(max(len_nouns.max(), len_verbs.max())) + 1
    yN, yV = np.bincount(len_nouns, minlength=m), np.bincount(len_verbs, minlength=m)
    ax.bar(np.arange(m) - .15, yN, width=.6, label="Nouns", alpha=.9, edgecolor="b")
    ax.bar(np.arange(m) + .15, yV, width=.6, label="Verbs", alpha=.9, edgecolor="r")
    ax.legend()
    ax.set(xticks=range(m), xlabel="Number of characters", ylabel="Count",
           title=f"{title}\nt({len(len_nouns) + len(len_verbs) - 2}) = {t:.2f}, p = {p:.3g}; Cohen's d = {d:.2f}")
    fig.tight_layout()
    return fig


@styled
def neurons(title: str, nouns: np.ndarray, verbs: np.ndarray, t: np.ndarray, d: np.ndarray, sig: np.ndarray,
                    null_counts: np.ndarray):
    """Seed 000 Parts 2-3: activations of nouns, mean activations, nouns vs verbs; d vs t; t by neuron."""
    fig = figure(figsize=(13, 7))
    gs = GridSpec(2, 3, figure=fig)
    ax = fig.add_subplot(gs[0, 0])
    lim = np.percentile(np.abs(nouns), 99)
    ax.imshow(nouns, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set(xlabel="Neurons", ylabel="Nouns (index)", title="A) Nouns activations")
    ax = fig.add_subplot(gs[0, 1])
    ax.plot(nouns.mean(0), "ko", markersize=4, markerfacecolor=[.9, .7, .9, .5])
    ax.set(xlabel="Neurons", ylabel="Activation", title="B) Mean activations over all nouns")
    ax = fig.add_subplot(gs[0, 2])
    ax.plot(nouns.mean(0), verbs.mean(0), "ko", markersize=4, markerfacecolor=[.9, .7, .9, .5])
    ax.set(xlabel="Nouns (mean)", ylabel="Verbs (mean)", title="C) Activations to all words")
    ax = fig.add_subplot(gs[1, 0])
    ax.plot(d, t, "ko", markerfacecolor="w", markersize=4)
    ax.set(xlabel="Cohen's d", ylabel="T-value", title="D) Effect size vs. t")
    ax = fig.add_subplot(gs[1, 1:])
    n = len(t)
    idx = np.arange(n)
    large = np.abs(d) > .8
    ax.plot(idx[sig & ~large], t[sig & ~large], "go", markerfacecolor="w", markersize=4, label="significant")
    ax.plot(idx[sig & large], t[sig & large], "go", markersize=4, label="significant, |d|>0.8")
    ax.plot(idx[~sig], t[~sig], "rx", markersize=4, label="non-significant")
    ax.legend(fontsize=8)
    ax.set(xlabel="Neuron index", ylabel="T-value", xlim=[-10, n + 10],
           title=f"E) {sig.sum()}/{n} significant (FDR), {large.sum()}/{n} large effects; "
                 f"label-shuffle null: 95% <= {np.quantile(null_counts, .95):.0f}")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def split_half(title: str, sh: dict, null_r: np.ndarray):
    """Seed 000 Part 4: split-1 vs split-2 and split-1 vs split-12 t-values, by Bonferroni significance."""
    fig, axs = subplots(1, 2, figsize=(10, 4))
    for ax, other, osig, r, lab in ((axs[0], sh["t2"], sh["sig2"], sh["r_12"], "Split-2"),
                                    (axs[1], sh["t12"], sh["sig12"], sh["r_1_12"], "Split-12")):
        both = sh["sig1"].astype(int) + osig.astype(int)
        for k, (mk, col, lbl) in enumerate(((("x", [.9, .7, .7, .5], "Neither sig.")), ("o", [.7, .7, .9, .5], "One sig."),
                                            ("s", [.7, .9, .7, .5], "Both sig."))):
            ax.plot(sh["t1"][both == k], other[both == k], "k" + mk, markerfacecolor=col, markersize=4, label=lbl)
        ax.axhline(0, color="k", ls="--", lw=.5)
        ax.axvline(0, color="k", ls="--", lw=.5)
        ax.legend(fontsize=8)
        ax.set(xlabel="Split-1 t-value", ylabel=f"{lab} t-value", title=f"{'AB'[lab == 'Split-12']}) T-val comparison (r = {r:.3f})")
    fig.suptitle(f"{title} (label-shuffle null r: 95% <= {np.quantile(null_r, .95):.3f})", fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def distributions(title: str, acts: dict, t: np.ndarray, max_t: int, min_t: int):
    """Seed 000 Part 5: histograms of all neurons, by t sign, and of the strongest +/- neurons."""
    fig, axs = subplots(3, 1, figsize=(9, 9))
    for k in ("nouns1", "nouns2", "verbs1", "verbs2"):
        line_hist(axs[0], acts[k].ravel(), k.replace("1", " 1").replace("2", " 2").capitalize())
    axs[0].set(xlabel="MLP expansion activation", ylabel="Count", ylim=[0, None], title="Histograms of all MLP neurons")
    for sign, lab in ((t < 0, "t<0"), (t > 0, "t>0")):
        if sign.any():
            line_hist(axs[1], acts["nouns1"][:, sign].ravel(), f"Nouns {lab}", density=True, lw=2)
            line_hist(axs[1], acts["verbs1"][:, sign].ravel(), f"Verbs {lab}", density=True, lw=2)
    axs[1].set(xlabel="MLP expansion activation", ylabel="Density", ylim=[0, None], title="Histograms separated by t-value sign")
    for n, ls in ((max_t, "-"), (min_t, "--")):
        line_hist(axs[2], acts["nouns1"][:, n], f"Nouns, neuron {n} (t = {t[n]:.2f})", density=True, color="r", ls=ls, lw=2)
        line_hist(axs[2], acts["verbs1"][:, n], f"Verbs, neuron {n} (t = {t[n]:.2f})", density=True, color="g", ls=ls, lw=2)
    axs[2].set(xlabel="MLP expansion activation", ylabel="Density", ylim=[0, None], title="Histograms from two neurons")
    for ax in axs:
        ax.legend(fontsize=8)
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def within_across(title: str, t_across1, t_across2, t_within_n, t_within_v, d_across, d_within):
    """Seed 000 Part 6: across- vs within-category t-values, and effect-size histograms."""
    fig = figure(figsize=(12, 7))
    gs = GridSpec(2, 2, figure=fig)
    lim = np.nanmax(np.abs(np.concatenate([t_across1, t_across2]))) * 1.05
    for i, (x, y, yl, tt) in enumerate(((t_across1, t_within_n, "t(nouns-1,nouns-2)", "A) Across vs. within-nouns"),
                                        (t_across2, t_within_v, "t(verbs-1,verbs-2)", "B) Across vs. within-verbs"))):
        ax = fig.add_subplot(gs[0, i])
        ax.plot(x, y, "ko", markerfacecolor=[.9, .7, .7, .3], markersize=4)
        ax.set(xlim=[-lim, lim], ylim=[-lim, lim], xlabel=f"t(nouns,verbs), split {i + 1}", ylabel=yl, title=tt)
    ax = fig.add_subplot(gs[1, :])
    line_hist(ax, np.abs(d_within), "Within category", marker="o", lw=2)
    line_hist(ax, np.abs(d_across), "Across category", marker="s", lw=2)
    ax.axvline(.2, ls="--", color="r", label="Small effect")
    ax.axvline(.8, ls=":", color="m", label="Large effect")
    ax.legend()
    ax.set(xlabel="|Cohen's d|", ylabel="Count")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def laminar(title: str, prop_sig: np.ndarray, mean_abs_t: np.ndarray, split_r: np.ndarray, null_r95: np.ndarray):
    """Seed 000 Part 7: proportion significant, |t| of significant neurons, split correlation per layer."""
    L = len(prop_sig)
    fig, axs = subplots(1, 3, figsize=(13, 3.5))
    axs[0].plot(prop_sig, "ko-", markerfacecolor=[.7, .9, .7])
    axs[0].set(xlabel="Transformer layer", ylabel="Proportion significant neurons", title="A) Proportion significant neurons")
    axs[1].plot(mean_abs_t, "ks-", markerfacecolor=[.9, .7, .7])
    axs[1].set(xlabel="Transformer layer", ylabel="Average t-values", title="B) |T| of significant neurons")
    axs[2].plot(split_r, "k^-", markerfacecolor=[.7, .7, .9], label="observed")
    axs[2].plot(null_r95, "--", color=[.5, .5, .5], label="label-shuffle null 95%")
    axs[2].legend(fontsize=8)
    axs[2].set(xlabel="Transformer layer", ylabel="Correlation coefficient", title="C) T-value split correlations")
    for ax in axs:
        ax.set_xticks(range(0, L, max(1, L // 12)))
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def token_order(title: str, res: dict, layer: int, random_r: np.ndarray | None = None):
    """Seed 000 Part 8: sentence vs words vs scrambled scatter at one layer, and correlations per layer."""
    fig = figure(figsize=(12, 7))
    gs = GridSpec(2, 3, figure=fig)
    skip = 10
    s, w, c = (res[k][layer].ravel()[::skip] for k in ("sentence", "words", "scrambled"))
    r = res["r"]
    for i, (x, y, xl, yl, mk, col, rr) in enumerate((
            (s, w, "Sentence", "Words", "o", [.7, .7, .9, .3], r[layer, 0]),
            (s, c, "Sentence", "Scrambled sentence", "s", [.7, .9, .7, .3], r[layer, 1]),
            (c, w, "Scrambled sentence", "Words", "^", [.9, .7, .7, .3], r[layer, 2]))):
        ax = fig.add_subplot(gs[0, i])
        ax.plot(x, y, "k" + mk, markersize=3, markerfacecolor=col)
        ax.set(xlabel=xl, ylabel=yl, title=f"{'ABC'[i]}) {xl.split()[0]} vs. {yl.split()[0].lower()} (r = {rr:.3f})")
    ax = fig.add_subplot(gs[1, :])
    for k, lab in enumerate(("Sentence-word", "Sentence-scrambled", "Scrambled-word")):
        ax.plot(r[:, k], "o-", label=lab)
    if random_r is not None:
        ax.plot(random_r[:, 0], ":", color="k", label="Sentence-word, random init")
    ax.axhline(0, ls="--", color="k", lw=.4)
    ax.set(xlabel="Transformer layer", ylabel="Correlation coefficient", title="Correlations across token organizations")
    ax.legend(fontsize=8)
    fig.suptitle(f"{title} (scatter: layer {layer})", fontweight="bold")
    fig.tight_layout()
    return fig
