"""The benchmarks' charts, drawn with matplotlib and written as SVG documents.

- :func:`completion_chart_svg`: per panel, completion curves (left) and rates (right),
  panels one above the other; publish_throughput and schedule_lateness draw theirs so.
- :func:`parts_chart_svg`: one horizontal bar per part (delivery_cost, generation).
- :func:`latency_chart_svg`: latency percentiles against arrival rate (api_latency).

Every chart carries a title and a subtitle naming the run and the machine it ran on.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import Patch

# No display: the benchmarks run headless (the charts are built without pyplot, and a
# pyplot imported later by anyone stays off the screen too).
matplotlib.use("Agg")

PANEL_SIZE = (9.6, 4.4)  # inches, one panel
SUBTITLE_WIDTH = 150  # characters per subtitle line
GRID = "#eeeeee"
NOTE = "#555555"

# Text stays text (searchable, and the tests read it); a fixed salt and no date keep the
# same chart byte for byte the same document.
matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "herald-bench", "font.size": 9})


@dataclass
class Curve:
    label: str
    times: Sequence[float]  # seconds from the start, one per completion
    color: str


@dataclass
class Bar:
    label: str
    value: float
    color: str
    note: str = ""


@dataclass
class Panel:
    """Completions over time (left) and rates (right), under one title."""

    title: str
    subtitle: str
    curves: Sequence[Curve]
    bars: Sequence[Bar]
    unit: str  # what completes: "deliveries", "tasks / deliveries"
    x_label: str = "seconds from the first send"
    bars_label: str = ""  # the bars' axis; "<unit> per second" when empty


def fmt(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def to_svg(figure: Figure) -> str:
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


def _heading(target: Figure | SubFigure, title: str, subtitle: str, top: float) -> None:
    target.text(0.02, top, title, fontsize=13, fontweight="bold", va="top")
    wrapped = textwrap.fill(subtitle, SUBTITLE_WIDTH)
    target.text(0.02, top - 0.07, wrapped, color=NOTE, va="top")


def _curves(ax: Axes, panel: Panel) -> None:
    for curve in panel.curves:
        times = sorted(curve.times)
        # A step up at each completion, from (0, 0) to (last, n).
        ax.step([0.0, *times], range(len(times) + 1), where="post", color=curve.color, lw=2)
        ax.plot([], [], color=curve.color, lw=3, label=curve.label)  # the legend's swatch
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(panel.x_label)
    ax.set_ylabel(f"{panel.unit} completed")
    ax.grid(color=GRID)
    if panel.curves:
        ax.legend(loc="lower right", frameon=False)  # where completion curves never go


def _bars(ax: Axes, panel: Panel) -> None:
    positions = range(len(panel.bars))
    drawn = ax.bar(
        positions,
        [bar.value for bar in panel.bars],
        width=0.7,
        color=[bar.color for bar in panel.bars],
    )
    ax.bar_label(drawn, labels=[fmt(bar.value) for bar in panel.bars], fontweight="bold")
    ax.set_xticks(
        list(positions),
        [f"{bar.label}\n{bar.note}" if bar.note else bar.label for bar in panel.bars],
    )
    ax.margins(y=0.1)  # room for the value above the tallest bar
    ax.set_ylabel(panel.bars_label or f"{panel.unit} per second")
    ax.grid(axis="y", color=GRID)
    ax.set_axisbelow(True)


def completion_chart_svg(*panels: Panel) -> str:
    """Each panel's completion curves and rate bars, panels one above the other."""
    width, height = PANEL_SIZE
    figure = Figure(figsize=(width, height * len(panels)))
    rows = figure.subfigures(len(panels), 1, squeeze=False)[:, 0]
    for row, panel in zip(rows, panels, strict=True):
        _heading(row, panel.title, panel.subtitle, top=0.97)
        curves, bars = row.subplots(
            1,
            2,
            gridspec_kw={
                "width_ratios": [540, 220],
                "left": 0.08,
                "right": 0.98,
                "top": 0.78,
                "bottom": 0.16,
                "wspace": 0.3,
            },
        )
        _curves(curves, panel)
        _bars(bars, panel)
    return to_svg(figure)


