"""The IOI claims' figures (seed 004, Parts 1-5): behaviour, head effects (silencing, patching), head
activations, mention selectivity.

Each function returns a matplotlib Figure drawn under the suite's style (:func:`probes.figures.styled`);
``probes.figures.save`` writes it.
"""
from __future__ import annotations

import numpy as np
from matplotlib.gridspec import GridSpec

from ...figures import boxed, figure, styled, subplots


def _l1_clim(img: np.ndarray) -> float:
    """Colour limit from the L1 mean (as the seed): a few times the mean absolute value."""
    return float(max(3 * np.abs(img).mean(), 1e-6))


@styled
def behaviour(title: str, logsm_base: np.ndarray, logsm_source: np.ndarray, a_id: int, b_id: int,
                  a: str, b: str, base_text: str, source_text: str, diffs: np.ndarray, null_p: float):
    """Seed 004 Part 1 (log-softmax of the two prompts and their relation) + logit-diff histogram over the set."""
    fig = figure(figsize=(15, 3.4))
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
    ax4.hist(diffs, bins=30, color=(.6, .8, .9), edgecolor="k")
    ax4.axvline(0, color="r", ls="--")
    ax4.set(xlabel="logit(IO) - logit(S)", ylabel="Prompts",
            title=f"{(diffs > 0).mean():.1%} IO>S, mean {diffs.mean():.2f} (p={null_p:.1g})")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def head_effects(title: str, delta: np.ndarray, *, third: str, head_norm: np.ndarray | None = None,
                     kind: str = "silenced"):
    """Seed 004 Parts 2 and 5: (A) delta IOI per layer x head, (B) head-average per layer, (C) norm vs effect
    (Part 2) or stdev across heads (Part 5). ``delta``: (L, H)."""
    L, H = delta.shape
    heads_by_layer = delta.T  # heads x layers, as the seed
    clim = _l1_clim(heads_by_layer)
    fig, axs = subplots(1, 3, figsize=(13, 3.4))
    h = axs[0].pcolor(range(L), range(H), heads_by_layer, vmin=-clim, vmax=clim, cmap="RdBu_r", shading="nearest")
    axs[0].set(xlabel="Transformer layer", ylabel="Attention head index", yticks=range(0, H, 2 if H > 8 else 1),
               title=f"A) $\\Delta$ IOI ({kind} - clean)")
    c = fig.colorbar(h, ax=axs[0], pad=.02)
    c.ax.tick_params(labelsize=8)
    boxed(axs[0])
    m, s = heads_by_layer.mean(0), heads_by_layer.std(0)
    axs[1].errorbar(range(L), m, s, fmt="none", ecolor=[.6, .6, .6])
    axs[1].plot(range(L), m, "ks", markerfacecolor=[.9, .7, .7])
    axs[1].axhline(0, color="k", ls="--", lw=.8)
    axs[1].set(xlabel="Transformer layer", ylabel="Average $\\Delta$ IOI", title="B) Head-average results")
    if L <= 16:
        for ax in axs:
            ax.set_xticks(range(L))
    if third == "norm":
        if head_norm is None:
            raise ValueError("third='norm' draws the heads' norms: pass head_norm")
        axs[2].scatter(head_norm.T.ravel(), heads_by_layer.ravel(), 30, c=heads_by_layer.ravel(), edgecolor="k", linewidth=.4,
                       cmap="RdBu_r", vmin=-clim, vmax=clim, alpha=.7)
        axs[2].set(xlabel="Head norm", ylabel="$\\Delta$IOI", title="C) Head norm vs. IOI impact")
    else:
        axs[2].plot(range(L), s, "ko-", markerfacecolor=[.7, .9, .7])
        axs[2].set(xlabel="Transformer layer", ylabel="Stdev across $\\Delta$ IOI", title="C) Head-variability results")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def head_activations(title: str, acts_layer: np.ndarray, token_labels: list[str], layer: int,
                         norm_map: np.ndarray, null_cv: list[float], cv: float):
    """Seed 004 Part 3: (a) head activation heatmaps (dims x heads) per token in one layer, (b) average head
    norms per layer x token."""
    T = acts_layer.shape[0]
    fig = figure(figsize=(max(12, T * 0.9), 7))
    gs = GridSpec(2, T, figure=fig, height_ratios=[1, 1.4])
    for i in range(T):
        ax = fig.add_subplot(gs[0, i])
        dims_by_head = acts_layer[i].T  # dims x heads
        cmin, cmax = np.percentile(dims_by_head, [2, 98])
        ax.imshow(dims_by_head, origin="lower", aspect="auto", cmap="plasma", vmin=cmin, vmax=cmax)
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
def mention_selectivity(title: str, diff_maps: list[np.ndarray], diff_layers: list[int], ratio: np.ndarray,
                            null_mean: np.ndarray, null_q95: np.ndarray, name: str):
    """Seed 004 Part 4: (a) first-minus-second mention difference (dims x heads) per layer, (b) selectivity ratio
    per layer with the head-shuffled null."""
    n = len(diff_maps)
    fig = figure(figsize=(max(12, 1.6 * n), 6))
    gs = GridSpec(2, n, figure=fig)
    for i, (D, layer) in enumerate(zip(diff_maps, diff_layers)):
        ax = fig.add_subplot(gs[0, i])
        lim = np.abs(D).max() or 1
        ax.imshow(D.T, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set(title=f"L{layer}", xticks=[], yticks=[])
        boxed(ax)
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
