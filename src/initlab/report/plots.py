"""The report's figures, drawn from the records with matplotlib (no display needed)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from initlab.report.aggregate import cell_table, layer_profile  # noqa: E402
from initlab.report.load import Sweep  # noqa: E402

SIGNALS = {
    "act_var": "activation variance Var[y_l]",
    "grad_var": "back-propagated gradient variance Var[dL/dy_l]",
    "grad_norm": "weight-gradient norm |dL/dW_l|",
}


def facet_axis(sweep: Sweep) -> str | None:
    """The axis that splits figures into panels: depth when the grid has it, else the last axis."""
    if not sweep.axes:
        return None
    return next((a for a in sweep.axes if a.endswith("depth")), sweep.axes[-1])


def training_curves(sweep: Sweep, out: Path) -> Path | None:
    """Loss against step, one line per cell (mean over seeds), one panel per facet value."""
    facet = facet_axis(sweep)
    facets = sorted(sweep.jobs[facet].dropna().unique()) if facet else [None]
    fig, axes = plt.subplots(1, len(facets), figsize=(6 * len(facets), 4.5), squeeze=False)
    spans = []
    for ax, value in zip(axes[0], facets):
        for cell, group in sweep.cells():
            if facet and _cell_value(sweep, cell, facet) != value:
                continue
            curves = [sweep.metrics[j].set_index("step")["train/loss"].dropna()
                      for j in group["job"] if "train/loss" in sweep.metrics[j]]
            if not curves:
                continue
            mean = pd.concat(curves, axis=1).mean(axis=1)
            spans += [mean.min(), mean.max()]
            diverged = (group["status"] == "diverged").sum()
            label = _label(sweep, cell, facet) + (f" ({diverged} diverged)" if diverged else "")
            ax.plot(mean.index, mean.values, label=label)
        ax.set(title=f"{facet} = {value}" if facet else "training loss", xlabel="step", ylabel="train loss")
        ax.legend(fontsize=7)
    if spans and min(spans) > 0 and max(spans) / min(spans) > 100:
        for ax in axes[0]:
            ax.set_yscale("log")
    fig.suptitle("Training curves (mean over seeds)")
    return _save(fig, out / "curves.png")


def signal_propagation(sweep: Sweep, out: Path) -> Path | None:
    """At init (step 0): each signal statistic against layer index, log scale, one line per cell."""
    panels = {key: layer_profile(sweep, key) for key in SIGNALS}
    panels = {k: v for k, v in panels.items() if v}
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (key, profiles) in zip(axes[0], panels.items()):
        for cell, values in profiles.items():
            ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=_label(sweep, cell))
        ax.set(yscale="log", xlabel="layer index l (1 = first weight layer)", ylabel=key, title=SIGNALS[key])
        ax.legend(fontsize=7)
    fig.suptitle("Signal propagation at initialisation (step 0, geometric mean over seeds)")
    return _save(fig, out / "signal.png")


def heatmap(sweep: Sweep, out: Path) -> Path | None:
    """Final test accuracy (else train loss) over the facet axis x the other axes' combinations."""
    facet = facet_axis(sweep)
    table = cell_table(sweep)
    metric = "test/acc" if table["test/acc"].notna().any() else "train/loss"
    if facet is None or table[metric].isna().all():
        return None
    rows = [a for a in sweep.axes if a != facet]
    label = table[rows].astype(str).agg(", ".join, axis=1) if rows else pd.Series(["all"] * len(table))
    grid = table.assign(row=label).pivot_table(index="row", columns=facet, values=metric, sort=False)
    fig, ax = plt.subplots(figsize=(1.6 * grid.shape[1] + 4, 0.45 * grid.shape[0] + 1.5))
    image = ax.imshow(grid.values, cmap="viridis", aspect="auto")
    ax.set(xticks=range(grid.shape[1]), xticklabels=grid.columns, yticks=range(grid.shape[0]),
           yticklabels=grid.index, xlabel=facet, ylabel=", ".join(rows), title=f"final {metric} (mean over seeds)")
    for (i, j), value in np.ndenumerate(grid.values):
        ax.text(j, i, "–" if np.isnan(value) else f"{value:.3f}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(image, ax=ax, label=metric)
    return _save(fig, out / "heatmap.png")


def _cell_value(sweep: Sweep, cell, axis: str):
    cell = cell if isinstance(cell, tuple) else (cell,)
    return dict(zip(sweep.axes, cell)).get(axis)


def _label(sweep: Sweep, cell, skip: str | None = None) -> str:
    cell = cell if isinstance(cell, tuple) else (cell,)
    return ", ".join(f"{a.split('.')[-1]}={v}" for a, v in zip(sweep.axes, cell) if a != skip) or "all runs"


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