@dataclass
class PartBar:
    label: str
    value: float  # CPU ms
    color: str


def parts_chart_svg(
    title: str,
    subtitle: str,
    parts: Sequence[PartBar],
    legend: Sequence[tuple[str, str]],
    *,
    x_label: str = "CPU ms per delivery",
    value_format: str = "{:.3f} ms",
) -> str:
    """One horizontal bar per part, top to bottom in the given order, its value beside it
    (``value_format``); ``legend`` names each colour: (label, colour)."""
    top, bottom = 0.75, 0.85  # inches: the heading; the axis label and the legend
    height = top + bottom + 0.3 * len(parts)
    figure = Figure(figsize=(PANEL_SIZE[0], height))
    _heading(figure, title, subtitle, top=1 - 0.1 / height)
    ax = figure.add_axes((0.34, bottom / height, 0.56, 1 - (top + bottom) / height))
    positions = range(len(parts))
    drawn = ax.barh(positions, [part.value for part in parts], color=[part.color for part in parts])
    ax.bar_label(drawn, labels=[value_format.format(part.value) for part in parts], padding=4)
    ax.set_yticks(list(positions), [part.label for part in parts])
    ax.invert_yaxis()  # the first part on top
    ax.margins(x=0.12)  # room for the value after the longest bar
    ax.set_xlabel(x_label)
    ax.grid(axis="x", color=GRID)
    ax.set_axisbelow(True)
    swatches = [Patch(color=color, label=label) for label, color in legend]
    figure.legend(handles=swatches, loc="lower left", ncols=len(legend), frameon=False)
    return to_svg(figure)


@dataclass
class LatencySeries:
    """One endpoint's latency percentiles (ms) at each arrival rate."""

    label: str
    rates: Sequence[float]
    percentiles: dict[str, Sequence[float]]  # "p50", "p99", "max" → one value per rate
    color: str


_PERCENTILE_STYLES = {"p50": (":", "o"), "p99": ("-", "s"), "max": ("--", "^")}


def latency_chart_svg(
    title: str, subtitle: str, series: Sequence[LatencySeries], *, target_ms: float | None = None
) -> str:
    """Latency percentiles against arrival rate, one colour per endpoint, one line style per
    percentile (log scale: a queue's tail is orders of magnitude above its median)."""
    width, height = PANEL_SIZE
    figure = Figure(figsize=(width, height))
    _heading(figure, title, subtitle, top=0.97)
    ax = figure.add_axes((0.08, 0.12, 0.62, 0.68))
    for one in series:
        for name, values in one.percentiles.items():
            line, marker = _PERCENTILE_STYLES.get(name, ("-", "."))
            ax.plot(one.rates, values, line, marker=marker, color=one.color, lw=1.8)
            for rate, value in zip(one.rates, values, strict=True):
                if name == "p99":
                    ax.annotate(
                        fmt(value), (rate, value), textcoords="offset points", xytext=(4, 4),
                        fontsize=8, color=one.color,
                    )  # fmt: skip
    if target_ms is not None:
        ax.axhline(target_ms, color=NOTE, lw=1, ls="-.")
    ax.set_yscale("log")
    rates = sorted({rate for one in series for rate in one.rates})
    ax.set_xticks(rates, [fmt(rate) for rate in rates])
    ax.set_xlabel("requests per second (fixed arrival rate)")
    ax.set_ylabel("latency from due time (ms)")
    ax.grid(True, color=GRID, which="both")
    # Both kinds go in one legend: patches for the series, lines for the percentiles.
    handles: list[Artist] = [Patch(color=one.color, label=one.label) for one in series]
    for name, (line, marker) in _PERCENTILE_STYLES.items():
        (handle,) = ax.plot([], [], line, marker=marker, color=NOTE, label=name)
        handles.append(handle)
    if target_ms is not None:
        (handle,) = ax.plot([], [], "-.", color=NOTE, label=f"target p99 {fmt(target_ms)} ms")
        handles.append(handle)
    figure.legend(handles=handles, loc="center left", bbox_to_anchor=(0.73, 0.45), frameon=False)
    return to_svg(figure)
