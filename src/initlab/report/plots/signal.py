"""The figures of the network at init (step 0): signal.png, each statistic against layer index with
its 95% band over seeds and the mean-field prediction; activations.png, the distribution of
activation values per layer before and after the nonlinearity (Glorot & Bengio's Figs. 6-7).

Both draw the deepest networks of the grid only: at init, a shallower net of the same settings is,
statistically, the first layers of a deeper one, so its lines would repeat theirs.
"""

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from initlab.report.aggregate import Profile, layer_profile
from initlab.report.load import Sweep
from initlab.report.overlay import Overlay
from initlab.report.plots.layout import (band_handle, depth_axis, draw_band, grid, heading, layout, legend,
                                          panel_legend, save, seed_counts, wrapped)

SIGNALS = {  # statistic -> (what it is, its axis label)
    "act_var": ("activation variance (before phi)", r"Var$[y_l]$"),
    "grad_var": ("back-propagated gradient variance", r"Var$[\partial L / \partial y_l]$"),
    "grad_norm": ("weight-gradient norm", r"$\|\partial L / \partial W_l\|$"),
}
POST = ("post_mean", "post_std", "post_p02", "post_p98")  # per hidden layer, of phi(y): the probe's keys
PREDICTED = {"color": "0.25", "linestyle": "none", "marker": "x", "markersize": 5, "alpha": 0.9}  # no line: lines are cells
PANELS_PER_ROW = 3
MARKED = 12  # layers with a marker, at most, on a line (a 100-layer line of markers is a smear)


def deepest(sweep: Sweep, cells) -> list[tuple]:
    """The cells at the grid's greatest depth (all of them where depth is not an axis)."""
    depth, cells = depth_axis(sweep), list(dict.fromkeys(cells))
    if depth is None:
        return cells
    at = sweep.axes.index(depth)
    return [c for c in cells if c[at] == max(c[at] for c in cells)]


def signal_propagation(sweep: Sweep, out: Path, overlay: Overlay) -> Path | None:
    profiles = {key: found for key in SIGNALS if (found := layer_profile(sweep, key))}
    if not profiles:
        return None
    predicted = {"act_var": overlay.act_var, "grad_var": overlay.grad_var}
    cells = deepest(sweep, [c for found in profiles.values() for c in found])
    plan = layout(sweep, cells, [])
    fig, axes = grid(len(plan.panels) * len(profiles), (len(plan.panels), len(profiles)), (5, 3.2))
    for row, panel in zip(axes, plan.panels):
        for ax, (key, by_cell) in zip(row, profiles.items()):
            for cell in (c for c in panel.cells if c in by_cell):
                _draw_profile(ax, by_cell[cell], predicted.get(key, {}).get(cell), plan.style(panel, cell))
            what, label = SIGNALS[key]
            ax.set(yscale="log", title=what + (f"\n{panel.title}" if panel.title else ""), xlabel="layer l",
                   ylabel=label)
            ax.title.set_fontsize(9)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if panel.own_colours:
            panel_legend(row[-1], plan.colour_handles(sweep, panel))
    bands = any(p.runs.shape[0] > 1 for found in profiles.values() for c, p in found.items() if c in cells)
    meaning = [heading("lines"), Line2D([], [], color="0.3", marker="o", markersize=3, label="measured (geometric mean)"),
               *([band_handle()] if bands else []), Line2D([], [], **PREDICTED, label="mean-field prediction")]
    legend(fig, plan.handles(sweep) + meaning)
    anchor = ("the last conv layer's Var[dL/dy] (the pooled head is not predicted)" if sweep.shared.get("model.name")
              == "cnn" else "the output layer's Var[dL/dy]")
    fig.suptitle(f"At initialisation (step 0){_depth_note(sweep, cells)}; {seed_counts(sweep)}\n"
                 f"predictions start from the measured Var[y_1] and {anchor}", fontsize=10)
    return save(fig, out / "signal.png")


def _draw_profile(ax, measured: Profile, predicted: Profile | None, style: dict) -> None:
    """A cell's statistic along its layers with its band, and its prediction where there is one."""
    layers = _layers(measured)
    every = max(1, len(layers) // MARKED)
    style = style | {"markersize": 3, "linewidth": 1.2, "markevery": every}
    if predicted is not None:
        ax.plot(layers, predicted.centre(), **PREDICTED | {"color": style["color"], "markevery": every})
    draw_band(ax, layers, measured.layers(), style)


def _layers(profile: Profile) -> np.ndarray:
    return np.arange(1, profile.runs.shape[1] + 1)


def _depth_note(sweep: Sweep, cells: list[tuple]) -> str:
    depth = depth_axis(sweep)
    return "" if depth is None else f", depth {cells[0][sweep.axes.index(depth)]} (the deepest)"


def activation_values(sweep: Sweep, out: Path) -> Path | None:
    """Per cell, per hidden layer: the pre-activation y as mean ± std, and phi(y) as mean ± std and
    2nd-98th percentile, averaged over seeds; where the runs recorded phi(y)'s statistics (POST)."""
    post = {key: layer_profile(sweep, key, hidden=True) for key in POST}
    pre = {key: layer_profile(sweep, key) for key in ("act_mean", "act_var")}
    cells = [c for c in post["post_std"] if all(c in found for found in (*post.values(), *pre.values()))]
    if not cells:
        return None
    cells = deepest(sweep, cells)
    fig, axes = grid(len(cells), wrapped(len(cells), PANELS_PER_ROW), (4.2, 3.2), sharey=True)
    for ax, cell in zip(axes.flat, cells):
        mean, std, p02, p98 = (post[key][cell].centre(geometric=False) for key in POST)
        shown = _shown_layers(len(mean))
        layers, offset = shown + 1, 0.15 * max(1, shown[1] - shown[0] if len(shown) > 1 else 1)
        before = pre["act_mean"][cell].centre(geometric=False)[shown], np.sqrt(pre["act_var"][cell].centre()[shown])
        ax.errorbar(layers - offset, before[0], yerr=before[1], fmt="o", color="0.55", markersize=3, capsize=2)
        ax.vlines(layers + offset, p02[shown], p98[shown], color="C0", linewidth=1)
        ax.errorbar(layers + offset, mean[shown], yerr=std[shown], fmt="s", color="C0", markersize=4, capsize=3,
                    linewidth=2.5)
        ax.set(title=textwrap.fill(f"{sweep.cell_label(cell)} (n = {post['post_std'][cell].runs.shape[0]})", 56),
               xticks=layers if len(layers) <= MARKED else [], xlabel="hidden layer l", ylabel="activation value")
        if len(layers) > MARKED:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.title.set_fontsize(9)
    legend(fig, [Line2D([], [], color="0.55", marker="o", markersize=3, label="y (before phi): mean ± std"),
                 Line2D([], [], color="C0", marker="s", linewidth=2.5, label="phi(y): mean ± std"),
                 Line2D([], [], color="C0", linewidth=1, label="phi(y): 2nd-98th percentile")])
    every = "" if len(_shown_layers(len(mean))) == len(mean) else f"; every {_shown_layers(len(mean))[1]}th layer"
    fig.suptitle(f"Activation values per layer at initialisation,\naveraged over each cell's n seeds{every}", fontsize=10)
    return save(fig, out / "activations.png")


def _shown_layers(count: int) -> np.ndarray:
    """Indices of the hidden layers drawn: all of a shallow net's, else evenly spaced, at most
    2 MARKED of them, the first among them (a 200-layer row of error bars is a smear)."""
    step = max(1, int(np.ceil(count / (2 * MARKED))))
    return np.arange(0, count, step)
