"""Private release of the preprocessing statistics (the Gaussian mechanism).

A customer row adds one to the row count and one count to each column (a histogram bin,
the missing count, or a level count), so the L2 sensitivity of the whole release is
sqrt(columns + 1). Every count gets N(0, (z · sensitivity)²) noise; the release costs one
Gaussian mechanism with noise multiplier z, charged to the ledger as Release(z, 1.0, 1).
Private histograms use the coarse grid, and levels whose noisy count is under three noise
standard deviations are not sent at all (so a rare level never reveals its holder).
"""

from __future__ import annotations

import math
import secrets

import numpy as np

from credit.features import COARSE_BINS, ColumnStats, coarsen
from privacy.accountant import Release

LEVEL_THRESHOLD_SD = 3.0


def sensitivity(stats: ColumnStats) -> float:
    return math.sqrt(len(stats.missing) + 1)


def noisy_statistics(stats: ColumnStats, noise_multiplier: float, *, public_levels: frozenset[str] = frozenset(),
                     rng: np.random.Generator | None = None) -> tuple[ColumnStats, Release, float]:
    """(noised coarse statistics, the release to charge, the noise standard deviation per count).

    Columns in `public_levels` have a declared code list: all their counts are sent (noised);
    other columns' levels are sent only when their noisy count clears the threshold."""
    rng = rng or np.random.default_rng(secrets.randbits(128))
    sd = noise_multiplier * sensitivity(stats)

    def noise(shape=None):
        return rng.normal(0.0, sd, shape)

    levels = {}
    for col, counts in stats.levels.items():
        noised = {lvl: n + noise() for lvl, n in counts.items()}
        floor = -np.inf if col in public_levels else LEVEL_THRESHOLD_SD * sd
        levels[col] = {lvl: float(n) for lvl, n in noised.items() if n >= floor}
    private = ColumnStats(
        rows=max(1, int(round(stats.rows + noise()))),
        missing={c: float(m + noise()) for c, m in stats.missing.items()},
        histograms={c: coarsen(h, COARSE_BINS) + noise(COARSE_BINS) for c, h in stats.histograms.items()},
        levels=levels,
    )
    return private, Release(noise_multiplier, 1.0, 1), sd


def denoise(stats: ColumnStats, noise_sd: float) -> ColumnStats:
    """Server-side post-processing of summed noisy statistics: zero the bins that are
    indistinguishable from noise (below three standard deviations of the summed noise)."""
    if noise_sd <= 0:
        return stats
    floor = LEVEL_THRESHOLD_SD * noise_sd
    return ColumnStats(
        rows=stats.rows,
        missing={c: (m if m > floor else 0.0) for c, m in stats.missing.items()},
        histograms={c: np.where(h > floor, h, 0.0) for c, h in stats.histograms.items()},
        levels={c: {lvl: n for lvl, n in v.items()} for c, v in stats.levels.items()},
    )
