"""JSON applicants (`check_records`) and file rows (`check`) are read alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fedcredit.credit.artefact import ScoringModel
from fedcredit.scoring.validate import Validator
from tests.conftest import make_partner_frame


def test_json_records_and_file_rows_give_the_same_cells(model_path: Path) -> None:
    validator = Validator(ScoringModel.load(model_path))
    frame = make_partner_frame(300, 8).drop(columns=["bad_flag", "id"])
    frame.loc[::7, "late"] = 98
    frame.loc[::11, "housing"] = "castle"
    frame.loc[::13, "housing"] = "RENT"
    frame.loc[::17, "housing"] = None
    frame.loc[::19, "age"] = np.nan
    records = [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    fast = validator.check_records(records)
    slow = validator.check(pd.DataFrame.from_records(records, columns=list(frame.columns)), source="t")
    assert fast is not None and fast.rejects == slow.rejects and len(fast.rejects) > 0
    assert fast.rows.tolist() == slow.rows.tolist() and fast.other == slow.other and fast.other["housing"] > 0
    assert fast.unseen.tolist() == slow.unseen.tolist()
    for col in validator.required:
        pd.testing.assert_series_equal(pd.Series(fast.features[col], dtype=object),
                                       pd.Series(slow.features[col], dtype=object), obj=col)
    records[0]["age"] = "41"                      # text in a numeric cell: the file rules decide
    assert validator.check_records(records) is None

