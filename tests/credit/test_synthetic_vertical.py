"""The synthetic cross-industry consortium's ground truth: every party's columns add to the lender's
own (plain logistic regression on the common customers, a held-out quarter), and generation is seeded."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fedcredit.credit.synthetic_vertical import LABEL, PARTIES, UNKNOWN_LATE, party_frame, population


def _design(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    x = frame[columns].copy()
    if "late_90" in x:
        x["late_90"] = x["late_90"].where(x["late_90"] != UNKNOWN_LATE)
    for col in list(x.columns):
        if not pd.api.types.is_numeric_dtype(x[col]):
            x = pd.get_dummies(x, columns=[col], drop_first=True, dtype=float)
        elif x[col].isna().any():
            x[col + "_missing"] = x[col].isna().astype(float)
            x[col] = x[col].fillna(x[col].median())
    return x.to_numpy(dtype=float)


def _auc(frame: pd.DataFrame, columns: list[str]) -> float:
    x_train, x_test, y_train, y_test = train_test_split(_design(frame, columns), frame[LABEL].to_numpy(),
                                                        test_size=0.25, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x_train, y_train)
    return float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))


def test_each_party_adds_to_the_lenders_own_columns() -> None:
    pop = population(12_000, seed=0)
    common = pop[pop["holder"] == -1]
    cols = {p.name: [*p.entry.get("numeric", ()), *p.entry.get("categorical", ())] for p in PARTIES}
    lender = _auc(common, cols["lender"])
    with_platform = _auc(common, cols["lender"] + cols["platform"])
    with_bureau = _auc(common, cols["lender"] + cols["bureau"])
    joined = _auc(common, cols["lender"] + cols["platform"] + cols["bureau"])
    assert 0.58 < lender < 0.70, lender
    assert with_platform > lender + 0.02 and with_bureau > lender + 0.03, (lender, with_platform, with_bureau)
    assert joined > max(with_platform, with_bureau) + 0.02 and joined > lender + 0.07, joined


def test_generation_is_seeded() -> None:
    a, b, c = population(1_000, seed=1), population(1_000, seed=1), population(1_000, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a[LABEL].equals(c[LABEL])
    pd.testing.assert_frame_equal(party_frame(a, 2, 1), party_frame(b, 2, 1))
