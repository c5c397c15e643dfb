"""An accountant independent of fedcredit's: Google's dp-accounting (PLD, pessimistic, 1e-4
discretisation — the same settings as ../shared/privacy/epsilon-oracle.csv), used by tests to
recompute a privacy report's epsilon from its listed releases alone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dp_accounting
from dp_accounting.pld import pld_privacy_accountant


def pld_epsilon(releases: Iterable[Mapping[str, Any]], delta: float) -> float:
    """Lifetime epsilon at `delta` of a report's releases: the worst cell of rows (parallel
    composition over [lo, hi) intervals), each cell a composition of Poisson-sampled Gaussians."""
    releases = list(releases)
    cuts = sorted({0.0, 1.0, *(x for r in releases for x in (r.get("rows") or (0.0, 1.0)))})
    worst = 0.0
    for lo, hi in zip(cuts, cuts[1:]):
        accountant = pld_privacy_accountant.PLDAccountant(dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
                                                          value_discretization_interval=1e-4)
        covering = [r for r in releases if (r.get("rows") or (0.0, 1.0))[0] <= lo and hi <= (r.get("rows") or (0.0, 1.0))[1]]
        for r in covering:
            event = dp_accounting.GaussianDpEvent(r["noise_multiplier"])
            if r["sample_rate"] < 1:
                event = dp_accounting.PoissonSampledDpEvent(r["sample_rate"], event)
            accountant.compose(event, int(r["steps"]))
        if covering:
            worst = max(worst, accountant.get_epsilon(delta))
    return worst
