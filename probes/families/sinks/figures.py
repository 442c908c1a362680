"""The sink claims' figures: attention to the first token per head, and the residual stream's largest
activations per layer.

Each function returns a matplotlib Figure drawn under the suite's style (:func:`probes.figures.styled`);
``probes.figures.save`` writes it.
"""
from __future__ import annotations

import numpy as np
from matplotlib.gridspec import GridSpec

from ...figures import figure, styled, subplots


@styled
def sink_map(title: str, sink: np.ndarray, null_share: float, threshold: float):
    """Mean attention to the first token per (layer, head), and the share of heads above the threshold per layer."""
    fig = figure(figsize=(11, 4))
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
    fig, ax = subplots(figsize=(8, 3.8))
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
