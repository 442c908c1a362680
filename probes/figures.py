"""The figure helpers every family's figures use (probes/families/<family>/figures.py: one function per claim
figure, each returning a matplotlib Figure, never shown); ``save`` writes a PNG.

Figures are drawn as ``matplotlib.figure.Figure`` objects, never through pyplot, and under the suite's style in a
``matplotlib.rc_context`` (:data:`STYLE`): importing this module or drawing a claim's figure leaves the user's
matplotlib backend, pyplot's open figures and the global ``rcParams`` as they were.
"""
from __future__ import annotations

import functools
from typing import Any, cast
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

STYLE = {"axes.spines.right": False, "axes.spines.top": False, "axes.titleweight": "bold",
         "axes.labelweight": "bold", "savefig.dpi": 110}


def styled(fn):
    """Run a figure function under :data:`STYLE` (the style applies to what it draws, nowhere else)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(cast(Any, STYLE)):  # matplotlib's stubs type rc keys as literals
            return fn(*args, **kwargs)
    return wrapper


def figure(**kw) -> Figure:
    """A new Figure (no pyplot)."""
    return Figure(**kw)


def subplots(*args, figsize=None, gridspec_kw=None, **kw):
    """``pyplot.subplots`` without pyplot: (Figure, axes)."""
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
        with matplotlib.rc_context(cast(Any, STYLE)):  # matplotlib's stubs type rc keys as literals
            fig.savefig(path, bbox_inches="tight")
    return path


def boxed(ax):
    """Draw all four spines of ``ax`` (heatmaps), which :data:`STYLE` leaves open."""
    ax.spines.top.set_visible(True)
    ax.spines.right.set_visible(True)


def line_hist(ax, x, label, density=False, **kw):
    """A histogram of ``x`` drawn as a line (Freedman-Diaconis bins), to overlay several."""
    y, edges = np.histogram(x, bins="fd", density=density)
    ax.plot(edges[:-1], y, label=label, **kw)


def token_axis(ax, labels: list[str], rotation: int = 45):
    """Tokens as the x tick labels, written as Python would (``repr`` without the quotes: spaces and newlines show)."""
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([repr(t)[1:-1] for t in labels], rotation=rotation, fontsize=7)
