"""What a paper claims, checked in numbers from a reproduction's records.

Each experiment with a published result has a module here: it states each claim and its test
(thresholds and tolerances as constants, fixed before any run), finds the evidence in the sweep
with its spread over seeds, and gives a verdict. A grid that lacks the cells a claim needs says
so instead of guessing.
"""

from initlab.report.claims import (  # noqa: F401  (each registers its claims)
    glorot2010, he2015, pennington2017, schoenholz2017, xiao2018)
from initlab.report.claims.base import CLAIMS, Claim
from initlab.report.load import Sweep


def claims_for(experiment: str | None, sweep: Sweep) -> list[Claim]:
    return CLAIMS[experiment](sweep) if experiment in CLAIMS else []
