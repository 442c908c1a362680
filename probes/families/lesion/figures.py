"""The lesion claims' figures (seed 001, Parts 2-7): tuning, tuning per layer, masked-token predictions, ablation
and ablation per layer.

Each function returns a matplotlib Figure drawn under the suite's style (:func:`probes.figures.styled`);
``probes.figures.save`` writes it.
"""
from __future__ import annotations

import numpy as np
from matplotlib.gridspec import GridSpec

from ...figures import figure, styled, subplots


@styled
def tuning(title: str, tu: dict):
    """Seed 001 Part 2: t-values per neuron (him > her, her > him, non-significant) and the pie chart."""
    fig = figure(figsize=(12, 4))
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
            colors=[(.7, .9, .7), (.9, .7, .7), (.85, .85, .85)], wedgeprops={"edgecolor": "k"})
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def laminar_tuning(title: str, pct_her: np.ndarray, pct_him: np.ndarray):
    """Seed 001 Part 3: percentage of significant t-values per layer."""
    L = len(pct_her)
    fig, ax = subplots(figsize=(10, 3))
    ax.plot(range(L), pct_her, "ko", markerfacecolor=[.9, .9, .7, .7], markersize=12, label="her > him")
    ax.plot(range(L), pct_him, "ks", markerfacecolor=[.7, .7, .9, .7], markersize=12, label="him > her")
    ax.legend()
    ax.set(xlim=[-.5, L - .5], xlabel="Layers", ylabel="% sig. t-values", title=title,
           xticks=range(0, L, max(1, L // 12)))
    fig.tight_layout()
    return fig


@styled
def predictions(title: str, triple: np.ndarray, margins: np.ndarray):
    """Seed 001 Part 4: her/him logits at the her and him positions of the clean, HER-mask and HIM-mask
    sentences; plus the margin over the held-out masked sentences."""
    fig = figure(figsize=(14, 4.5))
    gs = GridSpec(1, 4, figure=fig)
    ax, ax2 = fig.add_subplot(gs[:3]), fig.add_subplot(gs[3])
    for i in range(3):
        ax.bar(np.array([-.1, .1]) + i * 1.5, triple[i, 0], width=.2, color=[[.9, .3, .9], [.3, .9, .9]], edgecolor="k")
        ax.bar(np.array([-.1, .1]) + i * 1.5 + .5, triple[i, 1], width=.2, color=[[.9, .7, .9], [.7, .9, .9]],
               edgecolor="k")
    base = "her | him    her | him\nher position | him position"
    ax.set(xticks=np.arange(.25, 3.5, 1.5), ylabel="Logits",
           xticklabels=[base + "\n\nClean sentence", base + "\n\nHER mask sentence", base + "\n\nHIM mask sentence"])
    ax2.hist(margins[2:], bins=15, color=(.7, .8, .9), edgecolor="k")
    ax2.axvline(0, color="r", ls="--")
    ax2.set(xlabel="logit(correct) - logit(other)", ylabel="Held-out sentences",
            title=f"{(margins[2:] > 0).mean():.0%} correct")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def ablation(title: str, r: dict):
    """Seed 001 Parts 5 and 7: clean - ablated margins per sentence, clean vs ablated, and the tuned-neuron
    effect against random and least-tuned neuron sets."""
    fig, axs = subplots(1, 3, figsize=(14, 4))
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
def laminar_ablation(title: str, res: list[dict]):
    """Seed 001 Part 6: overall impact per layer and the signed her/him impact, with the random-set null."""
    L = len(res)
    fig, axs = subplots(1, 2, figsize=(12, 4))
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
