"""Private release of an evaluation: the score histogram of a partner's held-out rows.

Under a DP policy a partner does not send its exact 4,800-bin score histogram and loss
sums. It sends counts on a coarse logit grid (`PRIVATE_SCORE_EDGES`: half-logit bins from
−6 to 3, where credit scores live, plus two open end bins), each with N(0, z²) noise. A
held-out row adds one to exactly one count (a bad or a good bin), so the L2 sensitivity is
1 and the release is one Gaussian mechanism with noise multiplier z, charged as
Release(z, 1.0, 1) on the held-out rows. Brier score and log loss are then computed from
the bins (post-processing), AUC and KS from the noisy counts without clipping (the noise
then averages out of the sums instead of biasing them).

The fairness release (`noisy_group_scores`) is the same mechanism per protected column: a
held-out row adds one to one count (its group, its score bin, its label) of each of the P
protected columns, so the L2 sensitivity is √P; every count (every group of the public list,
zero rows included) gets N(0, (z√P)²) noise and the release is charged as Release(z, 1.0, 1)
on the held-out rows. The exact sums of logits and PDs are withheld.
"""

from __future__ import annotations

import secrets

import numpy as np

from fedcredit.credit.fairness import GroupCells, GroupScores
from fedcredit.credit.metrics import PRIVATE_SCORE_EDGES, ScoreHistogram
from fedcredit.privacy.accountant import Release

__all__ = ["PRIVATE_SCORE_EDGES", "group_noise_sd", "noisy_evaluation", "noisy_group_scores"]


def noisy_evaluation(hist: ScoreHistogram, noise_multiplier: float, *, rng: np.random.Generator | None = None
                     ) -> tuple[ScoreHistogram, Release, float]:
    """(coarse noised histogram without loss sums, the release to charge, noise sd per count)."""
    rng = rng or np.random.default_rng(secrets.randbits(128))
    coarse = hist.coarsen(PRIVATE_SCORE_EDGES)
    k = len(PRIVATE_SCORE_EDGES) - 1
    noised = ScoreHistogram(bad=coarse.bad + rng.normal(0.0, noise_multiplier, k),
                            good=coarse.good + rng.normal(0.0, noise_multiplier, k),
                            brier_sum=None, logloss_sum=None, edges=PRIVATE_SCORE_EDGES, noise_sd=noise_multiplier)
    return noised, Release(noise_multiplier, 1.0, 1), noise_multiplier


def group_noise_sd(noise_multiplier: float, columns: int) -> float:
    """The noise standard deviation on each count of a fairness release over `columns` protected columns."""
    return noise_multiplier * float(np.sqrt(max(columns, 1)))


def noisy_group_scores(scores: GroupScores, noise_multiplier: float, *, rng: np.random.Generator | None = None
                       ) -> tuple[GroupScores, Release, float]:
    """(every count noised, sums withheld; the release to charge; the noise sd per count). `scores` must
    hold every group of each column's public list (see `GroupScores.from_scores`)."""
    rng = rng or np.random.default_rng(secrets.randbits(128))
    sd = group_noise_sd(noise_multiplier, len(scores.columns))
    k = len(scores.edges) - 1
    noised = GroupScores(scores.edges, scores.cutoff, noise_sd=sd)
    for col, groups in scores.columns.items():
        noised.columns[col] = {name: GroupCells(c.bad + rng.normal(0.0, sd, k), c.good + rng.normal(0.0, sd, k))
                               for name, c in groups.items()}
    return noised, Release(noise_multiplier, 1.0, 1), sd
