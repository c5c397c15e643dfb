"""The coordinator's scorecard steps (`[federation] model = "scorecard"`), called from the round loop:

- round 0, before release 2: refuse when the smallest bin would drown in the statistics noise;
- round 0, after release 2: bin every characteristic from the summed labelled counts
  (`fedcredit.credit.binning`), drop those under `min_iv`, train on their WOE;
- after the last round: points per bin (`fedcredit.credit.scorecard.Scorecard`); the final
  evaluation, the artefact and `fedcredit score` then use the points.

Privacy: binning is post-processing of round 0's release 2 (split by label, charged as before);
the points are post-processing of the bins and the DP-SGD-trained weights. Nothing new is released.
"""

from __future__ import annotations

import math

from fedcredit.credit.binning import fit_binning, too_few_rows_per_bin
from fedcredit.credit.errors import InputError
from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.scenario import Scenario
from fedcredit.credit.scorecard import woe_transform
from fedcredit.credit.statistics import BinStats
from fedcredit.privacy.statistics import labelled_noise_sd, summed_sd

SCORECARD = "scorecard"


def transform_noise_sd(bins: BinStats, cell_sd: float) -> float:
    """Noise sd on a histogram count of release 2: a labelled release's histogram sums two noised cells."""
    return cell_sd * (math.sqrt(2) if bins.by_label else 1.0)


def check_bin_rows(scenario: Scenario, plan: ColumnPlan, rows: float, sigmas: list[float]) -> None:
    """Before release 2 under DP: refuse (InputError) when `min_bin_share` of the rows cannot stand
    above the summed noise of the labelled cells."""
    if scenario.federation.model != SCORECARD or not sigmas:
        return
    sd = summed_sd([labelled_noise_sd(s, len(plan.grids) + len(plan.categorical)) for s in sigmas])
    refusal = too_few_rows_per_bin(rows, sd, min_bin_share=scenario.scorecard.min_bin_share,
                                   noise_multiplier=max(sigmas))
    if refusal:
        raise InputError(refusal, source=f"scenario '{scenario.name}' [scorecard]", field="min_bin_share")


def woe_characteristics(scenario: Scenario, plan: ColumnPlan, bins: BinStats, transform: FeatureTransform,
                        cell_sd: float) -> tuple[FeatureTransform, dict[str, float], list[str]]:
    """(the WOE training transform, IV per characteristic, notices for the ones min_iv dropped)."""
    card = scenario.scorecard
    binned = fit_binning(plan, bins, transform, max_bins=card.max_bins, min_bin_share=card.min_bin_share,
                         monotonic=card.monotonic, noise_sd=cell_sd)
    try:
        woe, iv = woe_transform(transform, binned, card.min_iv)
    except ValueError:
        raise InputError(f"no characteristic reaches min_iv {card.min_iv:g} (largest IV "
                         f"{max((b.iv for b in binned.values()), default=0.0):.4f}): lower min_iv",
                         source=f"scenario '{scenario.name}' [scorecard]", field="min_iv") from None
    notices = [f"feature '{c}' is not used: information value {iv[c]:.4f} < min_iv {card.min_iv:g}"
               for c in binned if c not in woe.binned.bins]
    return woe, iv, notices
