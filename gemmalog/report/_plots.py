"""Figures as inline SVG that follow the page's light or dark theme (matplotlib, imported lazily).

Neutral ink (text, axes, ticks, grid) is drawn in a sentinel colour that becomes
``currentColor`` in the SVG, so it takes the surrounding CSS ``color``; backgrounds are
transparent; series colours are mid-tones that read on white and on near-black.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: Series colours, one per run; readable on light and dark backgrounds.
PALETTE = (
    "#3b82f6",
    "#f59e0b",
    "#10b981",
    "#ef4444",
    "#a855f7",
    "#ec4899",
    "#14b8a6",
    "#84cc16",
)
_INK = "#010203"
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_FONT_FAMILY = re.compile(r"font-family: [^;\"]*;? ?")
_ID = re.compile(r' id="([^"]+)"')
_REFERENCE = re.compile(r'(?:href="|url\()#([^")]+)')
_STYLE = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 10,
    "text.color": _INK,
    "axes.edgecolor": _INK,
    "axes.labelcolor": _INK,
    "axes.titlesize": 11,
    "xtick.color": _INK,
    "ytick.color": _INK,
    "grid.color": _INK,
    "grid.alpha": 0.15,
    "axes.grid": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.facecolor": "none",
    "figure.facecolor": "none",
    "savefig.facecolor": "none",
    "savefig.edgecolor": "none",
    "legend.frameon": False,
    "legend.fontsize": 8,
}


class PlotUnavailable(ImportError):
    """matplotlib is not installed."""


def require() -> None:
    """Raise :class:`PlotUnavailable` now, before any work, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise PlotUnavailable(
            "the report needs matplotlib: pip install 'gemmalog[report]'"
        ) from exc


def color(index: int) -> str:
    """The colour of the index-th run."""
    return PALETTE[index % len(PALETTE)]


def label(text: str | None, limit: int = 48) -> str:
    """A legend or title text that matplotlib shows as written (no mathtext, not hidden);
    a name missing from the data (a NULL reward function of an old run) reads ``(none)``."""
    text = "(none)" if text is None else str(text)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return ("\u200b" + text if text.startswith("_") else text).replace("$", r"\$")


@dataclass(frozen=True, slots=True)
class Line:
    """A curve; ``band`` is a (low, high) range shaded around it."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: str
    dashed: bool = False
    band: tuple[Sequence[float], Sequence[float]] | None = None


@dataclass(frozen=True, slots=True)
class Panel:
    """One axes of lines."""

    title: str
    ylabel: str
    lines: list[Line] = field(default_factory=list)
    xlabel: str = "step"
    ylim: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class Histogram:
    """One axes of overlaid histograms sharing their bins: (label, values, colour) groups."""

    title: str
    xlabel: str
    groups: list[tuple[str, Sequence[float], str]] = field(default_factory=list)


#: Values beyond this magnitude are left out of a plot (a gap, as NaN and infinities are):
#: matplotlib cannot compute an axis whose range overflows a double (1e308 - -1e308).
DRAWABLE = 1e300


def drawable(values: Sequence[Any]) -> list[float]:
    """``values`` as floats, with those a plot cannot show (None, NaN, infinities, beyond
    ±:data:`DRAWABLE`) as NaN, which matplotlib draws as a gap."""
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError, OverflowError):
            f = math.nan
        out.append(f if -DRAWABLE <= f <= DRAWABLE else math.nan)
    return out


def _draw_lines(ax: Axes, panel: Panel) -> None:
    for line in panel.lines:
        few = len(line.x) <= 40
        ax.plot(
            drawable(line.x),
            drawable(line.y),
            color=line.color,
            linestyle="--" if line.dashed else "-",
            linewidth=1.6,
            marker="o" if few else None,
            markersize=3,
            label=label(line.label),
        )
        if line.band is not None:
            ax.fill_between(
                drawable(line.x),
                drawable(line.band[0]),
                drawable(line.band[1]),
                color=line.color,
                alpha=0.18,
            )
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel)
    if panel.xlabel == "step":
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if panel.ylim is not None:
        ax.set_ylim(*panel.ylim)
    if len(panel.lines) > 1:
        ax.legend(loc="best")


def _draw_histogram(ax: Axes, hist: Histogram) -> None:
    import numpy as np

    groups = [(name, [v for v in drawable(group) if v == v], c) for name, group, c in hist.groups]
    values = [v for _, group, _ in groups for v in group]
    bins = min(30, max(5, len(values)))
    edges: list[float] = np.histogram_bin_edges(np.asarray(values, dtype=float), bins).tolist()
    for name, group, colour in groups:
        ax.hist(group, bins=edges, color=colour, alpha=0.35, histtype="stepfilled")
        ax.hist(group, bins=edges, color=colour, histtype="step", linewidth=1.4, label=label(name))
    ax.set_xlabel(hist.xlabel)
    ax.set_ylabel("completions")
    if len(hist.groups) > 1:
        ax.legend(loc="best")


def figure_svg(
    panels: Sequence[Panel | Histogram], *, key: str, ncols: int = 1, height: float = 3.2
) -> str:
    """Draw the panels in a grid and return an ``<svg>`` element to inline in HTML.

    ``key`` must differ between the figures of one page: it salts the element ids
    matplotlib writes, so that clip paths and markers of two inline SVGs never clash.
    """
    require()
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    style: Any = {**_STYLE, "svg.hashsalt": key}  # the stubs type keys as a Literal of all rc names
    with matplotlib.rc_context(style):
        fig = Figure(figsize=(10.0, height * nrows), layout="constrained")
        FigureCanvasAgg(fig)  # a figure of its own canvas: pyplot and its backend stay untouched
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, panel in zip(axes, panels, strict=False):
            if panel.title:
                ax.set_title(label(panel.title, 64))
            if isinstance(panel, Histogram):
                _draw_histogram(ax, panel)
            else:
                _draw_lines(ax, panel)
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return _clean(buf.getvalue())


def _clean(svg: str) -> str:
    """The bare ``<svg>`` element: no prolog or metadata, fonts and ink from the page's CSS.

    Ids nothing refers to (matplotlib names every group ``figure_1``, ``axes_1`` ...) are
    dropped, so that several figures on one page do not repeat them.
    """
    svg = _METADATA.sub("", svg[svg.index("<svg") :])
    svg = _FONT_FAMILY.sub("", svg).replace(_INK, "currentColor")
    used = set(_REFERENCE.findall(svg))
    return _ID.sub(lambda m: m.group(0) if m.group(1) in used else "", svg)
