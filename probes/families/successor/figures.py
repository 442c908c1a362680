"""The successor claim's figure: succession scores per head against both nulls, and the best head per task.

Each function returns a matplotlib Figure drawn under the suite's style (:func:`probes.figures.styled`);
``probes.figures.save`` writes it.
"""
from __future__ import annotations

import numpy as np
from matplotlib.gridspec import GridSpec

from ...figures import figure, styled


@styled
def heads(title: str, score: np.ndarray, per_task: dict[str, float], sizes: dict[str, int],
                    best: str, null_random: float, null_shuffled: float, threshold: float):
    """Succession score per (layer, head); the sorted scores against both nulls (random-init copies' best head,
    shuffled orders' best head) and the threshold; the best head's top-1 accuracy per task against chance."""
    fig = figure(figsize=(14, 4))
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
