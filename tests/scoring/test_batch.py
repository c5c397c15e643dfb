"""`score_file`: the scores are the artefact's own, bad rows go to the rejects file (exactly them),
nothing is half-written, and the input is read by the training rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.errors import InputError
from fedcredit.credit.loading import prepare_table
from fedcredit.protection.audit import AuditLog, verify
from fedcredit.protection.keys import load_key, new_key_file
from fedcredit.protection.vault import encrypt_file
from fedcredit.scoring.batch import VaultAccess, rejects_path, score_file
from fedcredit.scoring.scorer import Scaling, ScoreOptions, Scorer
from tests.conftest import make_partner_frame


def _expected(model: ScoringModel, frame: pd.DataFrame) -> np.ndarray:
    """P(bad) by the artefact's documented path: the training loader's rules, then predict_proba."""
    return model.predict_proba(prepare_table(frame, model.spec, source="expected").features)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, keep_default_na=False,
                                                                              na_values=[""])


@pytest.mark.parametrize("src, out", [("in.csv", "scores.csv"), ("in.parquet", "scores.parquet"),
                                      ("in.csv.gz", "scores.csv.gz")])
def test_scores_equal_the_artefacts_predict_proba(model_path: Path, tmp_path: Path, src: str, out: str) -> None:
    model = ScoringModel.load(model_path)
    frame = make_partner_frame(5000, 7)            # with the label: the batch ignores it, the oracle needs it
    path = tmp_path / src
    frame.to_parquet(path) if src.endswith(".parquet") else frame.to_csv(path, index=False)
    result = score_file(Scorer(model), path, tmp_path / out, chunk_rows=1234)   # several chunks
    scores = _read(tmp_path / out)
    assert result.rows == result.scored == len(scores) == 5000 and result.rejected == 0
    assert scores["row"].tolist() == list(range(1, 5001))
    assert scores["id"].astype(int).tolist() == frame["id"].tolist()      # the key column passes through
    np.testing.assert_allclose(scores["pd"].to_numpy(), _expected(model, frame), rtol=0, atol=1e-9)
    assert "ignored column(s) the model does not use: ['bad_flag']" in result.notices
    assert not rejects_path(tmp_path / out).exists()


def test_rejects_file_holds_exactly_the_bad_rows(model_path: Path, tmp_path: Path) -> None:
    model = ScoringModel.load(model_path)
    original = make_partner_frame(400, 3)
    frame = original.drop(columns="bad_flag").astype({"age": object, "income": object})
    bad = {10: ("age", "forty"), 55: ("income", "1,200.50"), 56: ("age", "2015-03-01"), 200: ("housing", "RENT"),
           399: ("income", "inf")}
    for row, (col, value) in bad.items():
        frame.loc[row, col] = value
    frame.loc[77, "housing"] = "castle"             # unseen level: scored as OTHER and counted, not rejected
    frame.loc[78, "late"] = 98                       # a declared missing code: scored, imputed
    frame.to_csv(tmp_path / "in.csv", index=False)
    result = score_file(Scorer(model, ScoreOptions(cutoff=0.3, scaling=Scaling())), tmp_path / "in.csv",
                        tmp_path / "out.csv", chunk_rows=100)
    rejects = pd.read_csv(result.rejects)
    assert rejects["row"].tolist() == [r + 1 for r in sorted(bad)]
    assert rejects["id"].tolist() == sorted(bad)
    assert rejects["field"].tolist() == [bad[r][0] for r in sorted(bad)]
    reasons = rejects.set_index("row")["reason"]
    assert "non-numeric value 'forty'" in reasons[11] and "thousands separators" in reasons[56]
    assert reasons[57].startswith("holds a date ('2015-03-01'), not a number: derive a number")
    assert "respells the declared code 'rent'" in reasons[201] and "not a finite number" in reasons[400]
    scores = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert len(scores) == 395 and not set(scores["id"]) & set(bad)
    assert result.rejected == 5 and result.scored == 395 and result.other == {"housing": 1}
    assert scores.set_index("id").loc[77, "unseen_levels"] == "housing"
    assert (scores["unseen_levels"] == "").sum() == 394
    good = frame.assign(bad_flag=original["bad_flag"]).drop(index=[*bad, 77])   # 78 holds the missing code
    np.testing.assert_allclose(scores.set_index("id").drop(index=77)["pd"], _expected(model, good), atol=1e-9)
    assert set(scores["decision"]) <= {"approve", "decline"}
    assert ((scores["pd"] >= 0.3) == (scores["decision"] == "decline")).all()
    odds = (1 - scores["pd"]) / scores["pd"]
    np.testing.assert_allclose(scores["score"], 600 + 20 / np.log(2) * np.log(odds / 50), atol=0.006)
    assert result.decisions["approve"] + result.decisions["decline"] == 395


def test_strict_stops_at_the_first_bad_row_and_writes_nothing(model_path: Path, tmp_path: Path) -> None:
    frame = make_partner_frame(300, 4).astype({"age": object})
    frame.loc[150, "age"] = "n/k"
    frame.to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(InputError, match=r"field 'age': row 151: non-numeric value 'n/k'.*--strict"):
        score_file(Scorer(ScoringModel.load(model_path)), tmp_path / "in.csv", tmp_path / "out.csv", strict=True,
                   chunk_rows=100)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]       # no output, no temp file


def test_whole_file_problems_are_one_clear_error(model_path: Path, tmp_path: Path) -> None:
    scorer = Scorer(ScoringModel.load(model_path))
    frame = make_partner_frame(50, 5)
    frame.drop(columns="income").to_csv(tmp_path / "no-income.csv", index=False)
    with pytest.raises(InputError, match=r"no-income.csv: field 'income': missing column\(s\) \['income'\]"):
        score_file(scorer, tmp_path / "no-income.csv", tmp_path / "a.csv")
    frame.head(0).to_csv(tmp_path / "header-only.csv", index=False)
    with pytest.raises(InputError, match="has no rows to score"):
        score_file(scorer, tmp_path / "header-only.csv", tmp_path / "b.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(InputError, match="the file is empty"):
        score_file(scorer, tmp_path / "empty.csv", tmp_path / "c.csv")
    frame.to_csv(tmp_path / "ok.csv", index=False)
    (tmp_path / "taken.csv").write_text("mine")
    with pytest.raises(InputError, match="already exists"):
        score_file(scorer, tmp_path / "ok.csv", tmp_path / "taken.csv")
    assert (tmp_path / "taken.csv").read_text() == "mine"
    with pytest.raises(InputError, match="unsupported output type"):
        score_file(scorer, tmp_path / "ok.csv", tmp_path / "out.xlsx")
    score_file(scorer, tmp_path / "ok.csv", tmp_path / "taken.csv", overwrite=True)
    assert len(pd.read_csv(tmp_path / "taken.csv")) == 50
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv", "header-only.csv", "no-income.csv",
                                                          "ok.csv", "taken.csv"]


def test_a_vault_is_scored_for_the_score_purpose_and_audited(model_path: Path, tmp_path: Path) -> None:
    frame = make_partner_frame(500, 6)
    frame.to_csv(tmp_path / "plain.csv", index=False)
    new_key_file(tmp_path / "bank.key")
    encrypt_file(tmp_path / "plain.csv", tmp_path / "bank.vault", load_key(str(tmp_path / "bank.key")))
    scorer = Scorer(ScoringModel.load(model_path))
    with pytest.raises(InputError, match="is a vault: give its key"):
        score_file(scorer, tmp_path / "bank.vault", tmp_path / "x.csv")
    audit = AuditLog(tmp_path / "bank.audit.jsonl")
    result = score_file(scorer, tmp_path / "bank.vault", tmp_path / "scores.parquet", audit=audit,
                        vault=VaultAccess(load_key(str(tmp_path / "bank.key")), "bank", audit))
    assert result.scored == 500
    np.testing.assert_allclose(pd.read_parquet(tmp_path / "scores.parquet")["pd"],
                               _expected(scorer.model, frame), atol=1e-9)
    events = [line for line in (tmp_path / "bank.audit.jsonl").read_text().splitlines()]
    assert '"purpose":"score"' in events[0] and '"outcome":"granted"' in events[0]
    assert '"event":"score-batch"' in events[1] and scorer.model.id in events[1]
    assert verify(tmp_path / "bank.audit.jsonl").ok


def test_psi_is_small_for_the_training_population_and_large_after_a_shift(model_path: Path,
                                                                          tmp_path: Path) -> None:
    scorer = Scorer(ScoringModel.load(model_path))
    make_partner_frame(3000, 11).to_parquet(tmp_path / "same.parquet")
    make_partner_frame(3000, 11, shift=3.0).to_parquet(tmp_path / "moved.parquet")
    same = score_file(scorer, tmp_path / "same.parquet", tmp_path / "s.parquet").drift
    moved = score_file(scorer, tmp_path / "moved.parquet", tmp_path / "m.parquet").drift
    assert same["score"]["psi"] < 0.1 and same["score"]["reading"] == "stable"
    assert moved["score"]["psi"] > 0.25 and moved["score"]["reading"] == "major shift"
    assert all(v["psi"] < 0.1 for v in same["features"].values())
    assert moved["features"]["age"]["psi"] > 0.25 and moved["features"]["housing"]["psi"] < 0.1


def test_a_first_chunk_of_only_bad_rows_and_an_all_bad_file(model_path: Path, tmp_path: Path) -> None:
    scorer = Scorer(ScoringModel.load(model_path))
    frame = make_partner_frame(300, 13).astype({"age": str})     # Parquet text: "40.0", …
    frame.loc[:99, "age"] = "x"                   # the whole first chunk is rejected
    frame.to_parquet(tmp_path / "in.parquet")
    result = score_file(scorer, tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=100)
    scores = pd.read_parquet(tmp_path / "out.parquet")
    assert result.rejected == 100 and scores["row"].tolist() == list(range(101, 301))
    assert set(scores["reason_1"].dropna()) <= {"age", "income", "late", "housing"}
    frame.loc[:, "age"] = "x"
    frame.to_parquet(tmp_path / "all-bad.parquet")
    result = score_file(scorer, tmp_path / "all-bad.parquet", tmp_path / "none.parquet", chunk_rows=100)
    none = pd.read_parquet(tmp_path / "none.parquet")
    assert result.scored == 0 and result.rejected == 300 and len(none) == 0 and "pd" in none.columns


def test_a_read_error_in_a_later_chunk_is_one_error_and_stops_the_reader(model_path: Path, tmp_path: Path) -> None:
    import threading

    scorer = Scorer(ScoringModel.load(model_path))
    lines = make_partner_frame(300, 14).to_csv(index=False).splitlines()
    lines[251] += ",1,2"                          # a row with more cells than the header, in the third chunk
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="in.csv: .*(cells|split into columns)"):
        score_file(scorer, tmp_path / "in.csv", tmp_path / "out.csv", chunk_rows=100)
    make_partner_frame(300, 14).astype({"age": object}).assign(age="x").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match="row 1: non-numeric value 'x'"):
        score_file(scorer, tmp_path / "bad.csv", tmp_path / "out.csv", chunk_rows=100, strict=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "in.csv"]
    assert not [t for t in threading.enumerate() if t.name == "fedcredit-score-reader"]
