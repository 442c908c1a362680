"""One function per seed figure; each returns a matplotlib Figure (never shown). ``save`` writes a PNG.

Figures are drawn as ``matplotlib.figure.Figure`` objects, never through pyplot, and under the suite's style in a
``matplotlib.rc_context`` (:data:`STYLE`): importing this module or drawing a claim's figure leaves the user's
matplotlib backend, pyplot's open figures and the global ``rcParams`` as they were.
"""
from __future__ import annotations

import functools
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec
from matplotlib.patches import Rectangle

STYLE = {"axes.spines.right": False, "axes.spines.top": False, "axes.titleweight": "bold",
         "axes.labelweight": "bold", "savefig.dpi": 110}


def styled(fn):
    """Run a figure function under :data:`STYLE` (the style applies to what it draws, nowhere else)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)
    return wrapper


def _figure(**kw) -> Figure:
    return Figure(**kw)


def _subplots(*args, figsize=None, gridspec_kw=None, **kw):
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, gridspec_kw=gridspec_kw, **kw)


def save(fig, path: Path) -> Path:
    """Write a figure and close it. Matplotlib's warnings about glyphs a font lacks (tokens of any script) and
    about layout are the figure's business, not the terminal's: they are kept off it."""
    import warnings
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        with matplotlib.rc_context(STYLE):
            fig.savefig(path, bbox_inches="tight")
    return path


def _boxed(ax):
    ax.spines.top.set_visible(True)
    ax.spines.right.set_visible(True)


def _l1_clim(I: np.ndarray) -> float:
    """Colour limit from the L1 mean (as the seed): a few times the mean absolute value."""
    return float(max(3 * np.abs(I).mean(), 1e-6))


# ----------------------------------------------------------------------------- seed 004
@styled
def ioi_behaviour(title: str, logsm_base: np.ndarray, logsm_source: np.ndarray, a_id: int, b_id: int,
                  a: str, b: str, base_text: str, source_text: str, diffs: np.ndarray, null_p: float):
    """Seed 004 Part 1 (log-softmax of the two prompts and their relation) + logit-diff histogram over the set."""
    fig = _figure(figsize=(15, 3.4))
    gs = GridSpec(1, 7, figure=fig)
    ax1, ax2, ax3, ax4 = fig.add_subplot(gs[:2]), fig.add_subplot(gs[2:4]), fig.add_subplot(gs[4]), fig.add_subplot(gs[5:])
    V = len(logsm_base)
    for ax, ls, text in ((ax1, logsm_base, base_text), (ax2, logsm_source, source_text)):
        ax.plot(ls, "k.", alpha=.2)
        ax.plot(a_id, ls[a_id], "go", label=f'"{a}"')
        ax.plot(b_id, ls[b_id], "rs", label=f'"{b}"')
        ax.legend(fontsize=8)
        ax.set(xlabel="Vocab index", ylabel="Log softmax", title="..." + text[-24:], xlim=[-100, V + 100])
    ax3.plot(logsm_source, logsm_base, "k.", alpha=.3)
    ax3.set(xlabel="source log-sm", ylabel="base log-sm", title="source vs. base")
    ax4.hist(diffs, bins=30, color=[.6, .8, .9], edgecolor="k")
    ax4.axvline(0, color="r", ls="--")
    ax4.set(xlabel="logit(IO) - logit(S)", ylabel="Prompts",
            title=f"{(diffs > 0).mean():.1%} IO>S, mean {diffs.mean():.2f} (p={null_p:.1g})")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def ioi_head_effects(title: str, delta: np.ndarray, *, third: str, head_norm: np.ndarray | None = None,
                     kind: str = "silenced"):
    """Seed 004 Parts 2 and 5: (A) delta IOI per layer x head, (B) head-average per layer, (C) norm vs effect
    (Part 2) or stdev across heads (Part 5). ``delta``: (L, H)."""
    L, H = delta.shape
    I = delta.T  # heads x layers, as the seed
    clim = _l1_clim(I)
    fig, axs = _subplots(1, 3, figsize=(13, 3.4))
    h = axs[0].pcolor(range(L), range(H), I, vmin=-clim, vmax=clim, cmap="RdBu_r", shading="nearest")
    axs[0].set(xlabel="Transformer layer", ylabel="Attention head index", yticks=range(0, H, 2 if H > 8 else 1),
               title=f"A) $\\Delta$ IOI ({kind} - clean)")
    c = fig.colorbar(h, ax=axs[0], pad=.02)
    c.ax.tick_params(labelsize=8)
    _boxed(axs[0])
    m, s = I.mean(0), I.std(0)
    axs[1].errorbar(range(L), m, s, fmt="none", ecolor=[.6, .6, .6])
    axs[1].plot(range(L), m, "ks", markerfacecolor=[.9, .7, .7])
    axs[1].axhline(0, color="k", ls="--", lw=.8)
    axs[1].set(xlabel="Transformer layer", ylabel="Average $\\Delta$ IOI", title="B) Head-average results")
    if L <= 16:
        for ax in axs:
            ax.set_xticks(range(L))
    if third == "norm":
        axs[2].scatter(head_norm.T.ravel(), I.ravel(), 30, c=I.ravel(), edgecolor="k", linewidth=.4,
                       cmap="RdBu_r", vmin=-clim, vmax=clim, alpha=.7)
        axs[2].set(xlabel="Head norm", ylabel="$\\Delta$IOI", title="C) Head norm vs. IOI impact")
    else:
        axs[2].plot(range(L), s, "ko-", markerfacecolor=[.7, .9, .7])
        axs[2].set(xlabel="Transformer layer", ylabel="Stdev across $\\Delta$ IOI", title="C) Head-variability results")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def ioi_head_activations(title: str, acts_layer: np.ndarray, token_labels: list[str], layer: int,
                         norm_map: np.ndarray, null_cv: list[float], cv: float):
    """Seed 004 Part 3: (a) head activation heatmaps (dims x heads) per token in one layer, (b) average head
    norms per layer x token."""
    T = acts_layer.shape[0]
    fig = _figure(figsize=(max(12, T * 0.9), 7))
    gs = GridSpec(2, T, figure=fig, height_ratios=[1, 1.4])
    for i in range(T):
        ax = fig.add_subplot(gs[0, i])
        I = acts_layer[i].T  # dims x heads
        cmin, cmax = np.percentile(I, [2, 98])
        ax.imshow(I, origin="lower", aspect="auto", cmap="plasma", vmin=cmin, vmax=cmax)
        ax.set(title=f'"{token_labels[i]}"', xticks=[], yticks=[])
        if i == 0:
            ax.set(xlabel="Head", ylabel="Dimension")
    ax = fig.add_subplot(gs[1, :])
    cmin, cmax = np.percentile(norm_map[:, 1:], [2, 98]) if T > 1 else (None, None)
    im = ax.imshow(norm_map, aspect="auto", origin="lower", cmap="viridis", vmin=cmin, vmax=cmax)
    fig.colorbar(im, ax=ax, pad=.01)
    ax.set(xticks=range(T), xticklabels=token_labels, ylabel="Transformer layer",
           yticks=range(0, norm_map.shape[0], max(1, norm_map.shape[0] // 12)),
           title=f"Average attention head norms (colour limits exclude position 0); across-head CV={cv:.3f}, "
                 f"random-init: {', '.join(f'{c:.3f}' for c in null_cv)}")
    fig.suptitle(f"{title}: head activation heatmaps from layer {layer}", fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def ioi_mention_selectivity(title: str, diff_maps: list[np.ndarray], diff_layers: list[int], ratio: np.ndarray,
                            null_mean: np.ndarray, null_q95: np.ndarray, name: str):
    """Seed 004 Part 4: (a) first-minus-second mention difference (dims x heads) per layer, (b) selectivity ratio
    per layer with the head-shuffled null."""
    n = len(diff_maps)
    fig = _figure(figsize=(max(12, 1.6 * n), 6))
    gs = GridSpec(2, n, figure=fig)
    for i, (D, l) in enumerate(zip(diff_maps, diff_layers)):
        ax = fig.add_subplot(gs[0, i])
        lim = np.abs(D).max() or 1
        ax.imshow(D.T, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set(title=f"L{l}", xticks=[], yticks=[])
        _boxed(ax)
        if i == 0:
            ax.set(xlabel="Head", ylabel="Dimension")
    ax = fig.add_subplot(gs[1, :])
    L = len(ratio)
    ax.fill_between(range(L), null_mean, null_q95, color=[.85, .85, .85], label="head-shuffled null (mean-95%)")
    ax.plot(range(L), ratio, "kh", markerfacecolor=[.7, .9, .9], markersize=12, label="observed")
    ax.legend(fontsize=8)
    ax.set(xlabel="Layer", ylabel="Head selectivity ratio")
    fig.suptitle(f'{title}: the difference of the "{name}"s', fontweight="bold")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- seed 000
def _hist(ax, x, label, density=False, **kw):
    y, edges = np.histogram(x, bins="fd", density=density)
    ax.plot(edges[:-1], y, label=label, **kw)


@styled
def grammar_lengths(title: str, len_nouns: np.ndarray, len_verbs: np.ndarray, t: float, p: float, d: float):
    """Seed 000 Part 1: word-length histograms with the t-test and Cohen's d."""
    fig, ax = _subplots(figsize=(10, 3))
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
def grammar_neurons(title: str, nouns: np.ndarray, verbs: np.ndarray, t: np.ndarray, d: np.ndarray, sig: np.ndarray,
                    null_counts: np.ndarray):
    """Seed 000 Parts 2-3: activations of nouns, mean activations, nouns vs verbs; d vs t; t by neuron."""
    fig = _figure(figsize=(13, 7))
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
def grammar_split_half(title: str, sh: dict, null_r: np.ndarray):
    """Seed 000 Part 4: split-1 vs split-2 and split-1 vs split-12 t-values, by Bonferroni significance."""
    fig, axs = _subplots(1, 2, figsize=(10, 4))
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
def grammar_distributions(title: str, acts: dict, t: np.ndarray, max_t: int, min_t: int):
    """Seed 000 Part 5: histograms of all neurons, by t sign, and of the strongest +/- neurons."""
    fig, axs = _subplots(3, 1, figsize=(9, 9))
    for k in ("nouns1", "nouns2", "verbs1", "verbs2"):
        _hist(axs[0], acts[k].ravel(), k.replace("1", " 1").replace("2", " 2").capitalize())
    axs[0].set(xlabel="MLP expansion activation", ylabel="Count", ylim=[0, None], title="Histograms of all MLP neurons")
    for sign, lab in ((t < 0, "t<0"), (t > 0, "t>0")):
        if sign.any():
            _hist(axs[1], acts["nouns1"][:, sign].ravel(), f"Nouns {lab}", density=True, lw=2)
            _hist(axs[1], acts["verbs1"][:, sign].ravel(), f"Verbs {lab}", density=True, lw=2)
    axs[1].set(xlabel="MLP expansion activation", ylabel="Density", ylim=[0, None], title="Histograms separated by t-value sign")
    for n, ls in ((max_t, "-"), (min_t, "--")):
        _hist(axs[2], acts["nouns1"][:, n], f"Nouns, neuron {n} (t = {t[n]:.2f})", density=True, color="r", ls=ls, lw=2)
        _hist(axs[2], acts["verbs1"][:, n], f"Verbs, neuron {n} (t = {t[n]:.2f})", density=True, color="g", ls=ls, lw=2)
    axs[2].set(xlabel="MLP expansion activation", ylabel="Density", ylim=[0, None], title="Histograms from two neurons")
    for ax in axs:
        ax.legend(fontsize=8)
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def grammar_within_across(title: str, t_across1, t_across2, t_within_n, t_within_v, d_across, d_within):
    """Seed 000 Part 6: across- vs within-category t-values, and effect-size histograms."""
    fig = _figure(figsize=(12, 7))
    gs = GridSpec(2, 2, figure=fig)
    lim = np.nanmax(np.abs(np.concatenate([t_across1, t_across2]))) * 1.05
    for i, (x, y, yl, tt) in enumerate(((t_across1, t_within_n, "t(nouns-1,nouns-2)", "A) Across vs. within-nouns"),
                                        (t_across2, t_within_v, "t(verbs-1,verbs-2)", "B) Across vs. within-verbs"))):
        ax = fig.add_subplot(gs[0, i])
        ax.plot(x, y, "ko", markerfacecolor=[.9, .7, .7, .3], markersize=4)
        ax.set(xlim=[-lim, lim], ylim=[-lim, lim], xlabel=f"t(nouns,verbs), split {i + 1}", ylabel=yl, title=tt)
    ax = fig.add_subplot(gs[1, :])
    _hist(ax, np.abs(d_within), "Within category", marker="o", lw=2)
    _hist(ax, np.abs(d_across), "Across category", marker="s", lw=2)
    ax.axvline(.2, ls="--", color="r", label="Small effect")
    ax.axvline(.8, ls=":", color="m", label="Large effect")
    ax.legend()
    ax.set(xlabel="|Cohen's d|", ylabel="Count")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def grammar_laminar(title: str, prop_sig: np.ndarray, mean_abs_t: np.ndarray, split_r: np.ndarray, null_r95: np.ndarray):
    """Seed 000 Part 7: proportion significant, |t| of significant neurons, split correlation per layer."""
    L = len(prop_sig)
    fig, axs = _subplots(1, 3, figsize=(13, 3.5))
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
def grammar_token_order(title: str, res: dict, layer: int, random_r: np.ndarray | None = None):
    """Seed 000 Part 8: sentence vs words vs scrambled scatter at one layer, and correlations per layer."""
    fig = _figure(figsize=(12, 7))
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


