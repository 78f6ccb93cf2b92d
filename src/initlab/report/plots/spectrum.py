"""spectrum.png: the Jacobian's spectrum at init against depth (else the grid's first axis that is
not the init), measured with its 95% interval over seeds and free probability's prediction beside
it (x markers), below the loss each cell reached in its budget on the same axis: Pennington et al.
2017's comparison of a net's spectrum with how fast it trains, in one figure.

Each row of panels holds the cells that share the remaining axes, told apart by colour (the init),
one column per quantity; the x axis is categorical, a tick at every grid value. Along depth the cells are joined by
lines; along a categorical axis (phase, activation) they are points, each line's set a little
aside so that none hides another.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatterSciNotation

from initlab.report.isometry import LATE_TEXT, by_cell, late_loss, spectra
from initlab.report.load import Sweep
from initlab.report.plots.layout import (band_handle, depth_axis, draw_band, grid, heading, layout, legend,
                                          panel_legend, save, seed_counts)
from initlab.report.plots.signal import PREDICTED
from initlab.report.stats import Estimate

SHIFT = 0.12  # at categorical x, how far apart the lines' points sit
ROWS = {  # column of the per-job table -> (its prediction's column, panel title, y label, log scale)
    "late_loss": (None, "training loss after the budget", "train loss (late mean)", False),
    "spread": ("predicted_spread", "spread of the squared singular values",
               r"Var$[s^2]\,/\,$E$[s^2]^2$ (0: isometry)", True),
    "sv2_mean": ("predicted_sv2_mean", "mean squared singular value", r"E$[s^2]$", True),
}


@dataclass(frozen=True)
class XAxis:
    key: str
    at: int  # its place in the cell keys
    values: list  # in order, one tick each
    numeric: bool  # numbers (depth): cells joined by lines; else categories

    def cell(self, line: tuple, value) -> tuple:
        """The cell of a line (a cell key with None at this axis) at one of the axis' values."""
        return line[:self.at] + (value,) + line[self.at + 1:]


def x_axis(sweep: Sweep) -> str | None:
    """Depth where the grid varies it, else its first axis other than the init (None: no such axis)."""
    return depth_axis(sweep) or next((a for a in sweep.axes if a != "init"), None)


def spectrum_figure(sweep: Sweep, out: Path) -> Path | None:
    """Drawn for grids that compare inits (an init axis) whose runs measured their Jacobian; None
    elsewhere, or where the grid has no other axis to draw it against."""
    key = x_axis(sweep)
    if "init" not in sweep.axes or key is None:
        return None
    table = spectra(sweep)
    if not table["spread"].notna().any():
        return None
    if not sweep.init_only():
        table["late_loss"] = late_loss(sweep)
    metrics = [name for name in ROWS if name in table]
    at = sweep.axes.index(key)
    cells = [c if isinstance(c, tuple) else (c,) for c, _ in sweep.cells()]
    values = list(dict.fromkeys(c[at] for c in cells))  # categories in the grid's order (ordered, critical, ...)
    numeric = all(map(_number, values))
    x = XAxis(key, at, sorted(values) if numeric else values, numeric)
    lines = list(dict.fromkeys(x.cell(c, None) for c in cells))  # a cell along x: one line
    plan = layout(sweep, lines, [a for a in sweep.axes if a not in (key, "init")])  # colour: the init alone
    fig, axes = grid(len(metrics) * len(plan.panels), (len(plan.panels), len(metrics)), (4.6, 3.0), sharex=True)
    for row, panel in enumerate(plan.panels):
        for column, name in enumerate(metrics):
            measured = by_cell(sweep, table[name], geometric=ROWS[name][3])
            predicted = by_cell(sweep, table[ROWS[name][0]], geometric=True) if ROWS[name][0] else {}
            for number, line in enumerate(panel.cells):
                shift = 0.0 if x.numeric else SHIFT * (number - (len(panel.cells) - 1) / 2)
                _draw(axes[row, column], x, [measured.get(x.cell(line, v)) for v in x.values],
                      [predicted.get(x.cell(line, v)) for v in x.values], plan.style(panel, line), shift)
            _label(axes[row, column], sweep, name, x, panel.title)
        if panel.own_colours:
            panel_legend(axes[row, -1], plan.colour_handles(sweep, panel))
    meaning = [heading("lines"),
               Line2D([], [], color="0.3", marker="o", markersize=4, label="measured (mean over seeds)"),
               band_handle(), Line2D([], [], **PREDICTED, label="free probability (wide limit)")]
    legend(fig, plan.handles(sweep) + meaning)
    fig.suptitle(f"Jacobian spectrum at init (first to last hidden layer) against {sweep.meaning(key).text}; "
                 f"{seed_counts(sweep)}\nspread and mean: geometric means over seeds, 95% t intervals"
                 + ("" if sweep.init_only() else f"\nloss: {LATE_TEXT}"), fontsize=10)
    return save(fig, out / "spectrum.png")


def _draw(ax, x: XAxis, measured: list[Estimate | None], predicted: list[Estimate | None], style: dict,
          shift: float) -> None:
    """A line's measured estimates along x (a band along numbers, error bars at categories) and its
    prediction as markers; cells without a value are left out."""
    found = [(i + shift, e) for i, e in enumerate(measured) if e is not None and e.n]
    if found and x.numeric:
        draw_band(ax, [i for i, _ in found], [e for _, e in found], style | {"markersize": 4})
    elif found:
        means = np.array([e.mean for _, e in found])
        spans = np.array([[e.mean - e.low, e.high - e.mean] if e.has_interval else [0.0, 0.0] for _, e in found]).T
        ax.errorbar([i for i, _ in found], means, yerr=spans, color=style["color"], marker=style["marker"],
                    linestyle="none", markersize=5, capsize=3)
    expected = [(i + shift, e.mean) for i, e in enumerate(predicted) if e is not None and e.n]
    if expected:
        ax.plot(*zip(*expected), **PREDICTED | {"color": style["color"]})


def _label(ax, sweep: Sweep, name: str, x: XAxis, title: str) -> None:
    _, what, ylabel, log = ROWS[name]
    ax.set(xticks=range(len(x.values)), xticklabels=[f"{v:g}" if isinstance(v, float) else str(v) for v in x.values],
           xlim=(-0.5, len(x.values) - 0.5), xlabel=sweep.meaning(x.key).tex, ylabel=ylabel,
           title=what + (f"\n{title}" if title else ""))
    if log:
        ax.set_yscale("log")
        # labels at the decades, and at the minor ticks too where the axis spans too few decades to show one
        ax.yaxis.set_minor_formatter(LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(1, 0.5)))
    ax.title.set_fontsize(9)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not np.isnan(value)
