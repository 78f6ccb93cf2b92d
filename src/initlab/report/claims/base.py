"""A claim: what the paper says, the test this report applies (declared in code, before any run),
the evidence with its spread over seeds, and the verdict."""

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from initlab.report.load import Sweep
from initlab.report.verdict import Verdict


@dataclass(frozen=True)
class Claim:
    claim: str  # what the paper says
    test: str  # how the runs decide it: thresholds and tolerances, constants of the claim's code
    evidence: str  # the numbers, each with its 95% interval and n
    verdict: Verdict
    n: int = 0  # the fewest seeds behind a number of the evidence
    interval: str = "t"  # "t": Student t intervals of means over seeds; "bootstrap": over the runs

    def basis(self) -> str:
        """How sure the verdict is, in words."""
        if self.verdict == Verdict.untested:
            return ""
        if self.n < 2:
            return "1 seed per cell: no interval, the values alone decide"
        kind = "Student t" if self.interval == "t" else "bootstrap"
        return f"95% {kind} intervals over at least {self.n} seeds per cell"


CLAIMS: dict[str, Callable[[Sweep], list[Claim]]] = {}


def register(name: str):
    """Make `fn(sweep) -> list[Claim]` the claims of experiment `name`."""
    def add(fn):
        CLAIMS[name] = fn
        return fn

    return add


def cells_where(table: pd.DataFrame, **where) -> pd.DataFrame:
    """The rows (cells or jobs) whose columns hold these values; none if a column is missing."""
    for key, value in where.items():
        if key not in table:
            return table.iloc[0:0]
        table = table[table[key] == value]
    return table


def fewest(estimates) -> int:
    """The fewest seeds behind any of these estimates that has a value (0: none has)."""
    return min((e.n for e in estimates if e.n), default=0)


def describe(sweep: Sweep, row: dict, skip: tuple[str, ...] = ()) -> str:
    """'init=kaiming, fan mode=fan_in' for a cell-table row, the `skip` axes left out."""
    return sweep.cell_label(tuple(row[a] for a in sweep.axes), skip)
