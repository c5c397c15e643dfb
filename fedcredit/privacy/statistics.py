"""Private release of the round-0 statistics (the Gaussian mechanism), and what they can support.

Release 1 (`RangeStats`, on the coarse private magnitude grid, no extremes): a customer
row adds one to the row count, at most one to the bad count, and one count to each column
(a magnitude bin, the missing count or a level count), so its L2 sensitivity is
sqrt(columns + 2). Release 2 (`BinStats`): per planned numeric column one
count and, in the window's units u ∈ [0, 1], at most 1 to each of Σu and Σu², sensitivity
sqrt(3 · planned columns). Every count gets N(0, (z · sensitivity)²) noise; each
release costs one Gaussian mechanism with noise multiplier z, charged as Release(z, 1.0, 1)
on the training rows. Levels whose noisy count is under three noise standard deviations
are not sent at all (so a rare level never reveals its holder).

The coordinator plans and fits from the summed noisy counts as `fedcredit.credit.features` describes
(counts within a few noise standard deviations of zero are empty) and, before spending
release 2, checks that the consortium has enough rows for its noise (`too_few_rows`).
"""

from __future__ import annotations

import math
import secrets

import numpy as np

from fedcredit.credit.statistics import BinStats, RangeStats
from fedcredit.privacy.accountant import Release

LEVEL_THRESHOLD_SD = 3.0
RELIABLE_ROWS_PER_SD = 25    # training rows per sd of the summed noise on a count: measured, see tests/privacy/test_statistics.py


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng or np.random.default_rng(secrets.randbits(128))


def range_noise_sd(noise_multiplier: float, columns: int) -> float:
    """Noise sd on each count of release 1 for a table of `columns` feature columns."""
    return noise_multiplier * math.sqrt(columns + 2)


def bins_noise_sd(noise_multiplier: float, numeric_columns: int) -> float:
    """Noise sd on each count and sum of release 2 for `numeric_columns` planned columns."""
    return noise_multiplier * math.sqrt(3 * max(numeric_columns, 1))


def labelled_noise_sd(noise_multiplier: float, columns: int) -> float:
    """Noise sd on each cell of a scorecard run's release 2 (split by label) over `columns` planned
    numeric and categorical columns: a row adds one count per column, sensitivity sqrt(columns)."""
    return noise_multiplier * math.sqrt(max(columns, 1))


def noisy_range(stats: RangeStats, noise_multiplier: float, *, public_levels: frozenset[str] = frozenset(),
                rng: np.random.Generator | None = None) -> tuple[RangeStats, Release, float]:
    """(noised release 1, the release to charge, the noise standard deviation per count).

    Columns in `public_levels` have a declared code list: all their counts are sent (noised);
    other columns' levels are sent only when their noisy count clears the threshold."""
    rng = _rng(rng)
    sd = range_noise_sd(noise_multiplier, len(stats.missing))
    levels = {}
    for col, counts in stats.levels.items():
        noised = {lvl: n + rng.normal(0.0, sd) for lvl, n in counts.items()}
        floor = -np.inf if col in public_levels else LEVEL_THRESHOLD_SD * sd
        levels[col] = {lvl: float(n) for lvl, n in noised.items() if n >= floor}
    private = RangeStats(
        rows=float(max(1.0, round(stats.rows + rng.normal(0.0, sd)))),
        bad=float(stats.bad + rng.normal(0.0, sd)),
        missing={c: float(m + rng.normal(0.0, sd)) for c, m in stats.missing.items()},
        magnitudes={c: h + rng.normal(0.0, sd, len(h)) for c, h in stats.magnitudes.items()},
        levels=levels, extremes={}, label_values=stats.label_values, per_decade=stats.per_decade)
    return private, Release(noise_multiplier, 1.0, 1), sd


def noisy_bins(stats: BinStats, noise_multiplier: float, *, rng: np.random.Generator | None = None
               ) -> tuple[BinStats, Release, float]:
    """(noised release 2, the release to charge, the noise standard deviation per count).

    Split by label (a scorecard run, `BinStats.by_label`): a row adds one count per planned column —
    to its (label, cell) cell, a numeric column's missing cell included — and nothing else (the sums
    are not released), so the L2 sensitivity is sqrt(numeric + categorical) and the release is charged
    exactly like the plain one (one Gaussian mechanism at z). The histograms (good + bad, noise sd·√2
    per count) and the sums (from the noised bins at their midpoints, in the window's units) are
    post-processing of the noised cells."""
    rng = _rng(rng)
    if stats.by_label:
        sd = labelled_noise_sd(noise_multiplier, len(stats.by_label))
        cells = {c: v + rng.normal(0.0, sd, np.shape(v)) for c, v in stats.by_label.items()}
        hists = {c: cells[c][:, :-1].sum(axis=0) for c in stats.histograms}
        return BinStats(hists, {c: _midpoint_sums(h) for c, h in hists.items()}, cells), Release(noise_multiplier, 1.0, 1), sd
    sd = bins_noise_sd(noise_multiplier, len(stats.histograms))
    return (BinStats({c: h + rng.normal(0.0, sd, len(h)) for c, h in stats.histograms.items()},
                     {c: m + rng.normal(0.0, sd, len(m)) for c, m in stats.sums.items()}),
            Release(noise_multiplier, 1.0, 1), sd)


def _midpoint_sums(hist: np.ndarray) -> np.ndarray:
    """[Σu, Σu²] of a histogram's counts (negative ones as 0) at its bins' midpoints on [0, 1]."""
    counts = np.clip(hist, 0, None)
    mids = (np.arange(len(counts)) + 0.5) / len(counts)
    return np.array([counts @ mids, counts @ (mids * mids)])


def summed_sd(sds: list[float]) -> float:
    """Standard deviation of the noise on a sum of independently noised counts."""
    return math.sqrt(sum(s * s for s in sds))


def too_few_rows(rows: float, bins_noise_sd: float, *, noise_multiplier: float) -> str:
    """"" if `rows` training rows (consortium total) support release 2 at this summed noise per
    count, else the refusal: how many rows are needed, or how low the noise must go."""
    needed = RELIABLE_ROWS_PER_SD * bins_noise_sd
    if rows >= needed:
        return ""
    fit = noise_multiplier * rows / needed
    return (f"too few training rows for private statistics at this noise: the partners' summed noise is "
            f"{bins_noise_sd:.0f} counts per bin, which needs about {needed:,.0f} training rows in the consortium "
            f"(it has about {rows:,.0f}); add rows or partners, or lower stats_noise_multiplier from "
            f"{noise_multiplier:g} to at most {fit:.2g} (each statistics release then costs more epsilon; "
            "`fedcredit plan` shows how much)")
