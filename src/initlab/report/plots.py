"""The report's figures, drawn from the records with matplotlib (no display needed)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
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
    """Loss against step, one panel per facet value: per cell the mean over its completed
    runs (solid), and each diverged run on its own (dashed, x where it stopped)."""
    facet = facet_axis(sweep)
    facets = sorted(sweep.jobs[facet].dropna().unique()) if facet else [None]
    fig, axes = plt.subplots(1, len(facets), figsize=(6 * len(facets), 4.5), squeeze=False)
    spans = []
    for ax, value in zip(axes[0], facets):
        for color, (cell, group) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10, sweep.cells()):
            if facet and _cell_value(sweep, cell, facet) != value:
                continue
            curves = {status: [sweep.metrics[j].set_index("step")["train/loss"].dropna()
                               for j, st in zip(group["job"], group["status"])
                               if st == status and "train/loss" in sweep.metrics[j]]
                      for status in ("completed", "diverged")}
            label = sweep.cell_label(cell, skip=facet)
            if curves["completed"]:
                mean = pd.concat(curves["completed"], axis=1).mean(axis=1)
                spans += [mean.min(), mean.max()]
                ax.plot(mean.index, mean.values, color=color, label=label)
            for i, run in enumerate(curves["diverged"]):
                ax.plot(run.index, run.values, "--", color=color, marker="x", markevery=[len(run) - 1],
                        label=f"{label} (diverged)" if i == 0 else None)
        ax.set(title=f"{facet} = {value}" if facet else "training loss", xlabel="step", ylabel="train loss")
        ax.legend(fontsize=7)
    if spans and min(spans) > 0 and max(spans) / min(spans) > 100:
        for ax in axes[0]:
            ax.set_yscale("log")
    fig.suptitle("Training curves (mean over seeds of completed runs; diverged runs dashed)")
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
            ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=sweep.cell_label(cell))
        ax.set(yscale="log", xlabel="layer index l (1 = first weight layer)", ylabel=key, title=SIGNALS[key])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.suptitle("Signal propagation at initialisation (step 0, geometric mean over seeds)")
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
    table["row"] = table[rows].astype(str).agg(", ".join, axis=1) if rows else "all"
    table["note"] = [_outcome(r) for _, r in table.iterrows()]
    grid = table.pivot_table(index="row", columns=facet, values=metric, sort=False, dropna=False)
    notes = table.pivot(index="row", columns=facet, values="note").reindex(index=grid.index, columns=grid.columns)
    fig, ax = plt.subplots(figsize=(1.6 * grid.shape[1] + 4, 0.45 * grid.shape[0] + 1.5))
    image = ax.imshow(grid.values, cmap="viridis", aspect="auto")
    ax.set(xticks=range(grid.shape[1]), xticklabels=grid.columns, yticks=range(grid.shape[0]),
           yticklabels=grid.index, xlabel=facet, ylabel=", ".join(rows), title=f"final {metric} (mean over seeds)")
    for (i, j), value in np.ndenumerate(grid.values):
        text = notes.iat[i, j] if np.isnan(value) else f"{value:.3f}"
        ax.text(j, i, text, ha="center", va="center", color="w" if not np.isnan(value) else "k", fontsize=8)
    fig.colorbar(image, ax=ax, label=metric)
    return _save(fig, out / "heatmap.png")


def _outcome(cell: pd.Series) -> str:
    """What a cell's runs did, for a cell without a final number."""
    return ", ".join(f"{cell[s]} {s}" for s in ("diverged", "failed") if cell.get(s)) or "no data"


def _cell_value(sweep: Sweep, cell, axis: str):
    cell = cell if isinstance(cell, tuple) else (cell,)
    return dict(zip(sweep.axes, cell)).get(axis)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
