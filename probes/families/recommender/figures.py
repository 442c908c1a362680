"""The recommender claims' figures (seed 003, Parts 1-5): MLP-output norms, token averages, the
recommendation per layer, pair similarities and their heatmap.

Each function returns a matplotlib Figure drawn under the suite's style (:func:`probes.figures.styled`);
``probes.figures.save`` writes it.
"""
from __future__ import annotations

import numpy as np
from matplotlib.gridspec import GridSpec

from ...figures import figure, styled, subplots, token_axis


@styled
def norms(title: str, norms: dict[str, np.ndarray], labels: dict[str, list[str]], cv: float,
                      null_cv: list[float]):
    """Seed 003 Part 1: MLP-output norm per layer x token for texts A, B, C (colour limits: 5th-95th
    percentile of each text, as the seed), position 0 excluded."""
    fig, axs = subplots(1, 3, figsize=(16, 3.8))
    for ax, k in zip(axs, "ABC"):
        lo, hi = np.percentile(norms[k], [5, 95])
        h = ax.imshow(norms[k], aspect="auto", cmap="magma", origin="lower", vmin=lo, vmax=hi)
        token_axis(ax, labels[k], 90)
        ax.set(ylabel="Transformer layer", title=f"Norms of text {k}")
        fig.colorbar(h, ax=ax, pad=.01)
    fig.suptitle(f"{title}\nmax across-token norm CV {cv:.2f} (random-init copies: "
                 f"{', '.join(f'{x:.2f}' for x in null_cv)})", fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def token_average(title: str, ta: dict, labels_C: list[str], layer: int, null_q99: float):
    """Seed 003 Part 2: the mean vectors of A and B (line and scatter) and each C token's similarity with the
    target vector; the recommended token marked."""
    fig = figure(figsize=(15, 6.5))
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
    token_axis(a2, labels_C)
    a2.set(ylabel="Similarity with target vector",
           title=f"C) Layer {layer}: recommended token {labels_C[ta['best']]!r}")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def layers(title: str, rec_sim: np.ndarray, rec_labels: list[str], null_max: list[np.ndarray]):
    """Seed 003 Part 3: the recommended token and its similarity per layer (random-init copies in grey)."""
    fig, ax = subplots(figsize=(10, 3.6))
    for i, n in enumerate(null_max):
        ax.plot(n, "-", color=[.6, .6, .6], lw=1, label="random-init copies" if i == 0 else None)
    for layer, (s, t) in enumerate(zip(rec_sim, rec_labels)):
        ax.plot(layer, s, "kh", markersize=14, markerfacecolor=[.9, .7, .7])
        ax.text(layer, s + .05, repr(t)[1:-1], ha="center", fontweight="bold")
    ax.legend(fontsize=8)
    ax.set(xlabel="Transformer layer", ylabel="Cosine similarity (centred)", title="Recommended token")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def pairs(title: str, cmat: np.ndarray, lA: list[str], lB: list[str], lC: list[str]):
    """Seed 003 Part 4: pair (analogy) similarity matrices (A tokens x B tokens) for four C tokens, with the
    best pair in each title."""
    idxs = np.linspace(0, cmat.shape[2] - 1, 4, dtype=int)
    fig, axs = subplots(1, 4, figsize=(16, 5.5))
    lo, hi = np.percentile(cmat, [5, 99])
    for ax, k in zip(axs, idxs):
        i, j = np.unravel_index(np.argmax(cmat[:, :, k]), cmat[:, :, k].shape)
        ax.imshow(cmat[:, :, k], vmin=lo, vmax=hi, aspect="auto", cmap="magma")
        ax.set(title=f"Similarity with {lC[k]!r}\n({lA[i]!r}, {lB[j]!r})", yticks=range(len(lA)))
        token_axis(ax, lB, 90)
        ax.set_yticklabels([repr(t)[1:-1] for t in lA], fontsize=7)
    axs[0].set(xlabel="Tokens from text B", ylabel="Tokens from text A")
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    return fig


@styled
def heatmap(title: str, mx: np.ndarray, labels_C: list[str], score: np.ndarray,
                        null_scores: list[np.ndarray], middle: range):
    """Seed 003 Part 5: max pair similarity per layer x C token (5th-95th percentile colours), and the pair score
    per layer (mean over C tokens) against random-init copies, the middle layers shaded."""
    fig = figure(figsize=(15, 4.2))
    gs = GridSpec(1, 3, figure=fig)
    a0, a1 = fig.add_subplot(gs[:2]), fig.add_subplot(gs[2])
    lo, hi = np.percentile(mx, [5, 95])
    h = a0.imshow(mx, aspect="auto", origin="lower", cmap="magma", vmin=lo, vmax=hi)
    fig.colorbar(h, ax=a0, pad=.01)
    token_axis(a0, labels_C)
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
