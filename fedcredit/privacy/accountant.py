"""Epsilon of a sequence of private releases, composed with Opacus's accountants.

Every release is a (possibly subsampled) Gaussian mechanism: noise multiplier σ,
Poisson sample rate q, number of compositions. DP-SGD steps are (σ, q, steps); a noisy
statistic released once is (σ, 1.0, 1). Epsilon is reported at a given delta under
add/remove-one-record neighbours, with the PRV accountant (a tight upper bound, numeric
error ≤ EPS_ERROR) and the RDP bound beside it. If PRV fails numerically the RDP bound is
reported and the statement says so. Opacus's `gdp` accountant is never used: it is not a bound.

Parallel composition: a partner splits its rows by a hash of each row's own content (see
`fedcredit.credit.loading.row_fractions`), so a release can be charged to the rows it read — the
interval [lo, hi) of row fractions, e.g. training rows [0.25, 1) and held-out rows [0, 0.25).
Adding or removing one row changes only the releases whose interval holds that row's
fraction, so the epsilon of a whole history is the maximum over the cells that the
intervals cut [0, 1) into of the composition of the releases covering that cell
(McSherry 2009, "Privacy Integrated Queries", parallel composition). A release without an
interval covers every row.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.analysis import rdp as rdp_analysis
from opacus.accountants.analysis.prv import Domain

EPS_ERROR = 0.01      # PRV: absolute error allowed in epsilon
SEARCH_EPS_ERROR = 0.05   # PRV while calibration searches (≈ 5× faster); the answer is checked at EPS_ERROR
MAX_NOISE = 1000.0
MIN_NOISE = 0.5       # calibration never goes below this (weaker noise gives no meaningful guarantee)


@dataclass(frozen=True)
class Release:
    """One Gaussian mechanism applied `steps` times with Poisson sample rate `sample_rate`."""

    noise_multiplier: float
    sample_rate: float
    steps: int

    def __post_init__(self) -> None:
        if not (self.noise_multiplier > 0 and math.isfinite(self.noise_multiplier)):
            raise ValueError(f"noise multiplier must be > 0 (got {self.noise_multiplier})")
        if not 0 < self.sample_rate <= 1:
            raise ValueError(f"sample rate must be in (0, 1] (got {self.sample_rate})")
        if self.steps < 0:
            raise ValueError(f"steps must be ≥ 0 (got {self.steps})")


ALL_ROWS = (0.0, 1.0)


@dataclass(frozen=True)
class Charge:
    """A release and the rows it read: the interval [lo, hi) of row fractions (default all)."""

    release: Release
    rows: tuple[float, float] = ALL_ROWS

    def __post_init__(self) -> None:
        lo, hi = self.rows
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"rows must be an interval inside [0, 1) (got {self.rows})")


@dataclass(frozen=True)
class PrivacySpent:
    """(epsilon, delta) of everything composed; `epsilon` is the number to report.

    With charges on disjoint rows, `rows` is the cell of rows whose composition is the worst."""

    epsilon: float
    delta: float
    epsilon_prv: float | None
    epsilon_rdp: float
    accountant: str        # "prv", or "rdp" when PRV failed
    note: str = ""
    rows: tuple[float, float] = ALL_ROWS


def _history(releases: Iterable[Release]) -> list[tuple[float, float, int]]:
    """Opacus history; identical mechanisms merged (composition is order-free)."""
    steps: dict[tuple[float, float], int] = defaultdict(int)
    for r in releases:
        if r.steps:
            steps[(r.noise_multiplier, r.sample_rate)] += r.steps
    return [(sigma, q, n) for (sigma, q), n in sorted(steps.items())]


ORDERS = tuple(RDPAccountant.DEFAULT_ALPHAS)


@functools.lru_cache(maxsize=4096)
def _rdp_one_step(sample_rate: float, noise_multiplier: float) -> np.ndarray:
    """RDP of one subsampled Gaussian step at Opacus's default orders (pure, so cached: the
    series for a fractional order at a large sample rate costs milliseconds each)."""
    return np.asarray(rdp_analysis.compute_rdp(q=sample_rate, noise_multiplier=noise_multiplier, steps=1,
                                               orders=list(ORDERS)), dtype=np.float64)


def _rdp_epsilon(history: Iterable[tuple[float, float, int]], delta: float) -> float:
    """Opacus's RDP → (ε, δ) conversion (Balle et al. 2020, Thm 21) over the summed RDP curve."""
    rdp = sum((_rdp_one_step(q, sigma) * steps for sigma, q, steps in history), np.zeros(len(ORDERS)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "optimal order is the largest alpha" for sample rate 1
        eps, _ = rdp_analysis.get_privacy_spent(orders=list(ORDERS), rdp=rdp, delta=delta)
    return float(eps)


class _PRVAccountant(PRVAccountant):
    """Opacus's PRV accountant with its discretisation domain computed from the cached RDP
    curves: the same bound as `opacus.accountants.analysis.prv.compute_safe_domain_size`
    (Gopi et al. 2021, remark 5.6), without recomputing the RDP series on every call."""

    def _get_domain(self, prvs, num_self_compositions, eps_error, delta_error):
        history = [(prv.noise_multiplier, prv.sample_rate, n) for prv, n in zip(prvs, num_self_compositions)]
        total = sum(num_self_compositions)
        size = _rdp_epsilon(history, delta_error / 4)
        for sigma, q, _ in history:
            size = max(size, _rdp_epsilon([(sigma, q, 1)], delta_error / (8 * total)))
        size = max(size, eps_error) + 3
        return Domain.create_aligned(-size, size, eps_error / np.sqrt(total * np.log(12 / delta_error) / 2))


def epsilon_rdp(releases: Iterable[Release], delta: float) -> float:
    history = _history(releases)
    return _rdp_epsilon(history, delta) if history else 0.0


def compose(releases: Iterable[Release], delta: float, *, eps_error: float = EPS_ERROR) -> PrivacySpent:
    """Epsilon at `delta` of all releases together (PRV to within `eps_error`; RDP if PRV fails)."""
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1) (got {delta})")
    return _compose(tuple(_history(releases)), delta, eps_error)


@functools.lru_cache(maxsize=1024)
def _compose(history: tuple[tuple[float, float, int], ...], delta: float, eps_error: float) -> PrivacySpent:
    if not history:
        return PrivacySpent(0.0, delta, 0.0, 0.0, "prv")
    rdp = _rdp_epsilon(history, delta)
    try:
        accountant = _PRVAccountant()
        accountant.history = list(history)
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")  # log(1 - q) at q = 1 is handled by PRV itself
            prv = float(accountant.get_epsilon(delta, eps_error=eps_error))
        if not math.isfinite(prv) or prv < 0:
            raise ArithmeticError(f"PRV returned {prv}")
    except Exception as exc:  # numerical failure inside PRV: fall back to the RDP bound
        return PrivacySpent(rdp, delta, None, rdp, "rdp", f"PRV accountant failed ({exc}); RDP bound reported")
    return PrivacySpent(prv, delta, prv, rdp, "prv")


def cells(charges: Iterable[Charge], within: tuple[float, float] = ALL_ROWS
          ) -> list[tuple[tuple[float, float], list[Release]]]:
    """The cells the charges' intervals cut `within` into, each with the releases covering it
    (adjacent cells with the same releases are merged)."""
    charges = list(charges)
    lo, hi = within
    cuts = sorted({lo, hi, *(x for c in charges for x in c.rows if lo < x < hi)})
    out: list[tuple[tuple[float, float], list[Release]]] = []
    last: list[int] | None = None
    for a, b in zip(cuts, cuts[1:]):
        covering = [i for i, c in enumerate(charges) if c.rows[0] <= a and b <= c.rows[1]]
        if covering == last:
            out[-1] = ((out[-1][0][0], b), out[-1][1])
            continue
        out.append(((a, b), [charges[i].release for i in covering]))
        last = covering
    return out


def compose_rows(charges: Iterable[Charge], delta: float) -> PrivacySpent:
    """Epsilon at `delta` of charges on possibly disjoint rows: the worst cell (parallel composition)."""
    worst: PrivacySpent | None = None
    for rows, releases in cells(charges):
        spent = compose(releases, delta)
        if worst is None or spent.epsilon > worst.epsilon:
            worst = replace(spent, rows=rows)
    return worst or compose([], delta)


class BudgetError(ValueError):
    """The budget cannot fit what was asked."""


def calibrate_noise(prior: list[Release], *, budget: float, delta: float, sample_rate: float,
                    steps: int, rel_tol: float = 0.01) -> float:
    """The smallest noise multiplier for `steps` more DP-SGD steps after `prior` within `budget` (see
    `_calibrate_noise`); a pure function, so remembered: the trainings of a cross-validation plan alike."""
    return _calibrate_noise(tuple(prior), budget, delta, sample_rate, steps, rel_tol)


@functools.lru_cache(maxsize=512)
def _calibrate_noise(prior: tuple[Release, ...], budget: float, delta: float, sample_rate: float,
                     steps: int, rel_tol: float) -> float:
    """The smallest noise multiplier (within `rel_tol`, at least MIN_NOISE) for which the prior
    releases plus `steps` more DP-SGD steps at `sample_rate` stay within `budget` epsilon at `delta`
    (PRV at EPS_ERROR, as every charge is accounted).

    The search runs on a coarser PRV (SEARCH_EPS_ERROR) and only its last steps at EPS_ERROR:
    the same answer with about a third of the fine PRV evaluations (a partner's round 0 planning
    was seconds of accounting per partner, the bulk of a 100-partner DP simulation)."""
    def fits(sigma: float, eps_error: float = EPS_ERROR) -> bool:
        return compose([*prior, Release(sigma, sample_rate, steps)], delta, eps_error=eps_error).epsilon <= budget

    already = compose(prior, delta).epsilon
    if already >= budget:
        raise BudgetError(f"the budget is spent: epsilon {already:.3f} of {budget:g}")
    rough = _search(lambda s: fits(s, SEARCH_EPS_ERROR), prior, budget=budget, delta=delta, sample_rate=sample_rate,
                    steps=steps, rel_tol=rel_tol)
    # the fine check: from the rough answer, step out until the fine PRV brackets it, then bisect
    step = 1 + 4 * rel_tol
    if fits(rough):
        hi, lo = rough, rough / step
        while lo >= MIN_NOISE and fits(lo):
            hi, lo = lo, lo / step
        if lo < MIN_NOISE:
            return MIN_NOISE if fits(MIN_NOISE) else _bisect(fits, MIN_NOISE, hi, rel_tol)
    else:
        lo, hi = rough, rough * step
        while not fits(hi):
            lo, hi = hi, hi * step
            if hi > MAX_NOISE:
                raise BudgetError(f"no noise multiplier ≤ {MAX_NOISE:g} fits {steps} steps into the "
                                  f"remaining budget ({budget - already:.3f})")
    return _bisect(fits, lo, hi, rel_tol)


def _bisect(fits: Callable[[float], bool], lo: float, hi: float, rel_tol: float) -> float:
    """Given fits(hi) and not fits(lo): the smallest fitting sigma to within `rel_tol` (geometric)."""
    while hi / lo > 1 + rel_tol:
        mid = math.sqrt(lo * hi)
        hi, lo = (mid, lo) if fits(mid) else (hi, mid)
    return hi


def _search(fits: Callable[[float], bool], prior: list[Release], *, budget: float, delta: float,
            sample_rate: float, steps: int, rel_tol: float) -> float:
    """Bracket by doubling from 1 (skipping PRV where the fast RDP bound already fits: an upper
    bound), halve down to MIN_NOISE, bisect; BudgetError when nothing up to MAX_NOISE fits."""
    hi = 1.0
    # RDP alone may never fit where PRV does (a prior near the budget), so PRV has the last word
    while epsilon_rdp([*prior, Release(hi, sample_rate, steps)], delta) > budget and not fits(hi):
        hi *= 2
        if hi > MAX_NOISE:
            raise BudgetError(f"no noise multiplier ≤ {MAX_NOISE:g} fits {steps} steps into the remaining "
                              f"budget ({budget - compose(prior, delta).epsilon:.3f})")
    lo = hi / 2
    while lo >= MIN_NOISE and fits(lo):
        hi, lo = lo, lo / 2
    if hi <= MIN_NOISE or (lo < MIN_NOISE and fits(MIN_NOISE)):
        return MIN_NOISE
    return _bisect(fits, lo, hi, rel_tol)
