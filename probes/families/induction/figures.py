"""The induction claims' figures: head scores against the random-init copies, the repeat losses, and an
ablation's effect against random heads.

Each function returns a matplotlib Figure drawn under the suite's style (:func:`probes.figures.styled`);
``probes.figures.save`` writes it.
"""
from __future__ import annotations

import numpy as np
from matplotlib.gridspec import GridSpec
from matplotlib.patches import Rectangle

from ...figures import figure, styled, subplots


@styled
def head_scores(title: str, score: np.ndarray, null_max: float, threshold: float, label: str, marked=()):
    """A (layers, heads) score map beside the sorted scores of all heads against the random-init copies' maximum
    and the criterion's threshold (previous-token and induction scores)."""
    fig = figure(figsize=(11, 4))
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
def loss_repeats(title: str, first: np.ndarray, second: np.ndarray, null_drops: list[float]):
    """Per-sequence loss on the first and the second repeat, with the random-init copies' drops."""
    fig, ax = subplots(figsize=(7, 3.6))
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
def permutation_bars(title: str, observed: float, null: np.ndarray, xlabel: str, observed_label: str):
    """The observed effect of an ablation against the effects of random ablations of as many heads."""
    fig, ax = subplots(figsize=(7, 3.6))
    ax.hist(null, bins=min(20, max(5, len(null) // 2)), color="#999", label=f"random heads ({len(null)} draws)")
    ax.axvline(observed, color="r", lw=2, label=observed_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Draws")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
