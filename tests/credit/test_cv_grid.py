"""`fedcredit cv --grid`: parsing, the keys a search may vary, and each setting's scenario tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcredit.credit.cv_grid import FEDERATION_KEYS, PRIVACY_KEYS, Setting, check_grid, derived_raw, parse_grid
from fedcredit.credit.errors import InputError
from fedcredit.credit.scenario import Scenario, load_scenario, read_toml
from tests.conftest import make_partner_frame, write_scenario


def test_one_key_several_keys_and_several_options() -> None:
    assert parse_grid(["learning_rate=0.01,0.03"]) == {"learning_rate": [0.01, 0.03]}
    assert parse_grid(["learning_rate=0.01,0.03;local_epochs=1,2"]) == {"learning_rate": [0.01, 0.03],
                                                                        "local_epochs": [1, 2]}
    assert parse_grid(["learning_rate = 0.01, 0.03 ;", "optimizer=sgd,\"adam\""]) == {
        "learning_rate": [0.01, 0.03], "optimizer": ["sgd", "adam"]}
    assert parse_grid(["hidden=[32,16],[64]"]) == {"hidden": [[32, 16], [64]]}
    assert parse_grid(["stop=rounds;secure=true"])["secure"] == [True]
    assert parse_grid([]) == {}


@pytest.mark.parametrize("text, message", [
    ("learning_rate", "is not KEY=V1,V2"),
    ("=0.1", "is not KEY=V1,V2"),
    ("learning_rate=0.1;learning_rate=0.2", "'learning_rate' is given twice"),
    ("learning_rate=0.1,,0.2", "'learning_rate' has an empty value"),
    ("learning_rate=0.1,0.10", "'learning_rate' lists a value twice"),
    ("hidden=[32,", "'hidden': cannot read the value"),
])
def test_bad_syntax_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        parse_grid([text])
    assert err.value.source == "--grid"


def _scenario(tmp_path: Path, privacy: dict | None = None, partner_privacy: dict | None = None) -> Path:
    frames = {"bank-a": make_partner_frame(300, 1), "insurer-b": make_partner_frame(300, 2)}
    fields = {"insurer-b": {"privacy": partner_privacy}} if partner_privacy else None
    return write_scenario(tmp_path, frames, privacy=privacy, partner_fields=fields)


def test_every_combination_is_a_setting_in_the_order_given(tmp_path: Path) -> None:
    scenario = load_scenario(_scenario(tmp_path))
    settings = check_grid(parse_grid(["learning_rate=0.01,0.03;local_epochs=1,2"]), scenario)
    assert [s.values for s in settings] == [{"learning_rate": 0.01, "local_epochs": 1},
                                            {"learning_rate": 0.01, "local_epochs": 2},
                                            {"learning_rate": 0.03, "local_epochs": 1},
                                            {"learning_rate": 0.03, "local_epochs": 2}]
    assert settings[1].label() == "learning_rate=0.01 local_epochs=2"
    assert check_grid({}, scenario) == [Setting({})]               # no grid: the scenario's own settings


def test_an_unknown_key_is_named_with_the_valid_ones(tmp_path: Path) -> None:
    scenario = load_scenario(_scenario(tmp_path))
    with pytest.raises(InputError) as err:
        check_grid(parse_grid(["learning_rat=0.01,0.03"]), scenario)
    text = str(err.value)
    assert "'learning_rat' is not a setting" in text
    assert all(k in text for k in (*FEDERATION_KEYS, *PRIVACY_KEYS))
    for key in ("test_fraction", "cv_fold", "epsilon"):            # exists in the scenario, not searchable
        with pytest.raises(InputError, match=f"'{key}' is not a setting"):
            check_grid({key: [0.3]}, scenario)


def test_values_are_checked_by_the_scenarios_own_rules(tmp_path: Path) -> None:
    scenario = load_scenario(_scenario(tmp_path))
    with pytest.raises(InputError, match=r"--grid.*learning_rate.*must be > 0"):
        check_grid({"learning_rate": [0.1, -1]}, scenario)
    with pytest.raises(InputError, match="optimizer"):
        check_grid({"optimizer": ["adagrad"]}, scenario)
    with pytest.raises(InputError, match="no partner of the scenario uses record-level DP"):
        check_grid({"max_grad_norm": [1.0, 2.0]}, scenario)
    private = load_scenario(_scenario(tmp_path / "dp", privacy={"mode": "sample", "epsilon": 5.0}))
    assert len(check_grid({"max_grad_norm": [0.5, 1.0]}, private)) == 2
    with pytest.raises(InputError, match="max_grad_norm"):
        check_grid({"max_grad_norm": [0]}, private)


def test_a_settings_scenario_has_absolute_paths_the_fold_and_dp_only_where_it_was(tmp_path: Path) -> None:
    path = _scenario(tmp_path / "consortium", partner_privacy={"mode": "sample", "epsilon": 5.0,
                                                                "ledger_dir": "ledgers"})
    raw = read_toml(path, "scenario")
    setting = Setting({"learning_rate": 0.03, "max_grad_norm": 0.5})
    out = derived_raw(raw, path.parent, setting, folds=3, fold=2)
    assert raw["federation"].get("cv_folds") is None                # the original tables are untouched
    assert out["federation"] == {**raw["federation"], "learning_rate": 0.03, "cv_folds": 3, "cv_fold": 2}
    assert "privacy" not in out                                      # bank-a stays without DP
    insurer = out["partners"][1]["privacy"]
    assert insurer["max_grad_norm"] == 0.5 and insurer["ledger_dir"] == str((path.parent / "ledgers").resolve())
    derived = Scenario.from_dict(out, base_dir=tmp_path / "elsewhere", name="s1-f3")
    original = load_scenario(path)
    assert [p.data for p in derived.partners] == [p.data for p in original.partners]
    assert derived.partner("bank-a").privacy.mode == "off" and derived.partner("insurer-b").privacy.enabled
    assert derived.federation.cv_fold == 2 and derived.federation.learning_rate == 0.03
