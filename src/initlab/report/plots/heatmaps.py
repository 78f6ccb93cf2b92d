"""heatmap.png and trainability.png: a final metric over a grid of equal cells, one per grid value
with a tick at each, the colour scale fixed by the metric (accuracy from chance to 1, loss from 0
to chance), not stretched to the data; each cell prints its mean over seeds and the half-width of
its 95% interval, or n where there is no interval."""

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patheffects

from initlab.report.aggregate import cell_table, estimate
from initlab.report.load import Sweep, num_classes
from initlab.report.plots.layout import facet_axis, legend, save, seed_counts, text_colour
from initlab.report.stats import INTERVAL, Estimate
from initlab.report.trainability import KFit, TrainabilityMap
from initlab.theory import DEPTH_FACTOR

METRICS = {"test/acc": "final test accuracy", "train/loss": "final train loss"}
OUTLINE = [patheffects.withStroke(linewidth=3.5, foreground="k")]  # white lines readable on any cell


def cell_text(value: Estimate) -> str:
    """'0.74\\n±0.02' or '0.74\\nn=1'."""
    spread = f"±{(value.high - value.low) / 2:.2f}" if value.has_interval else f"n={value.n}"
    return f"{value.mean:.2f}\n{spread}"


def draw_cells(ax, means: np.ndarray, texts: list[list[str]], scale: tuple[float, float], origin: str = "upper"):
    """An image of equal cells (the first row at the `origin`), each with its text in black or white."""
    image = ax.imshow(means, cmap="viridis", vmin=scale[0], vmax=scale[1], aspect="auto", origin=origin)
    ax.set_facecolor("0.85")  # cells without a number
    for (i, j), value in np.ndenumerate(means):
        colour = "k" if np.isnan(value) else text_colour(image.cmap(image.norm(value)))
        ax.text(j, i, texts[i][j], ha="center", va="center", color=colour, fontsize=7, linespacing=1.1)
    return image


def heatmap(sweep: Sweep, out: Path) -> Path | None:
    """The final test accuracy (else train loss) over the facet axis x the other axes' combinations;
    a cell with no completed run says what its runs did instead."""
    facet = facet_axis(sweep)
    if facet is None:
        return None
    table = cell_table(sweep)
    metric = "test/acc" if table["test/acc"].notna().any() else "train/loss"
    others = [a for a in sweep.axes if a != facet]
    records = {(_row(r, others), r[facet]): r for r in table.to_dict("records")}
    rows, columns = list(dict.fromkeys(k[0] for k in records)), sorted(dict.fromkeys(k[1] for k in records), key=_order)
    found = [[records.get((row, column)) for column in columns] for row in rows]
    means = np.array([[np.nan if r is None else r[metric] for r in line] for line in found], dtype=float)
    texts = [[_text(r, metric) for r in line] for line in found]
    fig, ax = plt.subplots(figsize=(1.0 * len(columns) + 4, 0.55 * len(rows) + 1.8), layout="constrained")
    image = draw_cells(ax, means, texts, _scale(sweep, metric))
    ax.set(xticks=range(len(columns)), xticklabels=columns, yticks=range(len(rows)), yticklabels=rows,
           xlabel=sweep.meaning(facet).tex, ylabel=", ".join(sweep.meaning(a).tex for a in others) or None,
           title=f"{METRICS[metric]}: mean ± half its {INTERVAL} ({seed_counts(sweep)})")
    ax.title.set_fontsize(9)
    fig.colorbar(image, ax=ax, label=METRICS[metric])
    return save(fig, out / "heatmap.png")


def _row(record: dict, axes: list[str]) -> str:
    return ", ".join("–" if record[a] is None or record[a] != record[a] else str(record[a]) for a in axes) or "all"


def _order(value):
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _text(record: dict | None, metric: str) -> str:
    if record is None:
        return "no runs"
    if record[f"{metric} n"]:
        return cell_text(estimate(record, metric))
    return ", ".join(f"{record[s]} {s}" for s in ("diverged", "failed") if record.get(s)) or "no data"


def _scale(sweep: Sweep, metric: str) -> tuple[float, float]:
    """Accuracy from chance to 1; loss from 0 to chance's, ln(classes)."""
    config = next((c for c in sweep.configs.values() if c), None)
    classes = num_classes(config) if config else 10
    return (1 / classes, 1.0) if metric == "test/acc" else (0.0, math.log(classes))


