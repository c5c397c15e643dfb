"""Public credit datasets from `../shared/data`, read in place and split into partners.

The files are never copied into the repository; a split writes partner tables to a folder
the caller chooses (a temp or benchmark folder) together with a scenario file.
"""

from __future__ import annotations

import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import tomli_w

from fedcredit.credit.errors import InputError
from fedcredit.credit.loading import read_table

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
TAIWAN = SHARED_DATA / "taiwan-default-credit-card" / "UCI_Credit_Card.csv.gz"
GERMAN = SHARED_DATA / "german-credit" / "german.data.gz"

TAIWAN_DATASET = {
    "label": "next_payment",
    "bad": 1,
    "numeric": ["LIMIT_BAL", "AGE", *[f"BILL_AMT{i}" for i in range(1, 7)], *[f"PAY_AMT{i}" for i in range(1, 7)]],
    "categorical": ["SEX", "EDUCATION", "MARRIAGE", "PAY_0", *[f"PAY_{i}" for i in range(2, 7)]],
    "drop": ["ID"],
    # the public codebook (UCI #350, plus the undocumented codes found in the data)
    "levels": {"SEX": [1, 2], "EDUCATION": list(range(7)), "MARRIAGE": [0, 1, 2, 3],
               **{col: list(range(-2, 10)) for col in ("PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6")}},
}
# Three partners of unequal size, split by education level (codes 0/4/5/6 join high school).
TAIWAN_PARTNERS = (("uni-bank", "bank", (2,)), ("grad-insurer", "insurer", (1,)),
                   ("school-platform", "platform", (3, 0, 4, 5, 6)))


def require(path: Path) -> Path:
    if not path.exists():
        raise InputError("shared dataset not found: it is read in place from ../shared/data "
                         "beside the project root", source=str(path))
    return path


def with_protected(dataset: dict, protected: Sequence[str]) -> dict:
    """A [dataset] table with `protected` moved out of the feature lists (and their `levels` kept for them)."""
    if not protected:
        return dataset
    out = {**dataset, "protected": list(protected)}
    for key in ("numeric", "categorical"):
        out[key] = [c for c in dataset.get(key, []) if c not in protected]
    return out


# Fair-lending test sets (issue 12): German by sex (personal_status codes after german.doc), age bands and
# foreign worker; Taiwan by SEX (1 male, 2 female) and age bands. 62: Regulation B's "elderly".
GERMAN_PROTECTED = ("personal_status", "age", "foreign_worker")
GERMAN_FAIRNESS = {"cutoff_score": 510, "reference": {"personal_status": "male", "age": "[25, 40)",
                                                     "foreign_worker": "not foreign"},
                   "groups": {"personal_status": {"male": ["A91", "A93", "A94"], "female": ["A92", "A95"]},
                              "age": [25, 40, 62], "foreign_worker": {"foreign": ["A201"], "not foreign": ["A202"]}}}
TAIWAN_PROTECTED = ("SEX", "AGE")
TAIWAN_FAIRNESS = {"cutoff_score": 520, "reference": {"SEX": 1, "AGE": 40}, "groups": {"AGE": [25, 40, 62]}}


def _staging(out_dir: str | Path) -> tuple[Path, Path]:
    """(the folder to write, a temp folder beside it to build it in): FileExistsError if the folder holds
    anything (a writer never replaces what it did not create)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not empty: choose a new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return out_dir, Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))


def _into_place(tmp: Path, out_dir: Path, scenario: dict) -> Path:
    """Write the scenario into the built folder and rename it into place; the scenario's path."""
    (tmp / "scenario.toml").write_text(tomli_w.dumps(scenario))
    if out_dir.exists():
        out_dir.rmdir()        # empty (`_staging` checked)
    tmp.rename(out_dir)
    return out_dir / "scenario.toml"


def write_taiwan_partners(out_dir: str | Path, *, rounds: int = 20, extra_federation: dict | None = None,
                          privacy: dict | None = None, scorecard: dict | None = None,
                          protected: Sequence[str] = (), fairness: dict | None = None) -> Path:
    """Split the Taiwan data into three partners by EDUCATION; return the scenario path.

    The cells are copied as written (read_table keeps CSV cells as text). `protected` columns are taken out
    of the features (e.g. `TAIWAN_PROTECTED`, with `fairness=TAIWAN_FAIRNESS`)."""
    frame = read_table(require(TAIWAN))
    out_dir, tmp = _staging(out_dir)
    partners = []
    for name, kind, codes in TAIWAN_PARTNERS:
        frame[frame["EDUCATION"].isin([str(c) for c in codes])].to_csv(tmp / f"{name}.csv", index=False)
        partners.append({"name": name, "kind": kind, "data": f"{name}.csv"})
    scenario = {"dataset": with_protected(TAIWAN_DATASET, protected), "partners": partners,
                "federation": {"rounds": rounds, "model": "logistic", **(extra_federation or {})}}
    if privacy:
        scenario["privacy"] = privacy
    if scorecard:
        scenario["scorecard"] = scorecard
    if fairness:
        scenario["fairness"] = fairness
    return _into_place(tmp, out_dir, scenario)



# Statlog German credit (UCI #144): 20 attributes and the class, space-separated, no header
# (names after german.doc). Codes like A11 are the codebook's; class 2 = bad.
GERMAN_COLUMNS = ("checking", "duration", "history", "purpose", "amount", "savings", "employment",
                  "installment_rate", "personal_status", "other_debtors", "residence_since", "property", "age",
                  "other_plans", "housing", "existing_credits", "job", "dependents", "telephone", "foreign_worker",
                  "class")
GERMAN_NUMERIC = ("duration", "amount", "installment_rate", "residence_since", "age", "existing_credits", "dependents")
GERMAN_DATASET = {
    "label": "class", "bad": 2, "numeric": list(GERMAN_NUMERIC),
    "categorical": [c for c in GERMAN_COLUMNS[:-1] if c not in GERMAN_NUMERIC],
}
# Three partners of unequal size, split by attribute 12 (most valuable property):
# real estate (282 rows), savings / life insurance (232), car or other / none known (486).
GERMAN_PARTNERS = (("estate-bank", "bank", ("A121",)), ("insurance-insurer", "insurer", ("A122",)),
                   ("car-platform", "platform", ("A123", "A124")))


def write_german_partners(out_dir: str | Path, *, rounds: int = 20, extra_federation: dict | None = None,
                          privacy: dict | None = None, protected: Sequence[str] = (),
                          fairness: dict | None = None) -> Path:
    """Split German credit (1,000 rows) into three partners by property; return the scenario path.

    The space-separated, headerless file is written as one CSV per partner with german.doc's names.
    `protected` columns are taken out of the features (e.g. `GERMAN_PROTECTED`, with
    `fairness=GERMAN_FAIRNESS`)."""
    frame = pd.read_csv(require(GERMAN), sep=r"\s+", header=None, names=list(GERMAN_COLUMNS), dtype=str)
    out_dir, tmp = _staging(out_dir)
    partners = []
    for name, kind, codes in GERMAN_PARTNERS:
        frame[frame["property"].isin(codes)].to_csv(tmp / f"{name}.csv", index=False)
        partners.append({"name": name, "kind": kind, "data": f"{name}.csv"})
    scenario = {"dataset": with_protected(GERMAN_DATASET, protected), "partners": partners,
                "federation": {"rounds": rounds, "model": "logistic", **(extra_federation or {})}}
    if privacy:
        scenario["privacy"] = privacy
    if fairness:
        scenario["fairness"] = fairness
    return _into_place(tmp, out_dir, scenario)


# ---- vertical splits (issue 11): the same customers, other columns at each party -----------------------

TAIWAN_LENDER = ("LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE", *[f"BILL_AMT{i}" for i in range(1, 7)])
TAIWAN_BUREAU = ("PAY_0", *[f"PAY_{i}" for i in range(2, 7)], *[f"PAY_AMT{i}" for i in range(1, 7)])
TAIWAN_CATEGORICAL = ("SEX", "EDUCATION", "MARRIAGE")
VERTICAL_KEY = "customer_id"
VERTICAL_LABEL = "default"


def taiwan_key(customer: int | str) -> str:
    """The customer key the Taiwan vertical split writes for the dataset's ID."""
    return f"TW-{int(customer):06d}"


def german_key(row: int) -> str:
    """The customer key the German vertical split writes for the file's row (0-based)."""
    return f"DE-{int(row):04d}"


