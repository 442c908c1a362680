"""The neuron claims' figures (seed 002): behaviour, logit lens, layer x position patching, neuron patching,
congruence and the workflow's page.

Each function returns a matplotlib Figure drawn under the suite's style (:func:`probes.figures.styled`);
``probes.figures.save`` writes it.
"""
from __future__ import annotations

import numpy as np
from matplotlib.gridspec import GridSpec

from ...figures import figure, styled, subplots, token_axis


@styled
def behaviour(title: str, names: list[str], clean: np.ndarray, corrupted: np.ndarray,
                     templated_clean: np.ndarray, templated_corrupted: np.ndarray):
    """Seed 002 behaviour: logit difference (target - foil) of the clean and corrupted prompts per seed case, and
    over the templated cases."""
    fig, axs = subplots(1, 2, figsize=(13, 3.8), gridspec_kw={"width_ratios": [2, 1]})
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
def logit_lens(title: str, lenses: dict[str, np.ndarray], spikes: dict[str, list]):
    """Seed 002 logit lens: logit difference per layer (0 = embeddings), jumps marked."""
    fig, ax = subplots(figsize=(10, 4))
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
def layer_position(title: str, rest: np.ndarray, labels: list[str]):
    """Seed 002 activation patching: normalised restoration per layer x position (residual stream)."""
    fig, ax = subplots(figsize=(1.2 + .6 * len(labels), 0.5 + .25 * rest.shape[0] + 2))
    lim = max(1.0, float(np.abs(rest).max()))
    h = ax.imshow(rest, aspect="auto", origin="lower", cmap="RdBu", vmin=-lim, vmax=lim)
    fig.colorbar(h, ax=ax, pad=.01, label="restoration")
    token_axis(ax, labels)
    ax.set(ylabel="Layer (residual after block)", title="Residual-stream patching, clean -> corrupted")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def patching(title: str, rest: dict[str, np.ndarray], layer: int, star: int):
    """Seed 002 neuron patching: restoration of each neuron of one layer, per case; the stand-out neuron marked."""
    fig, axs = subplots(1, len(rest), figsize=(4 * len(rest), 3.6), sharey=True)
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
def congruence(title: str, cg: dict, writers: np.ndarray, token: str, best: tuple[int, int]):
    """Seed 002 congruence: a neuron's top and bottom unembedding tokens; every neuron of every layer against one
    token (which neurons write it)."""
    fig, axs = subplots(1, 2, figsize=(14, 4.2))
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
def workflow(title: str, inv, drop: float, null: np.ndarray, p: float):
    """One page for ``investigate`` (the workflow claim): lens, layer x position patching, neuron restorations of
    the identified layers, and the ablation check against random neuron sets."""
    fig = figure(figsize=(16, 8))
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
    for layer, r in inv.restorations.items():
        c.plot(np.arange(len(r)) + off, r, ".", markersize=3, label=f"layer {layer}")
        off += len(r)
    for n in inv.neurons:
        c.annotate(n["id"], (list(inv.restorations).index(n["layer"]) * len(r) + n["neuron"], n["restoration"]),
                   fontsize=7, color="r")
    c.legend(fontsize=8)
    c.set(xlabel="Neuron (identified layers)", ylabel="Restoration", title="3) Neuron patching; outliers named")
    d = fig.add_subplot(gs[1, 2])
    d.hist(null, bins=30, color=(.85, .85, .85), edgecolor="k", label="random sets")
    d.axvline(drop, color="r", lw=2, label=f"found neurons (p={p:.3f})")
    d.legend(fontsize=8)
    d.set(xlabel="Mean drop in logit diff (templated cases)", ylabel="Count", title="4) Zeroing the found neurons")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig
