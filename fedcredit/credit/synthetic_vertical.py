"""A seeded synthetic cross-industry consortium for vertical federation (`fedcredit synth --vertical`).

ONE population and ONE ground-truth default process; three parties each see a different side of the
same customers: a lender (bank: account facts and the `default` label), a payments platform
(transaction behaviour) and a credit bureau (repayment history). Default depends on three latent traits
— financial stress, payment discipline, impulsivity — plus income and age; the lender sees stress only
through utilisation, the platform sees impulsivity and stress, the bureau sees discipline. So each
party's columns add to the lender's own (measured in tests/credit/test_synthetic_vertical.py).

Each party holds a random share of a common population (lender 92 %, platform 87 %, bureau 90 %) plus
customers only it knows (6 % of the population each); keys are strings ("C-004217"), the platform writes
some in lower case or with spaces around them (normalisation joins them), and every file has its own
row order. Deterministic per seed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w

from fedcredit.credit.progress import Progress, report
from fedcredit.credit.synthetic_files import FORMATS, _write_frame, write_folder

VERSION = "1"
LABEL = "default"
HOUSING = ("rent", "own", "mortgage")
SEGMENT = ("mass", "affluent", "private")
TIER = ("basic", "plus", "premium")
UNKNOWN_LATE = 98   # the bureau's code for "not reported"
MIN_POPULATION = 1_000
DEFAULT_POPULATION = 20_000
# What `synth --vertical` writes: privacy on, the horizontal embedded default's budget
# (fedcredit.privacy.embedded.DEMO_PRIVACY: ten runs' worth of the per-run cap).
PRIVACY = {"mode": "sample", "epsilon": 10.0, "run_epsilon": 1.0, "delta": 1e-6}


@dataclass(frozen=True)
class Party:
    """One party: who it is, its key column, what share of the common population it holds."""

    name: str
    kind: str
    id: str
    share: float
    entry: dict[str, Any]   # its column keys in scenario.toml (label, numeric, categorical, missing)


PARTIES = (
    Party("lender", "bank", "customer_id", 0.92,
          {"label": LABEL, "bad": 1, "numeric": ["age", "income", "credit_limit", "utilization", "tenure_months"],
           "categorical": ["housing", "segment"], "levels": {"housing": list(HOUSING), "segment": list(SEGMENT)}}),
    Party("platform", "platform", "customer_ref", 0.87,
          {"numeric": ["monthly_spend", "txn_count", "gambling_share", "cash_withdrawal_share", "spend_volatility",
                       "night_share"],
           "categorical": ["wallet_tier"], "levels": {"wallet_tier": list(TIER)}}),
    Party("bureau", "bureau", "customer_id", 0.90,
          {"numeric": ["late_30_59", "late_60_89", "late_90", "open_lines", "inquiries_6m",
                       "months_since_delinquency", "oldest_account_years"],
           "missing": {"late_90": [UNKNOWN_LATE]}}),
)
EXTRA_SHARE = 0.06   # customers only one party knows, per party, as a share of the common population


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def population(rows: int, seed: int) -> pd.DataFrame:
    """Every customer any party knows (`rows` common + EXTRA_SHARE·rows per party): the true traits,
    every party's columns as recorded, the label, the key, and `holder`: -1 common, else the party index
    of a customer only that party knows."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(b"vertical")]))
    extra = int(round(EXTRA_SHARE * rows))
    n = rows + extra * len(PARTIES)
    stress, discipline, impulsive = rng.standard_normal((3, n))

    # lender: demographics and account facts (stress only through utilisation)
    age = np.clip(np.rint(18 + rng.gamma(4.0, 5.5, n)), 18, 90)
    a = age - 18
    li = 0.03 * a - 0.0005 * a ** 2 + 0.5 * rng.standard_normal(n) - 0.15 * stress
    income = np.round(3000.0 * np.exp(li), 2)
    housing = np.where(rng.random(n) < _sigmoid(-1.5 + 0.06 * a + 0.8 * li), np.where(rng.random(n) < 0.5, 1, 2), 0)
    segment = np.digitize(li + 0.3 * rng.standard_normal(n), [0.6, 1.3])
    credit_limit = np.round(income * np.exp(1.0 + 0.4 * rng.standard_normal(n)), -2)
    utilization = np.round(1.1 * _sigmoid(-1.0 + 0.7 * stress + 0.9 * rng.standard_normal(n)), 3)
    tenure = np.minimum(12 * a, np.rint(rng.gamma(2.0, 30.0, n)))

    # platform: transaction behaviour (impulsivity, and stress through cash withdrawals)
    spend = np.round(0.4 * income * np.exp(0.2 * impulsive + 0.4 * rng.standard_normal(n)), 2)
    txn = rng.poisson(40 * np.exp(0.2 * impulsive + 0.3 * rng.standard_normal(n)))
    gambling = np.round(0.25 * _sigmoid(-3.0 + 1.3 * impulsive + 0.6 * rng.standard_normal(n)), 4)
    cash = np.round(_sigmoid(-2.0 + 0.7 * stress + 0.8 * rng.standard_normal(n)), 4)
    volatility = np.round(np.exp(-1.0 + 0.35 * impulsive + 0.25 * stress + 0.4 * rng.standard_normal(n)), 3)
    night = np.round(_sigmoid(-2.5 + 0.5 * impulsive + 0.8 * rng.standard_normal(n)), 4)
    tier = np.digitize(li + 0.5 * rng.standard_normal(n), [0.4, 1.2])

    # bureau: repayment history (discipline)
    lines = rng.poisson(2 + 0.08 * a * np.exp(0.2 * li))
    rate = (lines + 1) / 6 * np.exp(-1.5 - 1.0 * discipline + 0.3 * stress)
    late_30 = np.minimum(rng.poisson(rate), 20)
    late_60 = np.minimum(rng.poisson(0.4 * rate * np.exp(-0.4 * discipline)), 20)
    late_90 = np.minimum(rng.poisson(0.25 * rate * np.exp(-0.6 * discipline)), 20)
    inquiries = rng.poisson(np.exp(-0.2 + 0.5 * stress))
    since = np.where(late_30 + late_60 + late_90 > 0, np.rint(rng.gamma(1.5, 12.0 * np.exp(0.3 * discipline), n)),
                     np.nan)
    oldest = np.round(np.minimum(a, rng.gamma(2.0, 3.0 + 0.15 * a, n)), 1)

    logit = (-3.0 + 0.8 * stress - 1.0 * discipline + 0.7 * impulsive - 0.5 * li
             + 0.0004 * (age - 50) ** 2 + 0.25 * (housing == 0) + 0.5 * rng.standard_normal(n))
    default = (rng.random(n) < _sigmoid(logit)).astype(np.int64)

    # what is recorded: some income unknown at the lender, some severe lates not reported to the bureau
    income_obs = np.where(rng.random(n) < 0.03, np.nan, income)
    late_90_obs = np.where(rng.random(n) < 0.01, UNKNOWN_LATE, late_90)
    ids = rng.choice(1_000_000, size=n, replace=False)
    holder = np.full(n, -1)
    holder[rows:] = np.repeat(np.arange(len(PARTIES)), extra)
    return pd.DataFrame({
        "key": [f"C-{i:06d}" for i in ids], "holder": holder,
        "age": age.astype(np.int64), "income": income_obs, "credit_limit": credit_limit, "utilization": utilization,
        "tenure_months": tenure.astype(np.int64), "housing": np.asarray(HOUSING, dtype=object)[housing],
        "segment": np.asarray(SEGMENT, dtype=object)[segment],
        "monthly_spend": spend, "txn_count": txn.astype(np.int64), "gambling_share": gambling,
        "cash_withdrawal_share": cash, "spend_volatility": volatility, "night_share": night,
        "wallet_tier": np.asarray(TIER, dtype=object)[tier],
        "late_30_59": late_30.astype(np.int64), "late_60_89": late_60.astype(np.int64),
        "late_90": late_90_obs.astype(np.int64), "open_lines": lines.astype(np.int64),
        "inquiries_6m": inquiries.astype(np.int64), "months_since_delinquency": since,
        "oldest_account_years": oldest, LABEL: default,
    })


