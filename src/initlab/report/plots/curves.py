"""curves.png: training loss against step, per cell the mean over its completed runs with a 95%
band over seeds, and each diverged run on its own."""

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from initlab.report.load import Sweep
from initlab.report.plots.layout import (MAX_LINES, axis_values, band_handle, draw_band, facet_axis, grid, heading,
                                          layout, legend, panel_legend, save, seed_counts)
from initlab.report.stats import Estimate

PANELS_PER_ROW = 4
MAX_PANELS = 12  # beyond this a figure of curves is a wall no one reads: evenly spread cells are drawn instead
FACET_VALUES = 4  # of the panel axis, when cells are thinned
LOG_SPAN = 100  # a loss spanning more than this factor is drawn on a log scale


def training_curves(sweep: Sweep, out: Path) -> Path:
    facet = facet_axis(sweep)
    every = [c if isinstance(c, tuple) else (c,) for c, _ in sweep.cells()]
    cells = _shown(sweep, every, facet)
    plan = layout(sweep, cells, [facet] if facet else [])
    groups = {c if isinstance(c, tuple) else (c,): g for c, g in sweep.cells()}
    fig, axes = grid(len(plan.panels), plan.shape(PANELS_PER_ROW), (4.5, 3.4), sharey=True)
    spans = []
    for ax, panel in zip(axes.flat, plan.panels):
        for cell in panel.cells:
            spans += _draw_cell(ax, sweep, groups[cell], plan.style(panel, cell))
        ax.set(title=panel.title or "all runs", xlabel="step", ylabel="train loss")
        ax.title.set_fontsize(9)
        if panel.own_colours:
            panel_legend(ax, plan.colour_handles(sweep, panel))
    if spans and min(spans) > 0 and max(spans) / min(spans) > LOG_SPAN:
        for ax in axes.flat:
            ax.set_yscale("log")
    diverged = Line2D([], [], color="0.3", marker="x", markersize=8, mew=2, alpha=0.6, label="diverged run (x: stop)")
    runs = []
    if any((group["status"] == "completed").sum() > 1 for group in groups.values()):
        runs.append(band_handle())
    if (sweep.jobs["status"] == "diverged").any():
        runs.append(diverged)
    legend(fig, plan.handles(sweep) + ([heading("runs"), *runs] if runs else []))
    shown = "" if len(cells) == len(every) else (
        f"\n{len(cells)} of {len(every)} cells shown, at evenly spread values of each axis")
    fig.suptitle(f"Training loss, mean over completed runs; {seed_counts(sweep)}{shown}", fontsize=10)
    return save(fig, out / "curves.png")


def _shown(sweep: Sweep, cells: list[tuple], facet: str | None) -> list[tuple]:
    """Every cell, or where that takes more than MAX_PANELS panels, the cells at evenly spread values
    of each axis, its first and last kept: FACET_VALUES of the panel axis, MAX_LINES of the others."""
    if len(layout(sweep, cells, [facet] if facet else []).panels) <= MAX_PANELS:
        return cells
    kept = {}
    for axis in sweep.axes:
        values = axis_values(sweep, cells, axis)
        count = min(len(values), FACET_VALUES if axis == facet else MAX_LINES)
        kept[axis] = {values[i] for i in np.linspace(0, len(values) - 1, count).round().astype(int)}
    return [c for c in cells if all(v in kept[a] for a, v in zip(sweep.axes, c))]


def _draw_cell(ax, sweep: Sweep, group: pd.DataFrame, style: dict) -> list[float]:
    """A cell's mean curve with its band, and its diverged runs; the loss values drawn."""
    curves = {status: [sweep.metrics[j].set_index("step")["train/loss"].dropna()
                       for j, st in zip(group["job"], group["status"])
                       if st == status and "train/loss" in sweep.metrics[j]]
              for status in ("completed", "diverged")}
    drawn = []
    if curves["completed"]:
        runs = pd.concat(curves["completed"], axis=1)
        estimates = [Estimate.of(row) for row in runs.to_numpy()]
        draw_band(ax, runs.index, estimates, style | {"markevery": max(1, len(estimates) // 6), "markersize": 4},
                  floor=0.0)
        drawn += [np.nanmin([e.mean for e in estimates]), np.nanmax([e.mean for e in estimates])]
    for run in curves["diverged"]:
        ax.plot(run.index, run.values, color=style["color"], linestyle=style["linestyle"], alpha=0.5)
        ax.plot(run.index[-1:], run.values[-1:], "x", color=style["color"], markersize=9, mew=2)
    return drawn
