"""The report's figures, drawn from the records with matplotlib (no display needed).

Every figure tells cells apart the same way: one panel per value of the facet axis (depth when
the grid has it), one colour per value of the colour axis (init when the grid has it) and one
line style and marker per combination of the remaining axes, explained by one legend outside
the panels. No two cells in a panel share both.
"""

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import patheffects  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from initlab.report.aggregate import cell_table, layer_profile  # noqa: E402
from initlab.report.load import Sweep  # noqa: E402
from initlab.report.overlay import Overlay, TrainabilityMap  # noqa: E402
from initlab.theory import DEPTH_FACTOR  # noqa: E402

SIGNALS = {
    "act_var": "activation variance Var[y_l]",
    "grad_var": "back-propagated gradient variance Var[dL/dy_l]",
    "grad_norm": "weight-gradient norm |dL/dW_l|",
}
LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 3))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]  # with LINESTYLES: 24 distinct pairs
PANELS_PER_ROW = 4  # training-curve panels side by side before the next row
PREDICTED = {"color": "0.25", "linestyle": (0, (2, 2)), "linewidth": 1.0, "alpha": 0.8}


def facet_axis(sweep: Sweep) -> str | None:
    """The axis that splits figures into panels: depth when the grid has it, else the last axis."""
    if not sweep.axes:
        return None
    return next((a for a in sweep.axes if a.endswith("depth")), sweep.axes[-1])


@dataclass(frozen=True)
class CellStyles:
    """Colour from one axis, line style and marker from the others (the facet axis excluded)."""

    axes: list[str]
    colour_axis: str | None
    style_axes: list[str]
    colours: dict
    lines: dict[tuple, tuple]

    def of(self, cell) -> dict:
        values = dict(zip(self.axes, cell if isinstance(cell, tuple) else (cell,)))
        linestyle, marker = self.lines[_combo(values[a] for a in self.style_axes)]
        return {"color": self.colours.get(values.get(self.colour_axis), "C0"), "linestyle": linestyle,
                "marker": marker}

    def handles(self) -> list[Line2D]:
        """Legend entries: a heading and one entry per colour, then per line style."""
        handles = []
        if self.colour_axis:
            handles.append(_heading(_short(self.colour_axis)))
            handles += [Line2D([], [], color=c, linewidth=3, label=str(v)) for v, c in self.colours.items()]
        if self.style_axes:
            handles.append(_heading(", ".join(map(_short, self.style_axes))))
            handles += [Line2D([], [], color="0.3", linestyle=ls, marker=m, label=", ".join(map(str, combo)))
                        for combo, (ls, m) in self.lines.items()]
        return handles


def cell_styles(sweep: Sweep, facet: str | None) -> CellStyles:
    others = [a for a in sweep.axes if a != facet]
    colour_axis = "init" if "init" in others else next(iter(others), None)
    style_axes = [a for a in others if a != colour_axis]
    colours = {}
    if colour_axis:
        values = _ordered(sweep.jobs[colour_axis])
        colours = dict(zip(values, _palette(values)))
    combos = list(dict.fromkeys(map(_combo, sweep.jobs[style_axes].itertuples(index=False)))) if style_axes else [()]
    lines = {combo: (LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)]) for i, combo in enumerate(combos)}
    return CellStyles(list(sweep.axes), colour_axis, style_axes, colours, lines)


def _combo(values) -> tuple:
    """Axis values as a dict key: a job without the axis (NaN, which equals nothing) becomes None."""
    return tuple(None if pd.isna(v) else v for v in values)


def _ordered(column: pd.Series) -> list:
    values = list(dict.fromkeys(column.dropna()))
    return sorted(values) if all(isinstance(v, (int, float)) for v in values) else values