def party_frame(pop: pd.DataFrame, index: int, seed: int) -> pd.DataFrame:
    """Party `index`'s file: its share of the common customers plus its own, its columns, its own order."""
    party = PARTIES[index]
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(party.name.encode())]))
    held = np.flatnonzero(((pop["holder"] == -1).to_numpy() & (rng.random(len(pop)) < party.share))
                          | (pop["holder"] == index).to_numpy())
    held = rng.permutation(held)
    columns = [*party.entry.get("numeric", ()), *party.entry.get("categorical", ())]
    if "label" in party.entry:
        columns.append(party.entry["label"])
    frame = pop.iloc[held][columns].reset_index(drop=True)
    keys = pop["key"].to_numpy()[held].astype(object)
    if party.kind == "platform":   # the same customers, spelled another way
        lower = rng.random(len(keys)) < 0.3
        spaced = rng.random(len(keys)) < 0.2
        keys = np.where(lower, np.char.lower(keys.astype(str)), keys).astype(object)
        keys = np.where(spaced, np.char.add(np.char.add("  ", keys.astype(str)), " "), keys).astype(object)
    frame.insert(0, party.id, keys)
    return frame


def scenario(rows: int, seed: int, fmt: str, sizes: dict[str, int]) -> dict[str, Any]:
    return {
        "federation": {"partitioning": "vertical", "model": "logistic"},
        "privacy": dict(PRIVACY),
        "partners": [{"name": p.name, "kind": p.kind, "data": p.name + FORMATS[fmt], "id": p.id, **p.entry}
                     for p in PARTIES],
        "synthetic": {"generator": "credit.synthetic_vertical", "version": VERSION, "seed": int(seed),
                      "format": fmt, "population": int(rows), "rows": sizes},
    }


