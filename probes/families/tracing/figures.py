"""The tracing claims' figures: which facts the model knows, and the causal trace (Meng et al.'s picture).

Each function returns a matplotlib Figure drawn under the suite's style (:func:`probes.figures.styled`);
``probes.figures.save`` writes it.
"""
from __future__ import annotations

import numpy as np
from matplotlib.gridspec import GridSpec
from matplotlib.patches import Rectangle

from ...figures import figure, styled, subplots


@styled
def known_facts(title: str, names: list[str], p: np.ndarray, known: np.ndarray, p_random: np.ndarray):
    """Per fact the probability of its attribute (known facts: the attribute is the top-1 token), beside a
    random-init copy's."""
    fig, ax = subplots(figsize=(12, 4))
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
    fig = figure(figsize=(15, 4))
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
