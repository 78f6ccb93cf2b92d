"""The report's statistics and verdicts: intervals over seeds, the digits they support, bootstrap
draws that stay within a cell, and tests that agree only when the interval or the declared
tolerance says so."""

import math

import numpy as np
import pytest

from initlab.report.stats import DRAWS, Estimate, decimals, percentiles, resamples, t975
from initlab.report.verdict import Verdict, combined, finite_width_tolerance, inside, matches


@pytest.mark.parametrize("df, quantile", [(1, 12.706), (2, 4.303), (4, 2.776), (30, 2.042), (60, 2.000),
                                          (120, 1.980), (10_000, 1.960)])
def test_t_quantile_matches_printed_tables(df, quantile):
    assert t975(df) == pytest.approx(quantile, abs=1.5e-3)


def test_t_interval_of_three_seeds():
    """Mean 2, sd 1, n 3: half-width t(0.975, 2) / sqrt(3) = 2.484."""
    e = Estimate.of([1.0, 2.0, 3.0, float("nan")])  # a NaN (a metric never measured) is no seed
    assert (e.mean, e.n) == (2.0, 3)
    assert e.high - e.mean == pytest.approx(4.303 / math.sqrt(3), abs=1e-3) and e.mean - e.low == e.high - e.mean
    assert e.text() == "2.0 ± 2.5 (n=3)"


def test_one_seed_has_no_interval_and_none_has_no_value():
    one = Estimate.of([0.5])
    assert not one.has_interval and one.text() == "0.500 (n=1)" and Estimate.of([120.0]).text() == "120 (n=1)"
    assert Estimate.of([]).text() == "–"


def test_geometric_interval_is_symmetric_in_log():
    e = Estimate.geometric_of([1.0, 100.0])
    assert e.mean == pytest.approx(10.0) and e.low * e.high == pytest.approx(100.0)
    assert e.high / e.mean == pytest.approx(math.exp(12.706 * math.log(100) / math.sqrt(2) / math.sqrt(2)))
    assert "–" in e.text() and "±" not in e.text()


@pytest.mark.parametrize("spread, places", [(0.013, 3), (0.25, 2), (3.2, 1), (25.0, 0)])
def test_digits_follow_the_interval(spread, places):
    assert decimals(spread) == places


def test_bootstrap_draws_stay_within_each_cell_and_repeat():
    sizes = np.array([2, 3, 1])
    picks = resamples(sizes)
    assert picks.shape == (DRAWS, 6)
    cell = np.repeat([0, 1, 2], sizes)
    starts = np.array([0, 2, 5])
    assert ((picks >= starts[cell]) & (picks < starts[cell] + sizes[cell])).all()
    assert (picks == resamples(sizes)).all()  # a fixed generator: the same records give the same report
    assert len(set(picks[:, 2])) == 3  # the 3-run cell draws each of its runs
    assert percentiles(np.arange(1001.0)) == pytest.approx((25.0, 975.0))


@pytest.mark.parametrize("estimate, verdict", [
    (Estimate(0.8, 0.7, 0.9, 3), Verdict.agrees),  # the whole interval above the threshold
    (Estimate(0.6, 0.4, 0.8, 3), Verdict.inconclusive),  # it straddles the threshold
    (Estimate(0.2, 0.1, 0.3, 3), Verdict.disagrees),
    (Estimate(0.6, math.nan, math.nan, 1), Verdict.agrees),  # one seed: the value decides
    (Estimate(math.nan, math.nan, math.nan, 0), Verdict.untested),
])
def test_a_threshold_is_decided_by_the_interval(estimate, verdict):
    assert inside(estimate, low=0.5) == verdict


def test_a_band_is_decided_by_the_interval():
    assert inside(Estimate(1.0, 0.9, 1.1, 3), 0.8, 1.25) == Verdict.agrees
    assert inside(Estimate(1.0, 0.5, 1.5, 3), 0.8, 1.25) == Verdict.inconclusive  # wider than the band
    assert inside(Estimate(0.6, 0.5, 0.7, 3), 0.8, 1.25) == Verdict.disagrees


def test_a_predicted_value_agrees_inside_the_interval_or_within_tolerance():
    assert matches(Estimate(2.0, 1.0, 3.0, 3), 2.9, 0.1) == Verdict.agrees  # inside the interval
    assert matches(Estimate(2.0, 1.9, 2.1, 3), 2.15, 0.2) == Verdict.agrees  # within the tolerance
    assert matches(Estimate(2.0, 1.9, 2.1, 3), 2.5, 0.2) == Verdict.disagrees
    assert matches(Estimate(0.9, math.nan, math.nan, 1), 1.0, 0.1, log=True) == Verdict.disagrees  # log(0.9) = -0.105
    assert matches(Estimate(0.91, math.nan, math.nan, 1), 1.0, 0.1, log=True) == Verdict.agrees


def test_a_claim_over_cells_fails_where_one_fails():
    assert combined([Verdict.agrees, Verdict.disagrees, Verdict.inconclusive]) == Verdict.disagrees
    assert combined([Verdict.agrees, Verdict.inconclusive]) == Verdict.inconclusive
    assert combined([Verdict.agrees, Verdict.untested]) == Verdict.agrees
    assert combined([]) == Verdict.untested


def test_finite_width_tolerance_is_about_sqrt_depth_over_width():
    """Per layer of a depth-100 net at width 64, the log factor may be off by 1/64 + 2 sqrt(2 / (97 * 64));
    it tightens with width and loosens with depth."""
    assert finite_width_tolerance(97, 64) / 97 == pytest.approx(1 / 64 + 2 * math.sqrt(2 / (97 * 64)))
    assert finite_width_tolerance(97, 1024) < finite_width_tolerance(97, 64)
    assert finite_width_tolerance(10, 64) < finite_width_tolerance(40, 64)