def write_vertical_consortium(out_dir: Path, *, rows: int = DEFAULT_POPULATION, seed: int = 0, fmt: str = "csv",
                              replace: bool = False, on_progress: Progress | None = None) -> Path:
    """Write lender, platform and bureau files plus a vertical `scenario.toml` into `out_dir`,
    atomically (the rules of `synthetic_files.write_consortium`: new or empty folder, or with `replace`
    a synthetic consortium only). `rows` is the common population. Returns the scenario path;
    FileExistsError says why a folder is refused, ValueError a bad argument."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {list(FORMATS)}, got {fmt!r}")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < MIN_POPULATION:
        raise ValueError(f"rows must be a whole number ≥ {MIN_POPULATION} (the common population), got {rows!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")

    def fill(tmp: Path) -> None:
        report(on_progress, 0, len(PARTIES), f"generating {rows:,} customers")
        pop = population(rows, seed)
        sizes: dict[str, int] = {}
        for i, party in enumerate(PARTIES):
            frame = party_frame(pop, i, seed)
            _write_frame(frame, tmp / (party.name + FORMATS[fmt]), fmt)
            sizes[party.name] = len(frame)
            report(on_progress, i + 1, len(PARTIES), f"wrote {party.name} ({len(frame):,} rows)")
        text = ("# Synthetic cross-industry consortium written by credit.synthetic_vertical: the same customers,\n"
                "# other columns at each party; data paths are relative to this file.\n\n"
                + tomli_w.dumps(scenario(rows, seed, fmt, sizes)))
        (tmp / "scenario.toml").write_text(text, encoding="utf-8")

    return write_folder(out_dir, fill, replace=replace)
