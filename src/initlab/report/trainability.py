"""The trainability map: final accuracy over (sigma_w^2, depth) of MLPs that share one activation
and sigma_b^2, beside the mean-field correlation depth scale xi_c, and the k for which "depth <
k xi_c" best says which cells trained, fitted on some seeds and scored on the others.

Runs are the unit of resampling: a cell's runs differ only in their seed, so a bootstrap draws
each cell's runs with replacement, and every statistic of the map (an agreement, a fitted k)
gets its interval from which cells trained in DRAWS such draws.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from initlab.report.load import Sweep, num_classes, read_init
from initlab.report.overlay import has_step0
from initlab.report.protocol import fit_declaration
from initlab.report.stats import Estimate, percentiles, resamples
from initlab.theory import MeanField, critical_sigma_w2, mean_field

SIGNIFICANT = 4  # digits of sigma_w^2 that name a grid column (target stds carry float noise)
RUN_COLUMNS = ["activation", "sigma_b2", "sigma_w2", "depth", "width", "seed", "acc", "chance", "grad_growth"]


@dataclass(frozen=True)
class TrainabilityMap:
    """The runs of a sigma_w^2 x depth grid; per cell, xi_c (inf at the critical point, where it
    diverges) and chi_1; a cell trained when its mean accuracy is above `threshold`.

    Its statistics (agreement, best_k, deepest) take which cells trained, as a boolean vector over
    the cells: the runs' own (the default), or a bootstrap draw's (`over_seeds`, `support`)."""

    activation: str
    sigma_b2: float
    width: int
    runs: pd.DataFrame  # one row per run, sorted by cell: sigma_w2, depth, seed, acc, grad_growth (measured), cell
    chance: float
    critical: float | None  # the sigma_w^2 where chi_1 = 1

    @cached_property
    def cells(self) -> pd.DataFrame:
        """One row per cell (index: `cell`): sigma_w2, depth, n (runs), xi_c, chi_1, acc (mean over
        its runs), trained."""
        cells = self.runs.groupby("cell").agg(sigma_w2=("sigma_w2", "first"), depth=("depth", "first"),
                                              n=("acc", "size"), acc=("acc", "mean"))
        cells["xi_c"] = [_xi_c(self.activation, s, self.sigma_b2) for s in cells["sigma_w2"]]
        cells["chi_1"] = [_mean_field(self.activation, s, self.sigma_b2).chi_1 for s in cells["sigma_w2"]]
        cells["trained"] = _trained(self.chance, cells["acc"].to_numpy()[None, :])[0]
        return cells

    @property
    def threshold(self) -> float:
        """'Trained': accuracy above halfway from chance to the best cell."""
        return (self.chance + self.cells["acc"].max()) / 2

    @cached_property
    def draws(self) -> np.ndarray:
        """[DRAWS, cells]: which cells trained in each bootstrap draw of each cell's runs."""
        picks = resamples(self.cells["n"].to_numpy())
        sums = np.add.reduceat(self.runs["acc"].to_numpy()[picks], np.r_[0, np.cumsum(self.cells["n"])[:-1]], axis=1)
        return _trained(self.chance, sums / self.cells["n"].to_numpy())

    def over_seeds(self, statistic: Callable[[np.ndarray], float]) -> Estimate:
        """`statistic` of which cells trained, with its 95% bootstrap interval over the runs (none
        when a cell has one run: a draw could only repeat it)."""
        value, n = statistic(self.cells["trained"].to_numpy()), self.seeds_per_cell()
        if n < 2:
            return Estimate(value, np.nan, np.nan, n)
        return Estimate(value, *percentiles(np.array([statistic(t) for t in self.draws])), n, symmetric=False)

    def support(self, claim: Callable[[np.ndarray], bool]) -> float:
        """The share of bootstrap draws of the runs in which `claim` holds (NaN: a cell has one run)."""
        return float(np.mean([claim(t) for t in self.draws])) if self.seeds_per_cell() > 1 else np.nan

    def seeds_per_cell(self) -> int:
        """The fewest runs in a cell."""
        return int(self.cells["n"].min())

    def agreement(self, k: float, trained: np.ndarray | None = None) -> float:
        """The fraction of cells with a xi_c where "depth < k xi_c" says whether they trained."""
        depth, xi_c, trained = self._judged(trained)
        return float(((depth < k * xi_c) == trained).mean())

    def best_k(self, trained: np.ndarray | None = None) -> float:
        """The k that best separates trained from untrained cells (NaN: no cell has a finite xi_c).
        Agreement only changes where k crosses a cell's depth / xi_c, so each interval between those
        ratios is tried; k is the geometric middle of the best run of equally good intervals."""
        depth, xi_c, trained = self._judged(trained)
        ratio = depth / xi_c
        candidates = np.unique(ratio[ratio > 0])
        if not len(candidates):
            return np.nan
        edges = np.concatenate([[candidates[0] / 2], candidates, [candidates[-1] * 2]])
        middles = np.sqrt(edges[:-1] * edges[1:])
        scores = ((ratio[None, :] < middles[:, None]) == trained[None, :]).mean(axis=1)
        low = high = int(np.argmax(scores))  # widened to the neighbouring intervals that score as well
        while low > 0 and scores[low - 1] == scores[high]:
            low -= 1
        while high < len(scores) - 1 and scores[high + 1] == scores[low]:
            high += 1
        return float(np.sqrt(edges[low] * edges[high + 1]))

    def deepest(self, trained: np.ndarray | None = None) -> dict[float, int]:
        """The deepest trained depth per sigma_w^2 column (0: none trained)."""
        trained = self.cells["trained"].to_numpy() if trained is None else trained
        sigma, depth = self.cells["sigma_w2"].to_numpy(), self.cells["depth"].to_numpy()
        return {s: int(depth[(sigma == s) & trained].max(initial=0)) for s in np.unique(sigma)}

    def estimates(self, column: str, geometric: bool = False) -> dict[tuple[float, int], Estimate]:
        """Per cell (sigma_w2, depth), a per-run column's estimate over the cell's runs."""
        of = Estimate.geometric_of if geometric else Estimate.of
        return {(s, d): of(group[column]) for (s, d), group in self.runs.groupby(["sigma_w2", "depth"])}

    def seeds(self, seeds) -> "TrainabilityMap | None":
        """The map of these seeds' runs alone (None: they have none)."""
        runs = self.runs[self.runs["seed"].isin(list(seeds))]
        return replace(self, runs=_numbered(runs)) if len(runs) else None

    def xi_c_curve(self, sigma_w2: np.ndarray) -> np.ndarray:
        """xi_c along a sigma_w^2 axis: inf at the critical point (it diverges), NaN where undefined."""
        return np.array([_xi_c(self.activation, float(s), self.sigma_b2) for s in sigma_w2])

    def _judged(self, trained: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(depth, xi_c, trained) of the cells the theory gives a xi_c."""
        known = self.cells["xi_c"].notna().to_numpy()
        trained = self.cells["trained"].to_numpy() if trained is None else trained
        return self.cells["depth"].to_numpy()[known], self.cells["xi_c"].to_numpy()[known], trained[known]


def _trained(chance: float, acc: np.ndarray) -> np.ndarray:
    """Per row of cell accuracies: above halfway from chance to that row's best cell."""
    return acc > ((chance + acc.max(axis=1)) / 2)[:, None]


@dataclass(frozen=True)
class KFit:
    """k fitted on some seeds' runs (bootstrap interval over them) and scored on the others'."""

    k: Estimate
    held_out: Estimate  # agreement of "depth < k xi_c" with the score seeds' cells
    fit_seeds: tuple
    score_seeds: tuple


def fit_k(tmap: TrainabilityMap, fit_seeds, score_seeds) -> KFit | None:
    """None where the sweep lacks runs of either seed set, the sets share a seed, or no cell has a
    finite xi_c."""
    fit, score = tmap.seeds(fit_seeds), tmap.seeds(score_seeds)
    if fit is None or score is None or set(fit_seeds) & set(score_seeds):
        return None
    k = fit.over_seeds(fit.best_k)
    if not np.isfinite(k.mean):
        return None
    return KFit(k, score.over_seeds(lambda trained: score.agreement(k.mean, trained)), tuple(fit_seeds),
                tuple(score_seeds))


def declared_fit(sweep: Sweep, tmap: TrainabilityMap) -> KFit | None:
    """k as the experiment's protocol declares it be fitted and scored (None: it declares no such
    split, or the sweep lacks those seeds)."""
    declared = fit_declaration(sweep, "k")
    return None if declared is None else fit_k(tmap, declared["fit_seeds"], declared["score_seeds"])


def trainability(sweep: Sweep) -> TrainabilityMap | None:
    """The map, where the sweep's cells are MLPs with one activation, sigma_b^2 and width whose
    hidden layers share a sigma_w^2, told apart by sigma_w^2 and depth alone, and the theory gives
    xi_c somewhere on the grid; else None."""
    rows = [_job_point(sweep, job, Path(job_dir), status, acc) for job, job_dir, status, acc
            in sweep.jobs[["job", "dir", "status", "test/acc"]].itertuples(index=False)]
    mapped = [r is not None for r in rows]
    runs = pd.DataFrame([r for r in rows if r is not None], columns=RUN_COLUMNS)
    if runs.empty or runs[["activation", "sigma_b2", "chance", "width"]].nunique().max() > 1 \
            or runs["sigma_w2"].nunique() < 2 or runs["depth"].nunique() < 2:
        return None
    activation, sigma_b2, chance, width = runs.iloc[0][["activation", "sigma_b2", "chance", "width"]]
    tmap = TrainabilityMap(activation, sigma_b2, int(width), _numbered(runs), chance,
                           critical_sigma_w2(activation, sigma_b2))
    cells = len(sweep.jobs.loc[mapped, sweep.axes].drop_duplicates())
    if len(tmap.cells) != cells or not np.isfinite(tmap.cells["xi_c"]).any():
        return None  # another axis varies too (its cells would be averaged together), or no xi_c to draw
    return tmap


def _numbered(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs sorted by cell, with `cell`: the index of their (sigma_w2, depth) cell."""
    runs = runs.sort_values(["sigma_w2", "depth", "seed"], kind="stable").reset_index(drop=True)
    return runs.assign(cell=runs.groupby(["sigma_w2", "depth"], sort=True).ngroup())


def _job_point(sweep: Sweep, job: str, job_dir: Path, status: str, acc: float) -> tuple | None:
    """One finished run as a RUN_COLUMNS row: a diverged run scores chance; a failed or unfinished
    one, or one the theory does not map, is left out. grad_growth is the per-layer factor of
    Var[dL/dy] at init from the last hidden layer down to the first, the measured counterpart of
    chi_1."""
    records, config = read_init(job_dir), sweep.configs[job]
    if status not in ("completed", "diverged") or not records or not config:
        return None
    model, chance = config["model"], 1 / num_classes(config)
    weights = [r for r in records if r["param"] == "weight" and r["fan_in"] is not None]
    hidden = weights[1:-1]
    sigma_w2 = {_round(r["fan_in"] * _drawn_from(r) ** 2) for r in hidden}
    sigma_b2 = {_round(_drawn_from(r) ** 2) for r in records if r["param"] == "bias"}
    if model["name"] != "mlp" or model["norm"] != "none" or len(sigma_w2) != 1 or len(sigma_b2) > 1 or not hidden:
        return None
    metrics = sweep.metrics[job]
    step0 = metrics[metrics["step"] == 0].iloc[0] if has_step0(metrics) else {}
    first, last = (step0.get(f"grad_var/{r['layer']}", np.nan) for r in (hidden[0], hidden[-1]))
    growth = (first / last) ** (1 / (len(hidden) - 1)) if len(hidden) > 1 else np.nan
    return (model["activation"], sigma_b2.pop() if sigma_b2 else 0.0, sigma_w2.pop(), len(weights),
            model.get("width"), config.get("seed"), acc if status == "completed" else chance, chance, growth)


def _drawn_from(record: dict) -> float:
    """The std of the distribution a tensor was drawn from (the measured one where no target)."""
    return record["std"] if record["target_std"] is None else record["target_std"]


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT}g}")


@cache
def _mean_field(activation: str, sigma_w2: float, sigma_b2: float) -> MeanField:
    return mean_field(activation, sigma_w2, sigma_b2)


def _xi_c(activation: str, sigma_w2: float, sigma_b2: float) -> float:
    """xi_c; inf at the critical point, where it diverges; NaN where the theory has none."""
    theory = _mean_field(activation, sigma_w2, sigma_b2)
    return math.inf if theory.phase == "critical" else math.nan if theory.xi_c is None else theory.xi_c
