"""A partner's CSV keys (`sep`, `decimal`) reach the loader, for a plain file and for a vault."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fedcredit.clients.partner import PartnerData, open_partner_data
from fedcredit.credit.errors import InputError
from fedcredit.credit.loading import load_table
from fedcredit.credit.protocol import TaskConfig
from fedcredit.credit.scenario import load_scenario
from fedcredit.protection.keys import new_key_file
from fedcredit.protection.vault import encrypt_file
from tests.conftest import make_partner_frame, write_scenario


def _open(folder: Path, frame: pd.DataFrame, *, keys: dict, vault: bool) -> PartnerData:
    """One partner whose table is written with '|' and decimal commas (neither is sniffed)."""
    folder.mkdir(parents=True)
    fields = {**keys, **({"data": "bank.fcv", "key": "bank.key"} if vault else {})}
    scenario = load_scenario(write_scenario(folder, {"bank": frame}, partner_fields={"bank": fields}))
    frame.to_csv(folder / "bank.csv", sep="|", decimal=",", index=False)
    if vault:
        encrypt_file(folder / "bank.csv", folder / "bank.fcv", new_key_file(folder / "bank.key"))
        (folder / "bank.csv").unlink()
    return open_partner_data(scenario.partner("bank"), TaskConfig(scenario.dataset, scenario.federation),
                             purpose="check")


@pytest.mark.parametrize("vault", [False, True])
def test_the_partner_csv_keys_reach_the_loader(tmp_path: Path, vault: bool) -> None:
    frame = make_partner_frame(600, 11)
    data = _open(tmp_path / "with-keys", frame, keys={"sep": "|", "decimal": ","}, vault=vault)
    frame.to_csv(tmp_path / "plain.csv", index=False)
    spec = load_scenario(tmp_path / "with-keys" / "scenario.toml").dataset
    expected = load_table(tmp_path / "plain.csv", spec).features
    got = pd.concat([data.train.features, data.test.features])
    assert len(got) == 600
    for col in ("age", "income", "late"):
        assert sorted(got[col].dropna()) == sorted(expected[col].dropna()), col

    with pytest.raises(InputError, match=r"partner 'bank'.*'income'.*set decimal = \",\""):
        _open(tmp_path / "without-keys", frame, keys={"sep": "|"}, vault=vault)
