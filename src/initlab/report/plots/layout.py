"""How every figure tells cells apart: panels, colours, line styles, legends, and how it is saved.

A panel holds at most MAX_LINES cells. Cells are split into panels by the given axes (depth, for
training curves); a colour axis (init when the grid has it, else the first other axis) tells the
cells of a panel apart, and line style and marker the remaining axes. Where that would put more
than MAX_LINES lines in a panel, a style axis moves to the panels; where the colour axis alone
has more values, they are cut into runs of at most MAX_LINES consecutive values, one panel each,
with colours of their own, so that no two lines of a panel are hard to tell apart.
"""

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from initlab.report.load import Sweep  # noqa: E402
from initlab.report.stats import Estimate  # noqa: E402

MAX_LINES = 6
LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 3))]
MARKERS = ["o", "s", "^", "D", "v", "P"]
BAND_ALPHA = 0.2  # a 95% interval drawn around its line


@dataclass(frozen=True)
class Panel:
    title: str  # what its cells share
    group: int  # panels with one title: the colour axis cut over them
    cells: list[tuple]
    colours: dict  # colour-axis value -> colour, for this panel's values
    own_colours: bool  # its colours are its own (the colour axis is cut over panels): its own legend


@dataclass(frozen=True)
class Layout:
    axes: list[str]
    colour_axis: str | None
    style_axes: list[str]
    lines: dict[tuple, tuple]  # style-axes values -> (line style, marker)
    panels: list[Panel]

    def shape(self, per_row: int) -> tuple[int, int]:
        """(rows, columns) for the panels: a group's panels side by side, as square as `per_row` allows."""
        sizes = Counter(p.group for p in self.panels)
        width = max(sizes.values(), default=1)
        columns = width * wrapped(len(sizes), max(1, per_row // width))[1]
        return math.ceil(len(self.panels) / columns), columns

    def style(self, panel: Panel, cell: tuple) -> dict:
        values = dict(zip(self.axes, cell))
        linestyle, marker = self.lines[_combo(values[a] for a in self.style_axes)]
        return {"color": panel.colours.get(values.get(self.colour_axis), "C0"), "linestyle": linestyle, "marker": marker}

    def colour_handles(self, sweep: Sweep, panel: Panel) -> list[Line2D]:
        if not self.colour_axis:
            return []
        return [heading(sweep.meaning(self.colour_axis).tex),
                *(Line2D([], [], color=c, linewidth=3, label=str(v)) for v, c in panel.colours.items())]

    def handles(self, sweep: Sweep) -> list[Line2D]:
        """Legend entries every panel shares: colours (where no panel has its own), then line styles."""
        handles = [] if any(p.own_colours for p in self.panels) or not self.panels \
            else self.colour_handles(sweep, self.panels[0])
        if self.style_axes:
            handles.append(heading(", ".join(sweep.meaning(a).tex for a in self.style_axes)))
            handles += [Line2D([], [], color="0.3", linestyle=ls, marker=m, label=", ".join(map(str, combo)))
                        for combo, (ls, m) in self.lines.items()]
        return handles


def depth_axis(sweep: Sweep) -> str | None:
    return next((a for a in sweep.axes if a.endswith("depth")), None)


def facet_axis(sweep: Sweep) -> str | None:
    """The axis whose values get panels (or heatmap columns) of their own: depth when the grid has
    it, else the last axis."""
    return depth_axis(sweep) or (sweep.axes[-1] if sweep.axes else None)


def layout(sweep: Sweep, cells: list[tuple], split: list[str]) -> Layout:
    """The panels for these cells (full cell keys): one per combination of the `split` axes and
    of the style axes moved there, the colour axis cut where it has more than MAX_LINES values."""
    values = {a: axis_values(sweep, cells, a) for a in sweep.axes}
    split = list(split)
    others = [a for a in sweep.axes if a not in split and len(values[a]) > 1]  # one value: nothing to tell apart
    colour_axis = "init" if "init" in others else next(iter(others), None)
    style_axes = [a for a in others if a != colour_axis]
    colours = values[colour_axis] if colour_axis else [None]
    while style_axes and len(colours) * math.prod(len(values[a]) for a in style_axes) > MAX_LINES:
        moved = max(reversed(style_axes), key=lambda a: len(values[a]))  # ties: the last axis, the least general
        style_axes.remove(moved)
        split.append(moved)
    combos = list(dict.fromkeys(_combo(dict(zip(sweep.axes, c))[a] for a in style_axes) for c in cells))
    lines = {combo: (LINESTYLES[i % len(LINESTYLES)], MARKERS[i % len(MARKERS)]) for i, combo in enumerate(combos)}
    per_panel = max(1, MAX_LINES // len(combos))
    own = len(colours) > per_panel  # cut over panels: each run of values gets the whole palette
    shared = dict(zip(colours, _palette(colours)))
    panels = []
    for number, (title, group) in enumerate(_grouped(sweep, cells, split, values)):
        present = [v for v in colours if any(_value(sweep, c, colour_axis) == v for c in group)]
        for chunk in _chunks(present, per_panel):
            palette = dict(zip(chunk, _palette(chunk))) if own else {v: shared[v] for v in chunk}
            panels.append(Panel(title, number, [c for c in group if _value(sweep, c, colour_axis) in chunk], palette,
                                own))
    return Layout(list(sweep.axes), colour_axis, style_axes, lines, panels)


def _value(sweep: Sweep, cell: tuple, axis: str | None):
    return dict(zip(sweep.axes, cell)).get(axis) if axis else None


def _grouped(sweep: Sweep, cells: list[tuple], axes: list[str], values: dict) -> list[tuple[str, list[tuple]]]:
    """(title, cells) per combination of `axes`, in the order of their values."""
    groups: dict[tuple, list[tuple]] = {}
    for cell in cells:
        groups.setdefault(tuple(_value(sweep, cell, a) for a in axes), []).append(cell)
    order = sorted(groups, key=lambda key: [values[a].index(v) if v in values[a] else -1 for a, v in zip(axes, key)])
    return [(", ".join(f"{sweep.meaning(a).tex} = {v}" for a, v in zip(axes, key)), groups[key]) for key in order]


def _chunks(values: list, size: int) -> list[list]:
    """`values` cut into the fewest runs of at most `size`, as equal in length as can be."""
    count = max(1, math.ceil(len(values) / size))
    return [list(chunk) for chunk in np.array_split(np.array(values, dtype=object), count)]


def _combo(values) -> tuple:
    """Axis values as a dict key: a job without the axis (NaN, which equals nothing) becomes None."""
    return tuple(None if pd.isna(v) else v for v in values)


def axis_values(sweep: Sweep, cells: list[tuple], axis: str) -> list:
    """The values `axis` takes in these cells, in order (numbers sorted, names as the grid lists them)."""
    values = list(dict.fromkeys(pd.Series([_value(sweep, c, axis) for c in cells], dtype=object).dropna()))
    return sorted(values) if all(isinstance(v, (int, float)) for v in values) else values


def _palette(values: list) -> list:
    """An ordered colour map for numbers (their order is the point), distinct hues for names."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and len(values) > 2:
        return [plt.cm.viridis(x) for x in np.linspace(0.0, 0.88, len(values))]
    return [plt.get_cmap("tab10")(i) for i in range(len(values))]


def draw_band(ax, x, estimates: list[Estimate], style: dict, floor: float = -np.inf) -> None:
    """A line through the estimates' means, over the band of their 95% intervals where they have one,
    cut at `floor`, the least value the statistic can take (a t interval over 2 seeds reaches far below a loss of 0)."""
    ax.plot(x, [e.mean for e in estimates], **style)
    if any(e.has_interval for e in estimates):
        ax.fill_between(x, np.maximum([e.low for e in estimates], floor), [e.high for e in estimates],
                        color=style["color"], alpha=BAND_ALPHA, linewidth=0)


def band_handle() -> Line2D:
    return Line2D([], [], color="0.3", linewidth=6, alpha=BAND_ALPHA, label="95% t interval over seeds")


def heading(text: str) -> Line2D:
    """A legend entry with no line: a heading, set in bold by `legend`."""
    return Line2D([], [], linestyle="none", label=text)


def legend(fig, handles: list[Line2D]) -> None:
    """One legend for all panels, outside them on the right."""
    if not handles:
        return
    drawn = fig.legend(handles=handles, loc="outside right upper", frameon=False, fontsize=8)
    for text, handle in zip(drawn.get_texts(), handles):
        if handle.get_linestyle() == "None" and handle.get_marker() in ("None", None, ""):
            text.set_fontweight("bold")


def panel_legend(ax, handles: list[Line2D]) -> None:
    """A panel's own colours (the colour axis cut over panels), just right of it."""
    if handles:
        ax.legend(handles=handles[1:], title=handles[0].get_label(), fontsize=7, title_fontsize=8, frameon=False,
                  loc="upper left", bbox_to_anchor=(1.0, 1.0))


def wrapped(count: int, per_row: int) -> tuple[int, int]:
    """(rows, columns) for `count` panels, at most `per_row` to a row, as square as that allows."""
    columns = max(1, min(count, per_row, math.ceil(math.sqrt(count))))
    return math.ceil(count / columns), columns


def grid(count: int, shape: tuple[int, int], size: tuple[float, float], **kwargs):
    """A figure of `count` panels in `shape` (rows, columns), each `size` inches; spare ones hidden."""
    rows, columns = shape
    fig, axes = plt.subplots(rows, columns, figsize=(size[0] * columns, size[1] * rows), squeeze=False,
                             layout="constrained", **kwargs)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes


def seed_counts(sweep: Sweep, status: str = "completed") -> str:
    """'n = 2-3 seeds per cell': the fewest and most runs of that status in a cell."""
    counts = [int((group["status"] == status).sum()) for _, group in sweep.cells()]
    low, high = min(counts), max(counts)
    return f"n = {low} seed{'s' if high > 1 else ''} per cell" if low == high else f"n = {low}–{high} seeds per cell"


def text_colour(background) -> str:
    """Black or white, whichever contrasts more with the background: black above relative
    luminance 0.179, where the two contrast ratios (WCAG 2) are equal."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(background)]
    return "k" if np.dot([0.2126, 0.7152, 0.0722], linear) > 0.179 else "w"


def save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
