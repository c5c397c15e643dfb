"""A seeded, realistic synthetic credit consortium: the project's embedded default data.

Every partner draws its customers from its own population (covariate shift: banks see
older, richer, low-utilisation customers; payment platforms see young gig workers with
thin files) but labels them with ONE shared ground truth P(default | x), so a model
trained on the pooled data is valid everywhere — and a small partner gains by joining.

Generation is vectorised per partner and deterministic per (seed, partner name);
`synthetic_files.write_consortium` streams partner by partner, so memory is bounded by the largest one.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

GENERATOR_VERSION = "1"

NUMERIC = ["age", "income", "debt_ratio", "utilization", "credit_lines", "late_30_59",
           "late_60_89", "late_90", "years_at_address", "savings", "loan_amount"]
HOUSING = ("rent", "own", "mortgage", "other")
EMPLOYMENT = ("salaried", "self_employed", "gig", "retired", "unemployed")
REGION = ("north", "south", "east", "west", "central")
CATEGORICAL = ["housing", "employment", "region"]
LABEL = "default"
CODED_MISSING = (96, 98)   # late_90: 96 = unknown, 98 = refused (as in GiveMeSomeCredit)

DATASET: dict[str, Any] = {
    "label": LABEL,
    "bad": 1,
    "numeric": list(NUMERIC),
    "categorical": list(CATEGORICAL),
    "missing": {"late_90": list(CODED_MISSING)},
}

KINDS = ("bank", "insurer", "platform")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")   # also a safe file name
FORMATS = {"csv": ".csv", "csv.gz": ".csv.gz", "parquet": ".parquet"}
MIN_PARTNER_ROWS = 400
# Smallest partner of each kind in `scaled_consortium`: ≳ 40 expected defaults each, so
# every partner has enough bad rows to train and test on.
_KIND_MIN_ROWS = {"bank": 800, "insurer": 550, "platform": MIN_PARTNER_ROWS}

# Working-age employment mix (salaried, self_employed, gig, unemployed); retirement
# follows from age.
_KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "bank": dict(age_mean=47.0, income_median=4300.0, util_shift=-0.55, lines_mean=9.0,
                 employment_mix=(0.78, 0.13, 0.04, 0.05), region_mix=(0.26, 0.14, 0.16, 0.16, 0.28),
                 ownership=0.5, savings_zero=0.25, loan_multiple=5.0,
                 income_missing=0.02, years_missing=0.02, savings_missing=0.01),
    "insurer": dict(age_mean=41.0, income_median=3500.0, util_shift=0.0, lines_mean=6.5,
                    employment_mix=(0.66, 0.16, 0.10, 0.08), region_mix=(0.2, 0.2, 0.2, 0.2, 0.2),
                    ownership=0.2, savings_zero=0.4, loan_multiple=3.0,
                    income_missing=0.04, years_missing=0.03, savings_missing=0.03),
    "platform": dict(age_mean=33.0, income_median=2700.0, util_shift=0.3, lines_mean=3.2,
                     employment_mix=(0.38, 0.15, 0.35, 0.12), region_mix=(0.05, 0.36, 0.30, 0.24, 0.05),
                     ownership=-0.5, savings_zero=0.55, loan_multiple=0.8,
                     income_missing=0.30, years_missing=0.06, savings_missing=0.15),
}


@dataclass(frozen=True)
class PartnerProfile:
    """One partner's customer population. Unset shift parameters default from `kind`.

    age_mean: mean age; income_median: monthly income of a salaried 40-year-old;
    util_shift: logit shift of card utilisation; lines_mean: mean open credit lines;
    employment_mix: working-age shares of (salaried, self_employed, gig, unemployed);
    region_mix: shares of REGION; ownership: propensity to own/mortgage a home;
    savings_zero: share with no savings; loan_multiple: loan size in monthly incomes;
    income_missing / years_missing / savings_missing: base missing rates; coded_rate:
    share of late_90 replaced by the codes 96/98.
    """

    name: str
    kind: str
    rows: int
    age_mean: float | None = None
    income_median: float | None = None
    util_shift: float | None = None
    lines_mean: float | None = None
    employment_mix: tuple[float, ...] | None = None
    region_mix: tuple[float, ...] | None = None
    ownership: float | None = None
    savings_zero: float | None = None
    loan_multiple: float | None = None
    income_missing: float | None = None
    years_missing: float | None = None
    savings_missing: float | None = None
    coded_rate: float = 0.005

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"partner name {self.name!r}: use 1-64 letters, digits, '-', '_' or '.'")
        if self.kind not in KINDS:
            raise ValueError(f"partner '{self.name}': kind must be one of {list(KINDS)}, got {self.kind!r}")
        if not isinstance(self.rows, (int, np.integer)) or isinstance(self.rows, bool) or self.rows < 1:
            raise ValueError(f"partner '{self.name}': rows must be a positive integer, got {self.rows!r}")
        for key, value in _KIND_DEFAULTS[self.kind].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        object.__setattr__(self, "rows", int(self.rows))
        for key, n in (("employment_mix", 4), ("region_mix", len(REGION))):
            mix = np.asarray(getattr(self, key), dtype=float)
            if mix.shape != (n,) or (mix < 0).any() or mix.sum() <= 0:
                raise ValueError(f"partner '{self.name}': {key} needs {n} non-negative shares")
            object.__setattr__(self, key, tuple(float(v) for v in mix / mix.sum()))
        for key in ("savings_zero", "income_missing", "years_missing", "savings_missing", "coded_rate"):
            if not 0.0 <= float(getattr(self, key)) < 1.0:
                raise ValueError(f"partner '{self.name}': {key} must be in [0, 1)")


@dataclass(frozen=True)
class ConsortiumSpec:
    """The partners of a synthetic consortium and the seed that generates their rows."""

    partners: tuple[PartnerProfile, ...]
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "partners", tuple(self.partners))
        names = [p.name for p in self.partners]
        if not names:
            raise ValueError("a consortium needs at least one partner")
        if len(set(names)) != len(names):
            raise ValueError("partner names must be unique")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")

    @property
    def total_rows(self) -> int:
        return sum(p.rows for p in self.partners)


def default_consortium(seed: int = 0) -> ConsortiumSpec:
    """A large bank, a mid-sized insurer and a small payments platform."""
    return ConsortiumSpec((
        PartnerProfile("bank-a", "bank", 40_000),
        PartnerProfile("insurer-b", "insurer", 15_000),
        PartnerProfile("platform-c", "platform", 3_000),
    ), seed=seed)


def scaled_consortium(n_partners: int, total_rows: int, seed: int = 0) -> ConsortiumSpec:
    """`n_partners` partners of log-normally distributed sizes summing to `total_rows`.

    Larger partners tend to be banks, smaller ones platforms; each partner's population
    parameters are jittered around its kind's defaults. Every partner has at least
    MIN_PARTNER_ROWS rows (banks 800, insurers 550), so each expects ≳ 40 defaults.
    """
    if n_partners < 1:
        raise ValueError("n_partners must be ≥ 1")
    if total_rows < n_partners * MIN_PARTNER_ROWS:
        raise ValueError(f"total_rows={total_rows} is too small: {n_partners} partners need at "
                         f"least {MIN_PARTNER_ROWS} rows each ({n_partners * MIN_PARTNER_ROWS})")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5CA1ED]))
    weights = rng.lognormal(0.0, 1.0, n_partners)
    extra = total_rows - n_partners * MIN_PARTNER_ROWS
    share = extra * weights / weights.sum()
    sizes = np.floor(share).astype(np.int64)
    remainder = extra - int(sizes.sum())
    sizes[np.argsort(-(share - sizes), kind="stable")[:remainder]] += 1
    sizes += MIN_PARTNER_ROWS

    # Kind by size rank (0 = largest): banks are big, platforms small; a kind is only
    # eligible if the partner is large enough to expect enough defaults.
    rank = np.empty(n_partners)
    rank[np.argsort(-sizes, kind="stable")] = np.linspace(0.0, 1.0, n_partners)
    width = len(str(n_partners))
    partners = []
    for i in range(n_partners):
        r, rows = rank[i], int(sizes[i])
        p = np.array([0.05 + 0.55 * (1 - r), 0.30, 0.10 + 0.50 * r])
        p *= [rows >= _KIND_MIN_ROWS[k] for k in KINDS]
        kind = KINDS[int(rng.choice(3, p=p / p.sum()))]
        d = _KIND_DEFAULTS[kind]
        jitter = dict(
            age_mean=float(d["age_mean"] + rng.normal(0, 2.0)),
            income_median=float(d["income_median"] * np.exp(rng.normal(0, 0.1))),
            util_shift=float(d["util_shift"] + rng.normal(0, 0.15)),
            lines_mean=float(d["lines_mean"] * np.exp(rng.normal(0, 0.1))),
            employment_mix=tuple(float(v) for v in rng.dirichlet(np.asarray(d["employment_mix"]) * 60)),
            region_mix=tuple(float(v) for v in rng.dirichlet(np.asarray(d["region_mix"]) * 15)),
            income_missing=float(np.clip(d["income_missing"] * np.exp(rng.normal(0, 0.3)), 0.0, 0.6)),
        )
        partners.append(PartnerProfile(f"{kind}-{i + 1:0{width}d}", kind, rows, **jitter))
    return ConsortiumSpec(tuple(partners), seed=seed)


# ---- generation ---------------------------------------------------------------

def _rng(profile: PartnerProfile, seed: int) -> np.random.Generator:
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(profile.name.encode())]))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _pick(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Row-wise categorical draw from an (n, k) probability matrix → codes 0..k-1."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return np.minimum((u[:, None] > cum).sum(axis=1), probs.shape[1] - 1)


_LOG_REF_INCOME = np.log(3000.0)
# Shared ground-truth effects of the categorical columns (log-odds).
_EMPLOYMENT_RISK = np.array([0.0, 0.20, 0.35, 0.05, 0.70])        # EMPLOYMENT order
_HOUSING_RISK = np.array([0.15, -0.30, -0.15, 0.30])              # HOUSING order
_REGION_RISK = np.array([-0.15, 0.25, 0.05, -0.10, 0.0])          # REGION order
_INTERCEPT = -4.0   # tuned once, globally: bank ≈ 5 %, insurer ≈ 8 %, platform ≈ 11 % default


def default_logit(x: dict[str, np.ndarray], hidden: np.ndarray) -> np.ndarray:
    """The shared ground truth: log-odds of default from TRUE (unmasked) values.

    `x` holds numeric arrays plus integer codes `employment`, `housing`, `region`;
    `hidden` is a partner-independent latent (payment discipline), seen only through
    the late counts. Non-linear: log income, a utilisation hinge at 0.8, U-shaped age
    (lowest risk at 65), saturating late counts, debt ratio hurting more at low income,
    thin files. Callers add N(0, 0.6²) log-odds noise: the irreducible part.
    """
    li = np.log(x["income"]) - _LOG_REF_INCOME
    util, age, dr = x["utilization"], x["age"], np.minimum(x["debt_ratio"], 4.0)
    lines = x["credit_lines"]
    z = (_INTERCEPT
         - 0.4 * li
         + 1.0 * util + 1.2 * np.maximum(util - 0.8, 0.0)
         + 0.0003 * (age - 65.0) ** 2
         + 1.0 * (1 - np.exp(-x["late_30_59"] / 1.5))
         + 1.2 * (1 - np.exp(-x["late_60_89"] / 1.0))
         + 1.6 * (1 - np.exp(-x["late_90"] / 1.0))
         + 0.6 * dr * (1.0 + 0.5 * np.maximum(-li, 0.0))
         - 0.15 * np.log1p(lines)
         - 0.06 * np.log1p(x["savings"] / 100.0)
         + 0.15 * np.log(x["loan_amount"] / (4.0 * x["income"]))
         - 0.03 * np.minimum(x["years_at_address"], 10.0)
         + _EMPLOYMENT_RISK[x["employment"]]
         + _HOUSING_RISK[x["housing"]]
         + _REGION_RISK[x["region"]]
         + 1.0 * hidden)
    return z


def generate_partner(profile: PartnerProfile, seed: int) -> pd.DataFrame:
    """One partner's table (columns: DATASET numeric + categorical + `default`).

    Deterministic per (seed, profile.name) for a given profile. age, credit_lines,
    late_* and `default` are int64 (late_90 holds the codes 96/98 for unknown/refused);
    the other numeric columns are float64 with NaN for missing: income, savings,
    years_at_address (partner-dependent rates) and utilization (no credit lines).
    Categorical columns hold plain strings and are never missing.
    """
    rng = _rng(profile, seed)
    n = profile.rows

    # Age (18+ with a right tail) and employment; retirement follows age.
    shape = 4.0
    age = 18.0 + rng.gamma(shape, (profile.age_mean - 18.0) / shape, n)
    age = np.clip(np.rint(age), 18, 95)
    retired = rng.random(n) < _sigmoid((age - 64.0) / 2.5)
    work = np.searchsorted(np.cumsum(profile.employment_mix), rng.random(n) * 0.999999, side="right")
    employment = np.where(retired, 3, np.array([0, 1, 2, 4])[np.minimum(work, 3)])
    region = np.minimum(np.searchsorted(np.cumsum(profile.region_mix), rng.random(n) * 0.999999,
                                        side="right"), len(REGION) - 1)

    # Monthly income: log-normal, by employment, age (concave) and region.
    inc_emp = np.array([0.0, 0.05, -0.35, -0.25, -0.9])[employment]
    inc_sd = np.array([0.5, 0.8, 0.55, 0.45, 0.6])[employment]
    inc_region = np.array([0.05, -0.10, -0.05, 0.0, 0.10])[region]
    a = age - 18.0
    log_income = (np.log(profile.income_median) + inc_emp + inc_region
                  + 0.035 * a - 0.0006 * a**2 - 0.035 * 22 + 0.0006 * 22**2
                  + inc_sd * rng.standard_normal(n))
    income = np.round(np.exp(log_income), 2)
    income = np.maximum(income, 50.0)
    li = np.log(income) - _LOG_REF_INCOME

    # Housing: multinomial logit on age, income and the partner's ownership propensity.
    score = np.column_stack([
        np.zeros(n),                                                            # rent
        -2.4 + 0.07 * (age - 30.0) + 0.5 * li + profile.ownership,              # own
        -0.4 + 0.9 * li - 0.0025 * (age - 42.0) ** 2 + profile.ownership,       # mortgage
        -1.0 - 0.06 * (age - 18.0),                                             # other
    ])
    housing = _pick(rng, np.exp(score - score.max(axis=1, keepdims=True)))

    # Credit file: open lines (over-dispersed, thin for the young and for platforms).
    lam = (profile.lines_mean * np.exp(0.3 * li) * np.minimum(1.0, (age - 16.0) / 14.0)
           * rng.gamma(3.0, 1 / 3.0, n))
    credit_lines = rng.poisson(lam)

    # Revolving utilisation: logit-normal, some over the limit; none without credit lines
    # (0 for the ground truth, recorded as missing).
    util = 1.15 * _sigmoid(-0.9 + profile.util_shift - 0.5 * li - 0.02 * (age - 40.0)
                           + 1.3 * rng.standard_normal(n))
    util = np.where(credit_lines == 0, 0.0, np.round(util, 4))

    # Debt payments / income: heavier at low income and with a mortgage.
    debt_ratio = np.round(np.exp(np.log(0.2) - 0.15 * li + 0.6 * (housing == 2) + 0.15 * (housing == 1)
                                 + 0.65 * rng.standard_normal(n)), 4)

    # Savings: many zeros, log-normal otherwise; loans scale with income.
    no_savings = rng.random(n) < _sigmoid(np.log(profile.savings_zero / (1 - profile.savings_zero))
                                          - 0.8 * li)
    savings = np.where(no_savings, 0.0,
                       np.round(np.exp(np.log(income) + 0.3 + 0.025 * (age - 40.0)
                                       + 1.2 * rng.standard_normal(n)), 2))
    loan_amount = np.round(np.exp(np.log(income * profile.loan_multiple) + 0.8 * rng.standard_normal(n)), 2)
    loan_amount = np.maximum(loan_amount, 50.0)

    years = np.minimum(age - 18.0, rng.gamma(1.5, (2.0 + 0.12 * (age - 18.0) + 4.0 * (housing == 1)
                                                   + 2.0 * (housing == 2)) / 1.5, n))
    years_at_address = np.round(years, 1)

    # Late payments: driven by a partner-independent latent, utilisation and income,
    # through one shared mechanism (so P(default | x) stays the same everywhere).
    hidden = rng.standard_normal(n)
    exposure = np.minimum(1.0, (credit_lines + 0.5) / 8.0)
    rate = exposure * np.exp(-2.0 + 1.0 * hidden + 1.2 * (util - 0.5) - 0.3 * li)
    late_30_59 = np.minimum(rng.poisson(rate), 20)
    late_60_89 = np.minimum(rng.poisson(0.35 * rate * np.exp(0.3 * hidden)), 20)
    late_90 = np.minimum(rng.poisson(0.25 * rate * np.exp(0.5 * hidden)), 20)

    truth = {"age": age, "income": income, "debt_ratio": debt_ratio, "utilization": util,
             "credit_lines": credit_lines, "late_30_59": late_30_59, "late_60_89": late_60_89,
             "late_90": late_90, "years_at_address": years_at_address, "savings": savings,
             "loan_amount": loan_amount, "employment": employment, "housing": housing,
             "region": region}
    logit = default_logit(truth, hidden) + 0.6 * rng.standard_normal(n)   # irreducible noise
    default = (rng.random(n) < _sigmoid(logit)).astype(np.int64)

    # What the partner actually records: missing income (more for gig/self-employed),
    # savings and years at address, coded unknown/refused late_90.
    base = profile.income_missing
    miss_logit = np.log(max(base, 1e-6) / (1 - base)) + np.array([-0.4, 0.6, 0.7, -0.3, 0.3])[employment]
    income_obs = np.where(rng.random(n) < _sigmoid(miss_logit), np.nan, income)
    years_obs = np.where(rng.random(n) < profile.years_missing, np.nan, years_at_address)
    savings_obs = np.where(rng.random(n) < profile.savings_missing, np.nan, savings)
    util_obs = np.where(credit_lines == 0, np.nan, util)   # undefined without credit lines
    coded = rng.random(n) < profile.coded_rate
    late_90_obs = np.where(coded, np.where(rng.random(n) < 0.25, 96, 98), late_90)

    return pd.DataFrame({
        "age": age.astype(np.int64),
        "income": income_obs,
        "debt_ratio": debt_ratio,
        "utilization": util_obs,
        "credit_lines": credit_lines.astype(np.int64),
        "late_30_59": late_30_59.astype(np.int64),
        "late_60_89": late_60_89.astype(np.int64),
        "late_90": late_90_obs.astype(np.int64),
        "years_at_address": years_obs,
        "savings": savings_obs,
        "loan_amount": loan_amount,
        "housing": np.asarray(HOUSING, dtype=object)[housing],
        "employment": np.asarray(EMPLOYMENT, dtype=object)[employment],
        "region": np.asarray(REGION, dtype=object)[region],
        LABEL: default,
    })
