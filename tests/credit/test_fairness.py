"""Protected columns and their groups: the scenario's rules, reading them apart from the features, and the
partner's score histograms by group (exact counts and sums that add up across partners)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedcredit.credit.errors import InputError
from fedcredit.credit.fairness import (
    MISSING_GROUP,
    OTHER_GROUP,
    FairnessSettings,
    FairnessTask,
    GroupScores,
    band_labels,
    clipped_logit,
    fairness_grid,
)
from fedcredit.credit.loading import prepare_table
from fedcredit.credit.scenario import Scenario
from fedcredit.credit.schema import DatasetSpec
from tests.conftest import SPEC, make_partner_frame

WHERE = Path("/data/s.toml")


def _scenario(dataset: dict, fairness: dict | None = None, privacy: dict | None = None) -> Scenario:
    raw = {"dataset": dataset, "partners": [{"name": "bank-a", "kind": "bank", "data": "a.csv"}]}
    if fairness is not None:
        raw["fairness"] = fairness
    if privacy is not None:
        raw["privacy"] = privacy
    return Scenario.from_dict(raw, base_dir=WHERE.parent, name="s", source=WHERE)


PROTECTED = {**SPEC, "numeric": ["income", "late"], "protected": ["age", "sex"]}
FAIR = {"cutoff_score": 540, "groups": {"age": [25, 40, 62], "sex": {"female": ["F"], "male": ["M"]}},
        "reference": {"age": 30, "sex": "male"}}


def test_bands_hold_their_lower_cut_point_and_missing_values_form_their_own_group() -> None:
    assert band_labels([25, 40, 62]) == ("<25", "[25, 40)", "[40, 62)", ">=62")
    assert band_labels([2.5]) == ("<2.5", ">=2.5")
    scenario = _scenario(PROTECTED, FAIR)
    age, sex = scenario.fairness.column_groups(scenario.dataset)
    assert scenario.dataset.protected_numeric == ("age",)
    assert list(age.assign(pd.Series([18.0, 25.0, 39.9, 40.0, 61.0, 62.0, 90.0, np.nan]))) == [
        "<25", "[25, 40)", "[25, 40)", "[40, 62)", "[40, 62)", ">=62", ">=62", MISSING_GROUP]
    assert list(sex.assign(pd.Series(["F", "M", "X", np.nan], dtype=object))) == ["female", "male", OTHER_GROUP,
                                                                                   MISSING_GROUP]
    assert age.names == ("<25", "[25, 40)", "[40, 62)", ">=62", MISSING_GROUP)
    assert sex.names == ("female", "male", OTHER_GROUP, MISSING_GROUP)
    # a reference: a group name, a code of a group, or a value of a numeric band
    assert (age.reference_group(30), age.reference_group("[40, 62)"), age.reference_group("30")) == (
        "[25, 40)", "[40, 62)", None)
    assert (sex.reference_group("male"), sex.reference_group("F"), sex.reference_group("X")) == ("male", "female",
                                                                                               None)


def test_declared_levels_are_the_groups_and_an_undeclared_column_groups_by_its_codes() -> None:
    scenario = _scenario({**PROTECTED, "levels": {"sex": ["F", "M"]}}, {"cutoff_score": 500,
                                                                      "groups": {"age": [30]}})
    _, sex = scenario.fairness.column_groups(scenario.dataset)
    assert sex.names == ("F", "M", OTHER_GROUP, MISSING_GROUP)
    assert list(sex.assign(pd.Series(["F", "Z"], dtype=object))) == ["F", OTHER_GROUP]
    plain = _scenario(PROTECTED, {"cutoff_score": 500, "groups": {"age": [30]}})
    _, sex = plain.fairness.column_groups(plain.dataset)
    assert sex.names is None and list(sex.assign(pd.Series(["Z", "F"], dtype=object))) == ["Z", "F"]


@pytest.mark.parametrize("where", ["numeric", "categorical", "drop"])
def test_a_protected_column_listed_as_a_feature_or_dropped_is_one_clear_error(where: str) -> None:
    dataset = {**PROTECTED, where: [*PROTECTED.get(where, []), "age"]}
    with pytest.raises(InputError) as err:
        _scenario(dataset, FAIR)
    text = str(err.value)
    assert text.startswith(f"{WHERE} [dataset]: field 'protected': column 'age' is protected and also listed in "
                           f"{where}")
    assert f"remove it from {where}" in text and "\n" not in text


def test_the_label_cannot_be_protected() -> None:
    with pytest.raises(InputError, match=r"field 'protected': column 'bad_flag' is protected and also the label"):
        _scenario({**PROTECTED, "protected": ["age", "bad_flag"]}, FAIR)


@pytest.mark.parametrize(("fairness", "field", "words"), [
    ({"groups": {"age": [25]}}, "cutoff_score", "is required with [dataset] protected"),
    ({**FAIR, "reference": {"age": "old"}}, "reference", "'old' is no group of 'age'"),
    ({**FAIR, "reference": {"sex": "unknown"}}, "reference", "'unknown' is no group of 'sex'"),
    ({**FAIR, "reference": {"income": 1}}, "reference", "['income'] are not protected columns"),
    ({**FAIR, "groups": {"age": [40, 25]}}, "groups", "cut points must rise strictly"),
    ({**FAIR, "groups": {"sex": {"missing": ["F"]}}}, "groups", "the group name 'missing' is reserved"),
    ({**FAIR, "groups": {"sex": {"a": ["F"], "b": ["F"]}}}, "groups", "code 'F' is in groups 'a' and 'b'"),
])
def test_bad_fairness_tables_are_refused_naming_the_field(fairness: dict, field: str, words: str) -> None:
    with pytest.raises(InputError) as err:
        _scenario(PROTECTED, fairness)
    assert f"[fairness]: field '{field}'" in str(err.value) and words in str(err.value)


def test_fairness_without_protected_columns_and_private_groups_under_dp_are_refused() -> None:
    with pytest.raises(InputError, match=r"\[fairness\]: there is nothing to check: declare the protected columns"):
        _scenario(SPEC, {"cutoff_score": 500})
    # under record-level DP a group's name must not come from the rows
    with pytest.raises(InputError, match=r"field 'groups': 'sex' is a categorical protected column without public"):
        _scenario(PROTECTED, {"cutoff_score": 500, "groups": {"age": [30]}}, privacy={"epsilon": 1.0})
    assert _scenario(PROTECTED, FAIR, privacy={"epsilon": 1.0}).dataset.protected == ("age", "sex")


def _frame(n: int = 400, seed: int = 1) -> pd.DataFrame:
    frame = make_partner_frame(n, seed)
    frame["sex"] = np.random.default_rng(seed).choice(["F", "M"], n)
    return frame


def test_protected_columns_are_read_apart_from_the_features() -> None:
    spec = _scenario(PROTECTED, FAIR).dataset
    table = prepare_table(_frame().astype(str).replace("nan", ""), spec, source="bank-a")
    assert list(table.features.columns) == ["income", "late", "housing"]
    assert list(table.protected.columns) == ["age", "sex"] and table.protected["age"].dtype == np.float64
    assert table.take(np.arange(5)).protected.shape == (5, 2)
    bad = _frame().astype(str)
    bad.loc[3, "age"] = "forty"
    with pytest.raises(InputError, match=r"bank-a: field 'age'"):
        prepare_table(bad, spec, source="bank-a")
    with pytest.raises(InputError, match=r"missing column\(s\) \['sex'\]"):
        prepare_table(_frame().drop(columns="sex"), spec, source="bank-a")


def _scored(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    age[rng.random(n) < 0.05] = np.nan
    sex = pd.Series(rng.choice(["F", "M", "X"], n, p=[0.45, 0.5, 0.05]), dtype=object)
    p_bad = 1 / (1 + np.exp(-rng.normal(-1.2, 1.1, n)))
    y = (rng.random(n) < p_bad).astype(int)
    return y, p_bad, pd.DataFrame({"age": age, "sex": sex})


def test_a_release_counts_each_groups_rows_by_label_and_score_bin_with_exact_sums() -> None:
    scenario = _scenario(PROTECTED, FAIR)
    task = FairnessTask(scenario.fairness, cutoff_logit=-0.9)
    y, p_bad, protected = _scored(3000, 3)
    release = task.release(scenario.dataset, y, p_bad, protected)
    edges, cut = fairness_grid(-0.9)
    assert np.array_equal(release.edges, edges) and release.cutoff == cut and cut in edges
    assert list(release.columns["age"]) == ["<25", "[25, 40)", "[40, 62)", ">=62", MISSING_GROUP]
    logit = clipped_logit(p_bad)
    young = protected["age"].to_numpy() < 25
    cells = release.columns["age"]["<25"]
    assert cells.bad.sum() == (young & (y == 1)).sum() and cells.good.sum() == (young & (y == 0)).sum()
    approved = release.approved_bins
    assert cells.bad[:approved].sum() + cells.good[:approved].sum() == (young & (logit <= -0.9)).sum()
    assert cells.sums["score"] == pytest.approx(logit[young].sum(), rel=1e-12)
    assert cells.sums["pd"] == pytest.approx(p_bad[young].sum(), rel=1e-12)
    assert release.columns["sex"][OTHER_GROUP].bad.sum() + release.columns["sex"][OTHER_GROUP].good.sum() == (
        protected["sex"] == "X").sum()
    # partners' releases add up to the release of their pooled rows
    halves = [task.release(scenario.dataset, y[s], p_bad[s], protected.iloc[s].reset_index(drop=True))
              for s in (slice(0, 1000), slice(1000, None))]
    pooled = GroupScores.combine(halves)
    for col, groups in release.columns.items():
        for name, c in groups.items():
            assert np.array_equal(pooled.columns[col][name].bad, c.bad)
            assert pooled.columns[col][name].sums == pytest.approx(c.sums, rel=1e-12)
    again = GroupScores.from_dict(release.to_dict())
    assert again.to_dict() == release.to_dict() and not again.private


def test_a_whole_point_score_at_the_cutoff_is_approved() -> None:
    from fedcredit.credit.scorecard import ScorecardSettings
    from fedcredit.reports.fairness import cutoff_logit

    scale = ScorecardSettings()
    scores = np.array([539.0, 540.0, 541.0])
    p_bad = 1 / (1 + np.exp((scores - scale.offset) / scale.factor))   # a scorecard's PD of its points
    spec = DatasetSpec("bad", ("x",), protected=("age",), protected_numeric=("age",))
    task = FairnessTask(FairnessSettings(cutoff_score=540, groups={"age": [30]}), cutoff_logit(540, scale))
    release = task.release(spec, np.zeros(3, dtype=int), p_bad, pd.DataFrame({"age": [50.0] * 3}))
    assert release.columns["age"][">=30"].good[:release.approved_bins].sum() == 2