def vertical_memberships(n: int, *, overlap: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Which of `n` customers the label holder and the passive party hold: `round(overlap·n)` both, the
    rest split (half and half, at random) between only-the-first and only-the-second; two bool arrays."""
    if not 0 < overlap <= 1:
        raise ValueError(f"overlap must be a share in (0, 1], got {overlap!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7E471CA1]))
    order = rng.permutation(n)
    both = int(round(overlap * n))
    only_first = (n - both) // 2
    first = np.zeros(n, dtype=bool)
    second = np.zeros(n, dtype=bool)
    first[order[:both + only_first]] = True
    second[order[:both]] = True
    second[order[both + only_first:]] = True
    return first, second


def _write_vertical(frame: pd.DataFrame, keys: list[str], parties: list[dict], out_dir: str | Path, *,
                    overlap: float, seed: int, privacy: dict | None, extra_federation: dict | None) -> Path:
    """Each party's columns of its share of the rows (`vertical_memberships`), keys first, each file in its
    own random order, plus a vertical scenario.toml; built in a temp folder and renamed into place."""
    holds = vertical_memberships(len(frame), overlap=overlap, seed=seed)
    frame = frame.assign(**{VERTICAL_KEY: keys})
    out_dir, tmp = _staging(out_dir)
    entries = []
    for i, (party, held) in enumerate(zip(parties, holds, strict=True)):
        columns = [VERTICAL_KEY, *party.get("numeric", ()), *party.get("categorical", ())]
        columns += [party["label"]] if "label" in party else []
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), i, 0x5B0FF1E]))
        rows = rng.permutation(np.flatnonzero(held))
        frame.iloc[rows][columns].to_csv(tmp / party["data"], index=False)
        entries.append({**party, "id": VERTICAL_KEY})
    scenario: dict = {"federation": {"partitioning": "vertical", "model": "logistic", **(extra_federation or {})},
                      "partners": entries}
    if privacy:
        scenario["privacy"] = privacy
    return _into_place(tmp, out_dir, scenario)


def write_taiwan_vertical(out_dir: str | Path, *, overlap: float = 0.85, seed: int = 0, privacy: dict | None = None,
                          extra_federation: dict | None = None) -> Path:
    """Split Taiwan by columns: a lender (LIMIT_BAL, SEX, EDUCATION, MARRIAGE, AGE, BILL_AMT1–6 and the
    label `default`) and a bureau (PAY_0, PAY_2–6 and PAY_AMT1–6), keyed by `taiwan_key(ID)`; column types and
    code lists as the horizontal Taiwan scenario's (`TAIWAN_DATASET`: SEX, EDUCATION, MARRIAGE and the PAY_x
    repayment-status codes categorical);
    `overlap` of all customers are in both files, the rest only in one (`vertical_memberships`), each file
    shuffled on its own. Returns the path of the vertical scenario (no [privacy] unless `privacy`)."""
    frame = read_table(require(TAIWAN)).rename(columns={"next_payment": VERTICAL_LABEL})
    categorical = set(TAIWAN_DATASET["categorical"])

    def columns(names: tuple[str, ...] | list[str]) -> dict:
        cats = [c for c in names if c in categorical]
        return {"numeric": [c for c in names if c not in categorical], "categorical": cats,
                "levels": {c: TAIWAN_DATASET["levels"][c] for c in cats}}

    parties = [
        {"name": "lender", "kind": "bank", "data": "lender.csv", "label": VERTICAL_LABEL, "bad": 1,
         **columns(TAIWAN_LENDER)},
        {"name": "bureau", "kind": "bureau", "data": "bureau.csv", **columns(TAIWAN_BUREAU)},
    ]
    keys = [taiwan_key(i) for i in frame["ID"]]
    return _write_vertical(frame, keys, parties, out_dir, overlap=overlap, seed=seed, privacy=privacy,
                           extra_federation=extra_federation)


# German by columns: the lender keeps the account and loan (attributes 1–10 and the class), an insurer the
# customer's circumstances (11–20).
GERMAN_LENDER = GERMAN_COLUMNS[:10]
GERMAN_INSURER = GERMAN_COLUMNS[10:20]


def write_german_vertical(out_dir: str | Path, *, overlap: float = 0.85, seed: int = 0, privacy: dict | None = None,
                          extra_federation: dict | None = None) -> Path:
    """Split German credit by columns: a lender (attributes 1–10, label `class`, bad 2) and an insurer
    (11–20), keyed by `german_key(row)`, as `write_taiwan_vertical`. Returns the scenario path."""
    frame = pd.read_csv(require(GERMAN), sep=r"\s+", header=None, names=list(GERMAN_COLUMNS), dtype=str)

    def columns(names: tuple[str, ...]) -> dict:
        return {"numeric": [c for c in names if c in GERMAN_NUMERIC],
                "categorical": [c for c in names if c not in GERMAN_NUMERIC]}
    parties = [{"name": "lender", "kind": "bank", "data": "lender.csv", "label": "class", "bad": 2,
                **columns(GERMAN_LENDER)},
               {"name": "insurer", "kind": "insurer", "data": "insurer.csv", **columns(GERMAN_INSURER)}]
    return _write_vertical(frame, [german_key(i) for i in range(len(frame))], parties, out_dir, overlap=overlap,
                           seed=seed, privacy=privacy, extra_federation=extra_federation)


def write_default_without_dp(out: str | Path, *, federation: dict | None = None) -> Path:
    """The embedded default consortium's scenario with privacy off (absolute paths to its vaults) and
    `federation` keys over its own, written as `out/scenario.toml`; returns that path (benchmarks)."""
    from fedcredit.privacy.embedded import default_scenario_path

    source = default_scenario_path()
    raw = tomllib.loads(source.read_text(encoding="utf-8"))
    raw["privacy"] = {"mode": "off"}
    raw["federation"] = {**raw.get("federation", {}), **(federation or {})}
    for p in raw["partners"]:
        for key in ("data", "key"):
            if p.get(key):
                p[key] = str((source.parent / p[key]).resolve())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scenario.toml").write_text(tomli_w.dumps(raw), encoding="utf-8")
    return out / "scenario.toml"