# ----------------------------------------------------------------------------- seed 001
@styled
def lesion_tuning(title: str, tu: dict):
    """Seed 001 Part 2: t-values per neuron (him > her, her > him, non-significant) and the pie chart."""
    fig = _figure(figsize=(12, 4))
    gs = GridSpec(1, 3, figure=fig)
    ax0, ax1 = fig.add_subplot(gs[:2]), fig.add_subplot(gs[2])
    t = np.nan_to_num(tu["t"])
    idx = np.arange(len(t))
    ns = np.setdiff1d(idx, np.concatenate([tu["him"], tu["her"]]))
    ax0.plot(ns, t[ns], "o", color=[.6, .6, .6], markersize=3, label="Non-sig.")
    ax0.plot(tu["him"], t[tu["him"]], "s", color=[.3, .7, .3], markersize=3, label="him > her")
    ax0.plot(tu["her"], t[tu["her"]], "^", color=[.8, .3, .3], markersize=3, label="her > him")
    ax0.legend()
    ax0.set(xlim=[-1, len(t)], xlabel="MLP expansion neurons", ylabel="T-value",
            title=f'{len(tu["him"])} "him" neurons and {len(tu["her"])} "her" neurons')
    n_ns = len(t) - len(tu["him"]) - len(tu["her"])
    ax1.pie([len(tu["him"]), len(tu["her"]), n_ns], autopct="%1.1f%%",
            labels=['"him" significant', '"her" significant', "Non-significant"],
            colors=[[.7, .9, .7], [.9, .7, .7], [.85, .85, .85]], wedgeprops={"edgecolor": "k"})
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def lesion_laminar_tuning(title: str, pct_her: np.ndarray, pct_him: np.ndarray):
    """Seed 001 Part 3: percentage of significant t-values per layer."""
    L = len(pct_her)
    fig, ax = _subplots(figsize=(10, 3))
    ax.plot(range(L), pct_her, "ko", markerfacecolor=[.9, .9, .7, .7], markersize=12, label="her > him")
    ax.plot(range(L), pct_him, "ks", markerfacecolor=[.7, .7, .9, .7], markersize=12, label="him > her")
    ax.legend()
    ax.set(xlim=[-.5, L - .5], xlabel="Layers", ylabel="% sig. t-values", title=title,
           xticks=range(0, L, max(1, L // 12)))
    fig.tight_layout()
    return fig


@styled
def lesion_predictions(title: str, triple: np.ndarray, margins: np.ndarray):
    """Seed 001 Part 4: her/him logits at the her and him positions of the clean, HER-mask and HIM-mask
    sentences; plus the margin over the held-out masked sentences."""
    fig = _figure(figsize=(14, 4.5))
    gs = GridSpec(1, 4, figure=fig)
    ax, ax2 = fig.add_subplot(gs[:3]), fig.add_subplot(gs[3])
    for i in range(3):
        ax.bar(np.array([-.1, .1]) + i * 1.5, triple[i, 0], width=.2, color=[[.9, .3, .9], [.3, .9, .9]], edgecolor="k")
        ax.bar(np.array([-.1, .1]) + i * 1.5 + .5, triple[i, 1], width=.2, color=[[.9, .7, .9], [.7, .9, .9]],
               edgecolor="k")
    base = "her | him    her | him\nher position | him position"
    ax.set(xticks=np.arange(.25, 3.5, 1.5), ylabel="Logits",
           xticklabels=[base + "\n\nClean sentence", base + "\n\nHER mask sentence", base + "\n\nHIM mask sentence"])
    ax2.hist(margins[2:], bins=15, color=[.7, .8, .9], edgecolor="k")
    ax2.axvline(0, color="r", ls="--")
    ax2.set(xlabel="logit(correct) - logit(other)", ylabel="Held-out sentences",
            title=f"{(margins[2:] > 0).mean():.0%} correct")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def lesion_ablation(title: str, r: dict):
    """Seed 001 Parts 5 and 7: clean - ablated margins per sentence, clean vs ablated, and the tuned-neuron
    effect against random and least-tuned neuron sets."""
    fig, axs = _subplots(1, 3, figsize=(14, 4))
    d = r["clean"] - r["ablated_tuned"]
    axs[0].bar(range(len(d)), d, color=[.7, .9, .9], edgecolor="k")
    axs[0].axhline(0, color="k", lw=.3)
    axs[0].set(xlabel="Masked sentence (0: HER mask, 1: HIM mask of the seed triple)",
               ylabel="$\\Delta$ margin (clean - ablated)", title="A) Clean - ablated, per sentence")
    axs[1].plot(r["clean"], r["ablated_tuned"], "ko", markerfacecolor=[.7, .9, .9, .6], markersize=8)
    lo, hi = min(r["clean"].min(), r["ablated_tuned"].min()), max(r["clean"].max(), r["ablated_tuned"].max())
    axs[1].plot([lo, hi], [lo, hi], "k--", lw=.5)
    axs[1].grid(lw=.4)
    axs[1].set(xlabel="Clean margin", ylabel="Ablated margin", title="B) Clean vs. ablated model")
    axs[2].hist(r["random"], bins=30, color=[.85, .85, .85], edgecolor="k", label="random sets")
    axs[2].axvline(r["tuned"], color="r", lw=2, label=f"tuned (p={r['p']:.3f})")
    axs[2].axvline(r["least"], color="b", ls="--", lw=2, label="least tuned")
    axs[2].legend(fontsize=8)
    axs[2].set(xlabel="Mean margin drop", ylabel="Count", title=f"C) {r['n_him']} him + {r['n_her']} her neurons")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def lesion_laminar_ablation(title: str, res: list[dict]):
    """Seed 001 Part 6: overall impact per layer and the signed her/him impact, with the random-set null."""
    L = len(res)
    fig, axs = _subplots(1, 2, figsize=(12, 4))
    axs[0].plot(range(L), [abs(r["tuned"]) for r in res], "kh", markerfacecolor=[.9, .7, .7], markersize=12,
                label="tuned neurons")
    axs[0].plot(range(L), [np.quantile(np.abs(r["random"]), .95) for r in res], "--", color=[.5, .5, .5],
                label="random sets, 95%")
    axs[0].plot(range(L), [abs(r["least"]) for r in res], "b:", label="least tuned")
    axs[0].legend(fontsize=8)
    axs[0].set(xlabel="Transformer block", ylabel="Magnitude change in margin", ylim=[0, None],
               title="A) Overall impact of manipulation on target logits")
    axs[1].plot(range(L), [r["drop_her"] for r in res], "o-", label="HER manipulation")
    axs[1].plot(range(L), [r["drop_him"] for r in res], "s-", label="HIM manipulation")
    axs[1].axhline(0, color="k", lw=.5)
    axs[1].legend()
    axs[1].set(xlabel="Transformer block", ylabel="Signed change (clean - ablated)",
               title="B) Clean - ablated target $\\Delta$ margin")
    for ax in axs:
        ax.set_xticks(range(0, L, max(1, L // 12)))
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- seed 003
def _token_axis(ax, labels: list[str], rotation: int = 45):
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([repr(t)[1:-1] for t in labels], rotation=rotation, fontsize=7)


@styled
def recommender_norms(title: str, norms: dict[str, np.ndarray], labels: dict[str, list[str]], cv: float,
                      null_cv: list[float]):
    """Seed 003 Part 1: MLP-output norm per layer x token for texts A, B, C (colour limits: 5th-95th
    percentile of each text, as the seed), position 0 excluded."""
    fig, axs = _subplots(1, 3, figsize=(16, 3.8))
    for ax, k in zip(axs, "ABC"):
        lo, hi = np.percentile(norms[k], [5, 95])
        h = ax.imshow(norms[k], aspect="auto", cmap="magma", origin="lower", vmin=lo, vmax=hi)
        _token_axis(ax, labels[k], 90)
        ax.set(ylabel="Transformer layer", title=f"Norms of text {k}")
        fig.colorbar(h, ax=ax, pad=.01)
    fig.suptitle(f"{title}\nmax across-token norm CV {cv:.2f} (random-init copies: "
                 f"{', '.join(f'{x:.2f}' for x in null_cv)})", fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def recommender_token_average(title: str, ta: dict, labels_C: list[str], layer: int, null_q99: float):
    """Seed 003 Part 2: the mean vectors of A and B (line and scatter) and each C token's similarity with the
    target vector; the recommended token marked."""
    fig = _figure(figsize=(15, 6.5))
    gs = GridSpec(2, 2, figure=fig)
    a0, a1, a2 = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1]), fig.add_subplot(gs[1, :])
    a0.plot(ta["mean_A"], label="Vector A")
    a0.plot(ta["mean_B"], label="Vector B")
    a0.legend()
    a0.set(xlabel="Embeddings dimension", ylabel="Value", title="A) Mean vectors (centred)")
    a1.plot(ta["mean_A"], ta["mean_B"], "kh", markerfacecolor=[.7, .9, .9, .5])
    a1.set(xlabel="Mean vector A", ylabel="Mean vector B", title=f"B) Scatter plot ($S_c$ = {ta['cos_AB']:.2f})")
    s = ta["sims"]
    a2.plot(s, "kh", markerfacecolor=[.9, .7, .9], markersize=12)
    a2.axhline(s.max(), ls="--", lw=.5, color="k")
    a2.axvline(ta["best"], ls="--", lw=.5, color="k")
    a2.axhline(null_q99, ls=":", color="r", label="dimension-shuffle null, 99%")
    a2.legend(fontsize=8)
    _token_axis(a2, labels_C)
    a2.set(ylabel="Similarity with target vector",
           title=f"C) Layer {layer}: recommended token {labels_C[ta['best']]!r}")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def recommender_layers(title: str, rec_sim: np.ndarray, rec_labels: list[str], null_max: list[np.ndarray]):
    """Seed 003 Part 3: the recommended token and its similarity per layer (random-init copies in grey)."""
    fig, ax = _subplots(figsize=(10, 3.6))
    for i, n in enumerate(null_max):
        ax.plot(n, "-", color=[.6, .6, .6], lw=1, label="random-init copies" if i == 0 else None)
    for l, (s, t) in enumerate(zip(rec_sim, rec_labels)):
        ax.plot(l, s, "kh", markersize=14, markerfacecolor=[.9, .7, .7])
        ax.text(l, s + .05, repr(t)[1:-1], ha="center", fontweight="bold")
    ax.legend(fontsize=8)
    ax.set(xlabel="Transformer layer", ylabel="Cosine similarity (centred)", title="Recommended token")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def recommender_pairs(title: str, cmat: np.ndarray, lA: list[str], lB: list[str], lC: list[str]):
    """Seed 003 Part 4: pair (analogy) similarity matrices (A tokens x B tokens) for four C tokens, with the
    best pair in each title."""
    idxs = np.linspace(0, cmat.shape[2] - 1, 4, dtype=int)
    fig, axs = _subplots(1, 4, figsize=(16, 5.5))
    lo, hi = np.percentile(cmat, [5, 99])
    for ax, k in zip(axs, idxs):
        i, j = np.unravel_index(np.argmax(cmat[:, :, k]), cmat[:, :, k].shape)
        ax.imshow(cmat[:, :, k], vmin=lo, vmax=hi, aspect="auto", cmap="magma")
        ax.set(title=f"Similarity with {lC[k]!r}\n({lA[i]!r}, {lB[j]!r})", yticks=range(len(lA)))
        _token_axis(ax, lB, 90)
        ax.set_yticklabels([repr(t)[1:-1] for t in lA], fontsize=7)
    axs[0].set(xlabel="Tokens from text B", ylabel="Tokens from text A")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def recommender_heatmap(title: str, mx: np.ndarray, labels_C: list[str], score: np.ndarray,
                        null_scores: list[np.ndarray], middle: range):
    """Seed 003 Part 5: max pair similarity per layer x C token (5th-95th percentile colours), and the pair score
    per layer (mean over C tokens) against random-init copies, the middle layers shaded."""
    fig = _figure(figsize=(15, 4.2))
    gs = GridSpec(1, 3, figure=fig)
    a0, a1 = fig.add_subplot(gs[:2]), fig.add_subplot(gs[2])
    lo, hi = np.percentile(mx, [5, 95])
    h = a0.imshow(mx, aspect="auto", origin="lower", cmap="magma", vmin=lo, vmax=hi)
    fig.colorbar(h, ax=a0, pad=.01)
    _token_axis(a0, labels_C)
    a0.set(ylabel="Transformer layer", title="Max similarities to target vector (centred)")
    a1.axvspan(middle.start - .5, middle.stop - .5, color=[.9, .9, .7], label="middle layers")
    for i, n in enumerate(null_scores):
        a1.plot(n, "-", color=[.6, .6, .6], label="random-init copies" if i == 0 else None)
    a1.plot(score, "ko-", markerfacecolor=[.9, .7, .7], markersize=9, label="model")
    a1.legend(fontsize=8)
    a1.set(xlabel="Transformer layer", ylabel="Mean max similarity", title=f"Best layer {int(np.argmax(score))}")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- seed 002
@styled
def neuron_behaviour(title: str, names: list[str], clean: np.ndarray, corrupted: np.ndarray,
                     templated_clean: np.ndarray, templated_corrupted: np.ndarray):
    """Seed 002 behaviour: logit difference (target - foil) of the clean and corrupted prompts per seed case, and
    over the templated cases."""
    fig, axs = _subplots(1, 2, figsize=(13, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    x = np.arange(len(names))
    axs[0].bar(x - .2, clean, .4, color=[.5, .8, .5], edgecolor="k", label="clean")
    axs[0].bar(x + .2, corrupted, .4, color=[.9, .6, .6], edgecolor="k", label="corrupted")
    axs[0].axhline(0, color="k", lw=.5)
    axs[0].set(xticks=x, xticklabels=names, ylabel="logit(target) - logit(foil)", title="A) Seed cases")
    axs[0].legend()
    if len(templated_clean):
        axs[1].hist(templated_clean, bins=15, color=[.5, .8, .5], alpha=.7, label="clean")
        axs[1].hist(templated_corrupted, bins=15, color=[.9, .6, .6], alpha=.7, label="corrupted")
        axs[1].axvline(0, color="k", ls="--")
        axs[1].legend(fontsize=8)
    axs[1].set(xlabel="logit difference", ylabel="Templated cases", title="B) Templated cases")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def neuron_logit_lens(title: str, lenses: dict[str, np.ndarray], spikes: dict[str, list]):
    """Seed 002 logit lens: logit difference per layer (0 = embeddings), jumps marked."""
    fig, ax = _subplots(figsize=(10, 4))
    for name, lens in lenses.items():
        h, = ax.plot(lens, "o-", label=name, markersize=4)
        for a, b in spikes[name]:
            ax.plot([a, b], lens[[a, b]], "-", color=h.get_color(), lw=4, alpha=.4)
    ax.axhline(0, color="k", lw=.5)
    ax.legend(fontsize=8)
    ax.set(xlabel="Layer (0 = embeddings, i = entering block i)", ylabel="logit(target) - logit(foil)",
           title="Logit lens (thick: jumps above the threshold)")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def neuron_layer_position(title: str, rest: np.ndarray, labels: list[str]):
    """Seed 002 activation patching: normalised restoration per layer x position (residual stream)."""
    fig, ax = _subplots(figsize=(1.2 + .6 * len(labels), 0.5 + .25 * rest.shape[0] + 2))
    lim = max(1.0, float(np.abs(rest).max()))
    h = ax.imshow(rest, aspect="auto", origin="lower", cmap="RdBu", vmin=-lim, vmax=lim)
    fig.colorbar(h, ax=ax, pad=.01, label="restoration")
    _token_axis(ax, labels)
    ax.set(ylabel="Layer (residual after block)", title="Residual-stream patching, clean -> corrupted")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def neuron_patching(title: str, rest: dict[str, np.ndarray], layer: int, star: int):
    """Seed 002 neuron patching: restoration of each neuron of one layer, per case; the stand-out neuron marked."""
    fig, axs = _subplots(1, len(rest), figsize=(4 * len(rest), 3.6), sharey=True)
    for ax, (name, r) in zip(np.atleast_1d(axs), rest.items()):
        ax.plot(r, ".", color=[.4, .4, .4], markersize=3)
        ax.plot(star, r[star], "o", color="r", markersize=8)
        ax.annotate(f"N{star}: {r[star]:.3f}", (star, r[star]), textcoords="offset points", xytext=(5, 5),
                    color="r", fontsize=8)
        ax.set(xlabel=f"Neuron (layer {layer})", title=name)
    np.atleast_1d(axs)[0].set_ylabel("Restoration")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def neuron_congruence(title: str, cg: dict, writers: np.ndarray, token: str, best: tuple[int, int]):
    """Seed 002 congruence: a neuron's top and bottom unembedding tokens; every neuron of every layer against one
    token (which neurons write it)."""
    fig, axs = _subplots(1, 2, figsize=(14, 4.2))
    toks = cg["top"][::-1] + cg["bottom"]
    vals = np.concatenate([cg["top_scores"][::-1], cg["bottom_scores"]])
    axs[0].barh(range(len(toks)), vals, color=[[.5, .7, .9] if v > 0 else [.9, .6, .6] for v in vals])
    axs[0].set(yticks=range(len(toks)), yticklabels=[repr(t) for t in toks], xlabel="output weights . unembedding",
               title="A) Top and bottom tokens of the stand-out neuron")
    L, N = writers.shape
    axs[1].plot(writers.ravel(), ".", color=[.4, .4, .4], markersize=2)
    axs[1].plot(best[0] * N + best[1], writers[best], "ro")
    axs[1].annotate(f"L{best[0]}.N{best[1]}", (best[0] * N + best[1], writers[best]), color="r",
                    textcoords="offset points", xytext=(5, 0))
    axs[1].set(xticks=np.arange(L) * N + N / 2, xticklabels=range(L), xlabel="Layer (neurons in order)",
               ylabel="congruence", title=f"B) Every neuron against {token!r}")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def neuron_workflow(title: str, inv, drop: float, null: np.ndarray, p: float):
    """One page for :func:`probes.families.neuron.analysis.investigate`: lens, layer x position patching, neuron restorations of
    the identified layers, and the ablation check against random neuron sets."""
    fig = _figure(figsize=(16, 8))
    gs = GridSpec(2, 3, figure=fig)
    a = fig.add_subplot(gs[0, 0])
    a.plot(inv.lens, "ko-")
    for s, e in inv.spikes:
        a.plot([s, e], inv.lens[[s, e]], "r-", lw=4, alpha=.5)
    a.set(xlabel="Layer (0 = embeddings)", ylabel="logit diff", title=f"1) Logit lens ({inv.case})")
    b = fig.add_subplot(gs[0, 1:])
    lim = max(1.0, float(np.abs(inv.layer_position).max()))
    h = b.imshow(inv.layer_position, aspect="auto", origin="lower", cmap="RdBu", vmin=-lim, vmax=lim)
    fig.colorbar(h, ax=b, pad=.01)
    b.set(xlabel="Position", ylabel="Layer", title="2) Residual patching, clean -> corrupted")
    c = fig.add_subplot(gs[1, 0:2])
    off = 0
    for l, r in inv.restorations.items():
        c.plot(np.arange(len(r)) + off, r, ".", markersize=3, label=f"layer {l}")
        off += len(r)
    for n in inv.neurons:
        c.annotate(n["id"], (list(inv.restorations).index(n["layer"]) * len(r) + n["neuron"], n["restoration"]),
                   fontsize=7, color="r")
    c.legend(fontsize=8)
    c.set(xlabel="Neuron (identified layers)", ylabel="Restoration", title="3) Neuron patching; outliers named")
    d = fig.add_subplot(gs[1, 2])
    d.hist(null, bins=30, color=[.85, .85, .85], edgecolor="k", label="random sets")
    d.axvline(drop, color="r", lw=2, label=f"found neurons (p={p:.3f})")
    d.legend(fontsize=8)
    d.set(xlabel="Mean drop in logit diff (templated cases)", ylabel="Count", title="4) Zeroing the found neurons")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------- attention (induction, sinks)
@styled
def head_scores(title: str, score: np.ndarray, null_max: float, threshold: float, label: str, marked=()):
    """A (layers, heads) score map beside the sorted scores of all heads against the random-init copies' maximum
    and the criterion's threshold (previous-token and induction scores)."""
    fig = _figure(figsize=(11, 4))
    gs = GridSpec(1, 2, width_ratios=[1.1, 1], figure=fig)
    ax = fig.add_subplot(gs[0])
    im = ax.imshow(score.T, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=1)
    for layer, h in marked:
        ax.add_patch(Rectangle((layer - 0.5, h - 0.5), 1, 1, fill=False, ec="r", lw=1.5))
    ax.set_xlabel("Layer")
    ax.set_ylabel("Head")
    ax.set_title(f"A) {label} per head (red: recorded heads)")
    fig.colorbar(im, ax=ax)
    ax = fig.add_subplot(gs[1])
    s = np.sort(score.ravel())[::-1]
    ax.plot(s, "o-", ms=3, color="#1f77b4", label="trained model")
    ax.axhline(null_max, color="#999", ls="--", label=f"random-init copies' max ({null_max:.3f})")
    ax.axhline(threshold, color="r", ls=":", label=f"threshold {threshold}")
    ax.set_xlabel("Heads, sorted")
    ax.set_ylabel(label)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("B) Sorted scores vs the null")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@styled
def permutation_bars(title: str, observed: float, null: np.ndarray, xlabel: str, observed_label: str):
    """The observed effect of an ablation against the effects of random ablations of as many heads."""
    fig, ax = _subplots(figsize=(7, 3.6))
    ax.hist(null, bins=min(20, max(5, len(null) // 2)), color="#999", label=f"random heads ({len(null)} draws)")
    ax.axvline(observed, color="r", lw=2, label=observed_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Draws")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


@styled
def loss_repeats(title: str, first: np.ndarray, second: np.ndarray, null_drops: list[float]):
    """Per-sequence loss on the first and the second repeat, with the random-init copies' drops."""
    fig, ax = _subplots(figsize=(7, 3.6))
    x = np.arange(len(first))
    ax.plot(x, first, "o-", color="#999", label="first repeat")
    ax.plot(x, second, "o-", color="#c44", label="second repeat")
    ax.set_xlabel("Sequence")
    ax.set_ylabel("Next-token loss (nats)")
    ax.legend(fontsize=8)
    ax.set_title(f"{title}\nloss drop {np.mean(first - second):.2f} nats; random-init copies: "
                 f"{', '.join(f'{d:.2f}' for d in null_drops)}", fontsize=9)
    fig.tight_layout()
    return fig


@styled
def sink_map(title: str, sink: np.ndarray, null_share: float, threshold: float):
    """Mean attention to the first token per (layer, head), and the share of heads above the threshold per layer."""
    fig = _figure(figsize=(11, 4))
    gs = GridSpec(1, 2, width_ratios=[1.1, 1], figure=fig)
    ax = fig.add_subplot(gs[0])
    im = ax.imshow(sink.T, aspect="auto", origin="lower", cmap="magma", vmin=0, vmax=1)
    ax.set_xlabel("Layer")
    ax.set_ylabel("Head")
    ax.set_title("A) Mean attention to the first token")
    fig.colorbar(im, ax=ax)
    ax = fig.add_subplot(gs[1])
    ax.bar(np.arange(sink.shape[0]), (sink > threshold).mean(1), color="#7b3294")
    ax.axhline((sink > threshold).mean(), color="k", ls="--", label=f"all heads: {(sink > threshold).mean():.0%}")
    ax.axhline(null_share, color="#999", ls=":", label=f"random-init copies: {null_share:.0%}")
    ax.set_ylim(0, 1)
    ax.set_xlabel("Layer")
    ax.set_ylabel(f"Share of heads > {threshold}")
    ax.legend(fontsize=8)
    ax.set_title("B) Sink heads per layer")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@styled
def massive_activations(title: str, top: np.ndarray, median: np.ndarray, null_top: np.ndarray, min_value: float):
    """Per layer the largest |activation| of the residual stream and its median, log scale, beside the random-init
    copies' largest."""
    fig, ax = _subplots(figsize=(8, 3.8))
    x = np.arange(len(top))
    ax.semilogy(x, top, "o-", color="#c44", label="largest |activation|")
    ax.semilogy(x, median, "o-", color="#1f77b4", label="median |activation|")
    ax.semilogy(x, null_top, "s--", color="#999", ms=3, label="random-init copies: largest")
    ax.axhline(min_value, color="k", ls=":", lw=1, label=f"{min_value:g}")
    ax.set_xlabel("Layer (residual stream after the block)")
    ax.set_ylabel("|activation|")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


@styled
def successor_heads(title: str, score: np.ndarray, per_task: dict[str, float], sizes: dict[str, int],
                    best: str, null_random: float, null_shuffled: float, threshold: float):
    """Succession score per (layer, head); the sorted scores against both nulls (random-init copies' best head,
    shuffled orders' best head) and the threshold; the best head's top-1 accuracy per task against chance."""
    fig = _figure(figsize=(14, 4))
    gs = GridSpec(1, 3, width_ratios=[1.1, 1, 1], figure=fig)
    ax = fig.add_subplot(gs[0])
    im = ax.imshow(score.T, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=1)
    ax.set_xlabel("Layer")
    ax.set_ylabel("Head")
    ax.set_title("A) Succession score per head")
    fig.colorbar(im, ax=ax)
    ax = fig.add_subplot(gs[1])
    ax.plot(np.sort(score.ravel())[::-1], "o-", ms=3, color="#1f77b4", label="trained model")
    ax.axhline(null_random, color="#999", ls="--", label=f"random-init copies' best ({null_random:.3f})")
    ax.axhline(null_shuffled, color="#e6a000", ls="-.", label=f"shuffled orders' best ({null_shuffled:.3f})")
    ax.axhline(threshold, color="r", ls=":", label=f"threshold {threshold}")
    ax.set_ylim(0, 1)
    ax.set_xlabel("Heads, sorted")
    ax.set_ylabel("Succession score")
    ax.legend(fontsize=8)
    ax.set_title("B) Sorted scores vs the nulls")
    ax = fig.add_subplot(gs[2])
    names = list(per_task)
    x = np.arange(len(names))
    ax.bar(x, [per_task[t] for t in names], color="#2ca02c", label=f"{best}: top-1 accuracy")
    ax.scatter(x, [1 / sizes[t] for t in names], marker="_", s=400, color="k", zorder=3, label="chance (1/members)")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("Successor ranked first")
    ax.legend(fontsize=8)
    ax.set_title(f"C) The best head ({best}) per task")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@styled
def known_facts(title: str, names: list[str], p: np.ndarray, known: np.ndarray, p_random: np.ndarray):
    """Per fact the probability of its attribute (known facts: the attribute is the top-1 token), beside a
    random-init copy's."""
    fig, ax = _subplots(figsize=(12, 4))
    x = np.arange(len(names))
    ax.bar(x, p, color=np.where(known, "#2ca02c", "#bbb"), label="p(attribute): green = top-1 (known)")
    ax.plot(x, p_random, "k_", ms=8, label="random-init copy")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=70, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("p(attribute)")
    ax.legend(fontsize=8)
    ax.set_title(f"{title}: {int(known.sum())} of {len(names)} known", fontsize=10)
    fig.tight_layout()
    return fig


@styled
def causal_trace(title: str, mean_ie: np.ndarray, classes: tuple, band: range, per_fact: np.ndarray,
                 null_subject: np.ndarray, gap: float):
    """Meng et al.'s picture: the mean indirect effect of restoring each (position class, layer), with the claim's
    early-to-middle band marked; per layer the mean effect of each class with a random-init copy's at the last
    subject token; per fact the band's mean effect of each class."""
    fig = _figure(figsize=(15, 4))
    gs = GridSpec(1, 3, width_ratios=[1.3, 1.2, 0.8], figure=fig)
    ax = fig.add_subplot(gs[0])
    im = ax.imshow(mean_ie.T, aspect="auto", cmap="Purples", vmin=0, vmax=max(gap, float(mean_ie.max())))
    ax.add_patch(Rectangle((band.start - 0.5, -0.5), len(band), 1, fill=False, ec="r", lw=1.5))
    ax.set_yticks(range(len(classes)))
    ax.set_yticklabels(classes)
    ax.set_xlabel("Layer (hidden state after the block, restored)")
    ax.set_title("A) Mean indirect effect on p(attribute)")
    fig.colorbar(im, ax=ax)
    ax = fig.add_subplot(gs[1])
    colors = ["#6a3d9a", "#ff7f00", "#1f77b4"]
    for j, name in enumerate(classes):
        ax.plot(mean_ie[:, j], "o-", ms=3, color=colors[j % 3], label=name)
    ax.plot(null_subject, "s--", ms=2, color="#999", label="random-init copy: last subject token")
    ax.axvspan(band.start - 0.5, band.stop - 0.5, color="r", alpha=0.07, label="early-to-middle layers")
    ax.axhline(gap, color="k", ls=":", lw=1, label=f"clean - corrupted ({gap:.2f})")
    ax.set_xlabel("Layer")
    ax.set_ylabel("Indirect effect")
    ax.legend(fontsize=7, loc="center right")
    ax.set_title("B) Per layer")
    ax = fig.add_subplot(gs[2])
    for j in range(per_fact.shape[1]):
        ax.scatter(np.full(len(per_fact), j) + np.linspace(-0.15, 0.15, len(per_fact)), per_fact[:, j], s=10,
                   color=colors[j % 3])
        ax.hlines(per_fact[:, j].mean(), j - 0.3, j + 0.3, color="k")
    ax.set_xticks(range(per_fact.shape[1]))
    ax.set_xticklabels([c.replace(" token", "") for c in classes], rotation=20, fontsize=8)
    ax.set_ylabel(f"Mean effect, layers {band.start}-{band.stop - 1}")
    ax.set_title("C) Per fact")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