def _palette(values: list) -> list:
    """An ordered colour map for numbers (their order is the point), distinct hues for names."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and len(values) > 2:
        return [plt.cm.viridis(x) for x in np.linspace(0.0, 0.9, len(values))]
    name = "tab10" if len(values) <= 10 else "tab20"
    return [plt.get_cmap(name)(i) for i in range(len(values))] if len(values) <= 20 else \
        [plt.cm.turbo(x) for x in np.linspace(0.05, 0.95, len(values))]


def _heading(text: str) -> Line2D:
    """A legend entry with no line: a heading, set in bold by _legend."""
    return Line2D([], [], linestyle="none", label=text)


def _short(axis: str) -> str:
    return axis.split(".")[-1]


def _facets(sweep: Sweep, facet: str | None) -> list:
    return _ordered(sweep.jobs[facet]) if facet else [None]


def _in_panel(sweep: Sweep, cell, facet: str | None, value) -> bool:
    return facet is None or _cell_value(sweep, cell, facet) == value


def training_curves(sweep: Sweep, out: Path) -> Path | None:
    """Loss against step, one panel per facet value: per cell the mean over its completed runs,
    and each diverged run on its own (thin, x where it stopped)."""
    facet = facet_axis(sweep)
    styles, facets = cell_styles(sweep, facet), _facets(sweep, facet)
    columns = min(len(facets), PANELS_PER_ROW)
    rows = -(-len(facets) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.6 * rows), squeeze=False, sharey=True,
                             layout="constrained")
    for ax in axes.flat[len(facets):]:
        ax.set_visible(False)
    spans = []
    for ax, value in zip(axes.flat, facets):
        for cell, group in sweep.cells():
            if not _in_panel(sweep, cell, facet, value):
                continue
            style = styles.of(cell)
            curves = {status: [sweep.metrics[j].set_index("step")["train/loss"].dropna()
                               for j, st in zip(group["job"], group["status"])
                               if st == status and "train/loss" in sweep.metrics[j]]
                      for status in ("completed", "diverged")}
            if curves["completed"]:
                mean = pd.concat(curves["completed"], axis=1).mean(axis=1)
                spans += [mean.min(), mean.max()]
                ax.plot(mean.index, mean.values, markevery=max(1, len(mean) // 6), markersize=4, **style)
            for run in curves["diverged"]:
                ax.plot(run.index, run.values, color=style["color"], linestyle=style["linestyle"], alpha=0.5)
                ax.plot(run.index[-1:], run.values[-1:], "x", color=style["color"], markersize=9, mew=2)
        ax.set(title=f"{_short(facet)} = {value}" if facet else "training loss", xlabel="step")
    for row in axes:
        row[0].set_ylabel("train loss")
    if spans and min(spans) > 0 and max(spans) / min(spans) > 100:
        for ax in axes.flat:
            ax.set_yscale("log")
    diverged = Line2D([], [], color="0.3", marker="x", markersize=8, mew=2, alpha=0.6, label="diverged run (x: stop)")
    any_diverged = (sweep.jobs["status"] == "diverged").any()
    _legend(fig, styles.handles() + ([_heading("runs"), diverged] if any_diverged else []))
    fig.suptitle("Training loss (mean over seeds of the completed runs)")
    return _save(fig, out / "curves.png")


def signal_propagation(sweep: Sweep, out: Path, overlay: Overlay) -> Path | None:
    """At init (step 0), each statistic (columns) against layer index per facet value (rows),
    log scale; under each cell's measured act_var and grad_var, the mean-field prediction."""
    profiles = {key: layer_profile(sweep, key) for key in SIGNALS}
    profiles = {k: v for k, v in profiles.items() if v}
    if not profiles:
        return None
    predicted = {"act_var": overlay.act_var, "grad_var": overlay.grad_var}
    facet = facet_axis(sweep)
    styles, facets = cell_styles(sweep, facet), _facets(sweep, facet)
    fig, axes = plt.subplots(len(facets), len(profiles), figsize=(5 * len(profiles), 3 * len(facets)),
                             squeeze=False, layout="constrained")
    for row, value in zip(axes, facets):
        for ax, (key, by_cell) in zip(row, profiles.items()):
            for cell, measured in by_cell.items():
                if not _in_panel(sweep, cell, facet, value):
                    continue
                layers = np.arange(1, len(measured) + 1)
                if cell in predicted.get(key, {}):
                    ax.plot(layers, predicted[key][cell], **(PREDICTED | {"color": styles.of(cell)["color"]}))
                ax.plot(layers, measured, markersize=3, linewidth=1.2, **styles.of(cell))
            ax.set(yscale="log", title=SIGNALS[key] + (f", {_short(facet)} = {value}" if facet else ""))
            ax.title.set_fontsize(9)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[-1]:
        ax.set_xlabel("layer l (1 = first weight layer)")
    meaning = [_heading("lines"), Line2D([], [], color="0.3", marker="o", markersize=3, label="measured"),
               Line2D([], [], **PREDICTED, label="mean-field prediction")]
    _legend(fig, styles.handles() + meaning)
    fig.suptitle("Signal propagation at initialisation (step 0, geometric mean over seeds)\n"
                 "predictions start from the measured Var[y_1] and the output layer's Var[dL/dy]")
    return _save(fig, out / "signal.png")


def heatmap(sweep: Sweep, out: Path) -> Path | None:
    """Final test accuracy (else train loss) over the facet axis x the other axes' combinations;
    a cell with no completed run says what its runs did instead."""
    facet = facet_axis(sweep)
    table = cell_table(sweep)
    metric = "test/acc" if table["test/acc"].notna().any() else "train/loss"
    if facet is None:
        return None
    rows = [a for a in sweep.axes if a != facet]
    table["row"] = table[rows].astype(object).fillna("–").astype(str).agg(", ".join, axis=1) if rows else "all"
    table["note"] = [_outcome(r) for _, r in table.iterrows()]
    grid = table.pivot_table(index="row", columns=facet, values=metric, sort=False, dropna=False)
    notes = table.pivot(index="row", columns=facet, values="note").reindex(index=grid.index, columns=grid.columns)
    fig, ax = plt.subplots(figsize=(1.1 * grid.shape[1] + 4, 0.4 * grid.shape[0] + 1.8), layout="constrained")
    image = ax.imshow(grid.values, cmap="viridis", aspect="auto")
    ax.set_facecolor("0.85")  # cells without a number
    ax.set(xticks=range(grid.shape[1]), xticklabels=grid.columns, yticks=range(grid.shape[0]),
           yticklabels=grid.index, xlabel=facet, ylabel=", ".join(rows) or None,
           title=f"final {metric} (mean over seeds)")
    for (i, j), value in np.ndenumerate(grid.values):
        text = notes.iat[i, j] if np.isnan(value) else f"{value:.3f}"
        colour = "k" if np.isnan(value) else text_colour(image.cmap(image.norm(value)))
        ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=8)
    fig.colorbar(image, ax=ax, label=metric)
    return _save(fig, out / "heatmap.png")