def trainability_map(tmap: TrainabilityMap, fit: KFit | None, out: Path) -> Path:
    """Accuracy over (sigma_w^2, depth), both axes categorical, with xi_c, 6 xi_c, the fitted k xi_c
    (its bootstrap interval as a band) and the critical sigma_w^2, placed between the grid values
    they fall between."""
    sigmas, depths = sorted(tmap.cells["sigma_w2"].unique()), sorted(tmap.cells["depth"].unique())
    acc = tmap.estimates("acc")
    means = np.array([[acc[s, d].mean if (s, d) in acc else np.nan for s in sigmas] for d in depths])
    texts = [[cell_text(acc[s, d]) if (s, d) in acc else "no runs" for s in sigmas] for d in depths]
    fig, ax = plt.subplots(figsize=(0.8 * len(sigmas) + 3, 0.6 * len(depths) + 1.6), layout="constrained")
    image = draw_cells(ax, means, texts, (tmap.chance, 1.0), origin="lower")  # depth grows upwards
    fine = _curve_points(np.array(sigmas), tmap.critical)
    x, xi_c = _position(fine, sigmas), tmap.xi_c_curve(fine)
    curves = [(1.0, "xi_c", dict(color="w", linewidth=1, path_effects=OUTLINE)),
              (DEPTH_FACTOR, f"{DEPTH_FACTOR:g} xi_c (the paper)",
               dict(color="w", linestyle="--", linewidth=2, path_effects=OUTLINE))]
    if fit is not None:
        curves.append((fit.k.mean, f"k xi_c, k = {fit.k.text(n=False)} fitted on seeds {list(fit.fit_seeds)}",
                       dict(color="tab:red", linewidth=2)))
        if fit.k.has_interval:
            ax.fill_between(x, _position(fit.k.low * xi_c, depths), _position(fit.k.high * xi_c, depths),
                            color="tab:red", alpha=0.25, linewidth=0, label="k: 95% bootstrap interval")
    for k, label, style in curves:
        ax.plot(x, _position(k * xi_c, depths), label=label, **style)
    if tmap.critical is not None:
        ax.axvline(_position(np.array([tmap.critical]), sigmas)[0], color="m", linestyle="-.", linewidth=1.5,
                   label=f"critical sigma_w^2 = {tmap.critical:.3f} (chi_1 = 1)")
    ax.set(xlim=(-0.5, len(sigmas) - 0.5), ylim=(-0.5, len(depths) - 0.5), xticks=range(len(sigmas)),
           xticklabels=[f"{s:g}" for s in sigmas], yticks=range(len(depths)), yticklabels=depths,
           xlabel=r"$\sigma_w^2$ (fan_in Var[W] of the hidden layers, as drawn)", ylabel=r"depth $L$ (weight layers)",
           title=f"{tmap.activation} MLP, $\\sigma_b^2$ = {tmap.sigma_b2:g}, width {tmap.width}: final test accuracy "
                 f"(mean ± half its 95% t interval, or n); trained: above {tmap.threshold:.2f}")
    ax.title.set_fontsize(9)
    fig.colorbar(image, ax=ax, label="test accuracy (diverged runs: chance)", pad=0.02)
    legend(fig, ax.get_legend_handles_labels()[0])
    return save(fig, out / "trainability.png")


def _position(values: np.ndarray, grid: list) -> np.ndarray:
    """Where values fall on a categorical axis of these grid values (index i at grid[i]): linear
    between neighbours, extended past the ends by the end intervals; inf beyond the axis."""
    grid = np.asarray(grid, dtype=float)
    index = np.arange(len(grid), dtype=float)
    values = np.asarray(values, dtype=float)
    inner = np.interp(values, grid, index)
    below = (values - grid[0]) / (grid[1] - grid[0])
    above = len(grid) - 1 + (values - grid[-1]) / (grid[-1] - grid[-2])
    placed = np.where(values < grid[0], below, np.where(values > grid[-1], above, inner))
    return np.where(np.isposinf(values), len(grid) + 1.0, placed)  # off the top: the line runs out of the axis


def _curve_points(x: np.ndarray, critical: float | None) -> np.ndarray:
    """sigma_w^2 values for the xi_c curves: evenly spread, and crowded towards the critical
    point, where xi_c rises steeply (each point costs a mean-field solve, so not a fine grid)."""
    even = np.linspace(x.min(), x.max(), 25)
    if critical is None:
        return even
    near = critical * np.outer([-1, 1], np.logspace(-3, -0.7, 6)).ravel() + critical
    return np.unique(np.concatenate([even, near[(near >= x.min()) & (near <= x.max())], [critical]]))
