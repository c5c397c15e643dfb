"""`fedcredit score` from the command line: results on stdout, errors as one line (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.commands import one_line_error, run
from tests.conftest import make_partner_frame


def test_score_prints_a_summary_and_writes_the_report(model_path: Path, tmp_path: Path, capsys) -> None:
    frame = make_partner_frame(2000, 12).drop(columns="bad_flag").astype({"income": object})
    frame.loc[5, "income"] = "lots"
    frame.to_csv(tmp_path / "applicants.csv", index=False)
    code, out, err = run(capsys, "score", model_path, tmp_path / "applicants.csv", "--out", tmp_path / "s.parquet",
                         "--cutoff", "0.25", "--points", "600:50:20", "--report", tmp_path / "report.json")
    assert code == 0, err
    assert "scored 1,999 of 2,000 rows" in out and "rejected 1 row(s)" in out and "s.rejects.csv" in out
    assert "drift, PSI against the training populations (< 0.10 stable, > 0.25 a major shift): score" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["rejected"] == 1 and report["drift"]["score"]["psi"] is not None
    scores = pd.read_parquet(tmp_path / "s.parquet")
    assert list(scores.columns) == ["row", "id", "pd", "score", "decision", "reason_1", "reason_2", "reason_3",
                                    "reason_4", "reason_text_1", "reason_text_2", "reason_text_3", "reason_text_4",
                                    "unseen_levels"]
    assert 6 not in scores["row"].tolist() and len(scores) == 1999


def test_bad_input_is_one_error_line(model_path: Path, tmp_path: Path, capsys) -> None:
    make_partner_frame(20, 1).drop(columns=["age", "late"]).to_csv(tmp_path / "short.csv", index=False)
    code, _, err = run(capsys, "score", model_path, tmp_path / "short.csv", "--out", tmp_path / "o.csv")
    assert code == 2 and "missing column(s) ['age', 'late'] that the model uses" in one_line_error(err)
    code, _, err = run(capsys, "score", model_path, tmp_path / "nope.csv", "--out", tmp_path / "o.csv")
    assert code == 2 and "nope.csv: data file not found" in one_line_error(err)
    make_partner_frame(20, 1).to_csv(tmp_path / "ok.csv", index=False)
    code, _, err = run(capsys, "score", model_path, tmp_path / "ok.csv", "--out", tmp_path / "o.csv", "--points",
                       "600/50")
    assert code == 2 and "is not BASE:ODDS:PDO" in one_line_error(err)
    code, _, err = run(capsys, "score", model_path, tmp_path / "ok.csv", "--out", tmp_path / "o.csv", "--cutoff",
                       "1.5")
    assert code == 2 and "strictly between 0 and 1" in one_line_error(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.csv", "short.csv"]