def text_colour(background) -> str:
    """Black or white, whichever contrasts more with the background: black above relative
    luminance 0.179, where the two contrast ratios (WCAG 2) are equal."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(background)]
    return "k" if np.dot([0.2126, 0.7152, 0.0722], linear) > 0.179 else "w"


def trainability_map(tmap: TrainabilityMap, k_fit: float | None, out: Path) -> Path:
    """Accuracy over (sigma_w^2, depth), with xi_c, 6 xi_c, the fitted k xi_c and the critical
    sigma_w^2: where the theory says depth stops being trainable."""
    grid = tmap.cells.pivot(index="depth", columns="sigma_w2", values="acc")
    x, y = grid.columns.to_numpy(float), grid.index.to_numpy(float)
    fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
    mesh = ax.pcolormesh(_edges(x), _edges(y), grid.to_numpy(), cmap="viridis", vmin=tmap.chance, shading="flat")
    for (i, j), value in np.ndenumerate(grid.to_numpy()):
        if not np.isnan(value):
            ax.text(x[j], y[i], f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color=text_colour(mesh.cmap(mesh.norm(value))))
    fine = _curve_points(x, tmap.critical)
    xi_c = tmap.xi_c_curve(fine)
    outline = [patheffects.withStroke(linewidth=3.5, foreground="k")]  # white lines readable on any cell
    curves = [(1.0, "xi_c", dict(color="w", linewidth=1, path_effects=outline)),
              (DEPTH_FACTOR, f"{DEPTH_FACTOR:g} xi_c (the paper)",
               dict(color="w", linestyle="--", linewidth=2, path_effects=outline))]
    if k_fit is not None:
        curves.append((k_fit, f"{k_fit:.3g} xi_c (fitted)", dict(color="tab:red", linewidth=2)))
    for k, label, style in curves:
        ax.plot(fine, k * xi_c, label=label, **style)
    if tmap.critical is not None:
        ax.axvline(tmap.critical, color="m", linestyle="-.", linewidth=1.5,
                   label=f"critical sigma_w^2 = {tmap.critical:.3f} (chi_1 = 1)")
    ax.set(ylim=(_edges(y)[0], _edges(y)[-1]), xlim=(_edges(x)[0], _edges(x)[-1]), xlabel="sigma_w^2", xticks=x,
           ylabel="depth L (weight layers)",
           title=f"{tmap.activation} MLP, sigma_b^2 = {tmap.sigma_b2:g}: final test accuracy; "
                 f"trained = above {tmap.threshold:.2f}")
    fig.colorbar(mesh, ax=ax, label="test accuracy (diverged runs: chance)", pad=0.02)
    ax.tick_params(axis="x", labelrotation=90)
    _legend(fig, ax.get_legend_handles_labels()[0])
    return _save(fig, out / "trainability.png")


def _curve_points(x: np.ndarray, critical: float | None) -> np.ndarray:
    """sigma_w^2 values for the xi_c curves: evenly spread, and crowded towards the critical
    point, where xi_c rises steeply (each point costs a mean-field solve, so not a fine grid)."""
    even = np.linspace(x.min(), x.max(), 17)
    if critical is None:
        return even
    near = critical * np.outer([-1, 1], np.logspace(-3, -0.7, 6)).ravel() + critical
    return np.unique(np.concatenate([even, near[(near >= x.min()) & (near <= x.max())]]))


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges halfway between grid values, so each cell is centred on its value."""
    middles = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - middles[0]], middles, [2 * centres[-1] - middles[-1]]])


def _outcome(cell: pd.Series) -> str:
    """What a cell's runs did, for a cell without a final number."""
    return ", ".join(f"{cell[s]} {s}" for s in ("diverged", "failed") if cell.get(s)) or "no data"


def _cell_value(sweep: Sweep, cell, axis: str):
    cell = cell if isinstance(cell, tuple) else (cell,)
    return dict(zip(sweep.axes, cell)).get(axis)


def _legend(fig, handles: list[Line2D]) -> None:
    """One legend for all panels, outside them on the right."""
    legend = fig.legend(handles=handles, loc="outside right upper", frameon=False, fontsize=8)
    for text, handle in zip(legend.get_texts(), handles):
        if handle.get_linestyle() == "None" and handle.get_marker() in ("None", None, ""):
            text.set_fontweight("bold")


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
