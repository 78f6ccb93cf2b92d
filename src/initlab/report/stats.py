"""Spread over seeds: a statistic's mean with its 95% interval and n, and the digits it supports.

A cell's runs differ only in their seed, so its seeds are independent draws of the statistic.
Means get a Student t interval: with the 2-5 seeds a grid can afford, a bootstrap percentile
interval would be too narrow (two values can only ever span [min, max]). A statistic that is not
a mean (a fitted k, a fraction of cells) gets a bootstrap interval over the runs instead
(`resamples`, `percentiles`). scipy is not a dependency and torch's StudentT has no icdf, so the t quantile
comes from a table (1-30 degrees of freedom) and, beyond, its Cornish-Fisher expansion.
"""

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
INTERVAL = "95% Student t interval"  # of a mean over seeds: what the report says its ± is
# t quantile 0.975 for 1..30 degrees of freedom (any statistics table)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)
_Z975 = 1.959964
DRAWS = 1000  # bootstrap resamples
SEED = 0  # of the bootstrap's generator: the same records give the same report


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (to 1e-3)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


@dataclass(frozen=True)
class Estimate:
    """A mean over n seeds with its 95% interval (NaN bounds for n < 2: no interval)."""

    mean: float
    low: float
    high: float
    n: int
    symmetric: bool = True  # mean ± half the interval; else the bounds are printed (a geometric mean, a bootstrap)

    @classmethod
    def of(cls, values) -> "Estimate":
        """The t interval of the mean of the finite values."""
        values = _finite(values)
        n = len(values)
        if n == 0:
            return cls(np.nan, np.nan, np.nan, 0)
        mean = float(values.mean())
        half = t975(n - 1) * values.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
        return cls(mean, mean - half, mean + half, n)

    @classmethod
    def geometric_of(cls, values) -> "Estimate":
        """For a positive statistic that spans decades (a variance, a ratio): the t interval of
        its mean log, exponentiated."""
        values = _finite(values)
        logs = cls.of(np.log(values[values > 0]))
        return cls(*np.exp([logs.mean, logs.low, logs.high]), logs.n, symmetric=False)

    @property
    def has_interval(self) -> bool:
        return self.n > 1 and np.isfinite(self.low)

    def text(self, n: bool = True) -> str:
        """'0.742 ± 0.013 (n=3)'; '0.93 (0.90–0.96, n=3)' where the interval is not symmetric; '0.742
        (n=1)'; '–' where there is no value."""
        if self.n == 0 or not np.isfinite(self.mean):
            return "–"
        count = f"n={self.n}"
        if not self.has_interval:
            return _significant(self.mean) + (f" ({count})" if n else "")
        places = decimals((self.high - self.low) / 2)
        if not self.symmetric:
            return f"{self.mean:.{places}f} ({self.low:.{places}f}–{self.high:.{places}f}" + (f", {count})" if n else ")")
        return f"{self.mean:.{places}f} ± {self.high - self.mean:.{places}f}" + (f" ({count})" if n else "")


def decimals(spread: float) -> int:
    """Decimal places that show two significant digits of `spread`: no more digits than the
    interval supports."""
    return max(0, 1 - int(np.floor(np.log10(spread)))) if spread > 0 and np.isfinite(spread) else 3


def _significant(value: float) -> str:
    """Three significant digits, trailing zeros kept: a value without an interval to size it."""
    return f"{value:#.3g}".rstrip(".")


def resamples(sizes: np.ndarray) -> np.ndarray:
    """[DRAWS, sum(sizes)] indices of bootstrap draws: items come in consecutive groups of `sizes`
    (a cell's runs), and each draw picks as many items of each group, with replacement."""
    rng = np.random.default_rng(SEED)
    sizes = np.asarray(sizes, dtype=int)
    group = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return starts[group] + (rng.random((DRAWS, len(group))) * sizes[group]).astype(int)


def percentiles(draws: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap draws (NaN: none)."""
    if not len(draws):
        return np.nan, np.nan
    low, high = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(low), float(high)


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]
