"""Vertical scenarios (issue 11): the contract parses, a party's own columns round-trip through the
roster JSON, and every bad input is ONE InputError naming the file, the partner, the field and what to do
— raised when the scenario is read, before any data file is opened."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import tomli_w

from fedcredit.credit.errors import InputError
from fedcredit.credit.scenario import Partner, load_partner_file, load_scenario
from fedcredit.credit.schema import DatasetSpec
from tests.conftest import SPEC

CONTRACT = """
[federation]
partitioning = "vertical"        # default "horizontal"
rounds = 30
[privacy]
epsilon = 3.0
[[partners]]
name = "lender"
kind = "bank"
data = "lender.csv"
id = "customer_id"
label = "default"
numeric = ["limit", "age"]
categorical = ["education"]
[[partners]]
name = "bureau"
kind = "bureau"
data = "bureau.csv"
id = "customer_id"
numeric = ["pay_0", "pay_amt1"]
"""

LENDER = {"name": "lender", "kind": "bank", "data": "lender.csv", "id": "customer_id", "label": "default",
          "numeric": ["limit", "age"], "categorical": ["education"]}
BUREAU = {"name": "bureau", "kind": "bureau", "data": "bureau.csv", "id": "customer_id",
          "numeric": ["pay_0", "pay_amt1"]}


def _vertical(tmp_path: Path, *, lender: dict | None = None, bureau: dict | None = None, **tables) -> Path:
    raw = {"federation": {"partitioning": "vertical"},
           "partners": [copy.deepcopy(lender or LENDER), copy.deepcopy(bureau or BUREAU)]}
    for key, value in tables.items():
        if value is None:
            raw.pop(key, None)
        elif key == "federation":
            raw["federation"].update(value)
        else:
            raw[key] = value
    path = tmp_path / "scenario.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


def test_the_issue_contract_parses(tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text(CONTRACT)
    scenario = load_scenario(path)
    assert scenario.vertical and scenario.federation.partitioning == "vertical"
    lender, bureau = scenario.partners
    assert scenario.label_holder is lender and lender.holds_label and not bureau.holds_label
    assert (lender.id, bureau.id, bureau.kind) == ("customer_id", "customer_id", "bureau")
    assert lender.spec == DatasetSpec(label="default", numeric=("limit", "age"), categorical=("education",), bad=1)
    assert bureau.spec.label == "" and bureau.spec.features == ("pay_0", "pay_amt1")
    assert bureau.spec.expected_columns == {"pay_0", "pay_amt1"}
    assert lender.data == (tmp_path / "lender.csv").resolve()
    assert lender.privacy.enabled and bureau.privacy.epsilon == 3.0            # [privacy] applies to every party
    joint = scenario.dataset                                                   # the joined rows' contract
    assert (joint.label, joint.bad) == ("default", 1)
    assert joint.numeric == ("limit", "age", "pay_0", "pay_amt1") and joint.categorical == ("education",)


def test_horizontal_is_the_default_and_has_no_label_holder(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps({"dataset": SPEC, "partners": [{"name": "a", "kind": "bank", "data": "a.csv"}]}))
    scenario = load_scenario(path)
    assert not scenario.vertical and scenario.federation.partitioning == "horizontal"
    assert scenario.partners[0].id is None and scenario.partners[0].spec is None
    assert "id" not in scenario.partners[0].to_dict() and "spec" not in scenario.partners[0].to_dict()
    with pytest.raises(InputError, match="not a vertical scenario"):
        scenario.label_holder


def test_partners_round_trip_through_the_roster_json(tmp_path: Path) -> None:
    lender = {**LENDER, "bad": "Y", "missing": {"limit": [-1]}, "levels": {"education": [1, 2, 3]},
              "log": ["limit"], "drop": ["branch"]}
    bureau = {**BUREAU, "missing": {"pay_0": [-9, "NA?"]}, "sep": ";", "decimal": ","}
    scenario = load_scenario(_vertical(tmp_path, lender=lender, bureau=bureau))
    for partner in scenario.partners:
        again = Partner.from_dict(json.loads(json.dumps(partner.to_dict())))
        assert again == partner
    lender_p, bureau_p = scenario.partners
    assert lender_p.spec.bad == "Y" and lender_p.spec.levels == {"education": ("1", "2", "3")}
    assert lender_p.spec.log == ("limit",) and lender_p.spec.drop == ("branch",)
    assert bureau_p.spec.missing == {"pay_0": (-9, "NA?")} and bureau_p.spec.label == ""
    old = {k: v for k, v in lender_p.to_dict().items() if k not in ("id", "spec")}   # a roster from before
    assert Partner.from_dict(old).id is None and Partner.from_dict(old).spec is None
    assert scenario.to_dict()["partners"][1]["spec"]["label"] == ""


def test_a_deployed_partner_file_declares_its_role(tmp_path: Path) -> None:
    path = tmp_path / "partner.toml"
    path.write_text(tomli_w.dumps({"partner": BUREAU}))
    partner = load_partner_file(path)
    assert partner.id == "customer_id" and not partner.holds_label and partner.spec.numeric == ("pay_0", "pay_amt1")


def _entry(base: dict, **changes) -> dict:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


# (what is wrong, the scenario's changes, the message's parts: where, field, what is wrong, what to do)
BAD = [
    ("two label holders", dict(bureau=_entry(BUREAU, label="default_flag")),
     ["partner 'bureau'", "field 'label'", "'lender' and 'bureau' both give a label", "remove `label`"]),
    ("no label holder", dict(lender=_entry(LENDER, label=None)),
     ["field 'label'", "no party holds the label", "give exactly one party"]),
    ("a party without id", dict(bureau=_entry(BUREAU, id=None)),
     ["partner 'bureau'", "field 'id'", "missing", "id = \"customer_id\""]),
    ("a feature claimed by two parties", dict(bureau=_entry(BUREAU, numeric=["pay_0", "age"])),
     ["partner 'bureau'", "field 'numeric'", "'age' is a feature of both 'lender' and 'bureau'",
      "remove it from one of them"]),
    ("the id column listed as a feature", dict(lender=_entry(LENDER, categorical=["education", "customer_id"])),
     ["partner 'lender'", "field 'categorical'", "id column 'customer_id' is also listed in categorical",
      "remove it from categorical"]),
    ("the id column is the label", dict(lender=_entry(LENDER, label="customer_id")),
     ["partner 'lender'", "field 'label'", "id column 'customer_id' is also the label",
      "choose another column"]),
    ("the label column as a passive feature", dict(bureau=_entry(BUREAU, numeric=["pay_0", "default"])),
     ["partner 'bureau'", "field 'numeric'", "'default' is the label column, held by 'lender'",
      "remove it from this party's features"]),
    ("`bad` without a label", dict(bureau=_entry(BUREAU, bad=2)),
     ["partner 'bureau'", "field 'bad'", "holds no label", "remove `bad`"]),
    ("a column twice in one party", dict(bureau=_entry(BUREAU, numeric=["pay_0", "pay_0"])),
     ["partner 'bureau'", "field 'numeric'", "lists a column twice"]),
    ("a party with no columns", dict(bureau=_entry(BUREAU, numeric=None)),
     ["partner 'bureau'", "declares no columns", "list this party's features"]),
    ("only one party", dict(partners=[LENDER]), ["field 'partitioning'", "at least two parties"]),
    ("a [dataset] table", dict(dataset=SPEC), ["[dataset]: is for horizontal scenarios", "each party declares its own columns",
                                               "remove [dataset]"]),
    ("an mlp", dict(federation={"model": "mlp"}),
     ["[federation]", "field 'model'", "'mlp' is not available for vertical runs", "['logistic']"]),
    ("a scorecard", dict(federation={"model": "scorecard"}), ["field 'model'", "not available for vertical runs"]),
    ("secure aggregation", dict(federation={"secure_aggregation": True}),
     ["field 'secure_aggregation'", "not available for vertical runs", "remove secure_aggregation"]),
    ("partner sampling", dict(federation={"fraction_train": 0.5}),
     ["field 'fraction_train'", "not available for vertical runs", "fraction_train = 1"]),
    ("partner-level DP", dict(privacy={"mode": "client"}),
     ["partner 'lender'", "field 'mode'", "not available for vertical runs", "use mode 'sample'"]),
    ("fair-lending checks", dict(fairness={"cutoff_score": 500}),
     ["[fairness]", "are not available for vertical runs", "remove the [fairness] table"]),
    ("scorecard settings", dict(scorecard={"pdo": 20}), ["[scorecard]", "not available for vertical runs"]),
    ("tree settings", dict(gbdt={"max_depth": 2}), ["[gbdt]", "not available for vertical runs"]),
    ("an unknown partitioning", dict(federation={"partitioning": "diagonal"}),
     ["[federation]", "field 'partitioning'", "choose one of ['horizontal', 'vertical']"]),
]


@pytest.mark.parametrize("changes, parts", [(c, p) for _, c, p in BAD], ids=[w for w, _, _ in BAD])
def test_each_bad_input_is_one_clear_error(tmp_path: Path, changes: dict, parts: list[str]) -> None:
    changes = dict(changes)
    lender, bureau = changes.pop("lender", None), changes.pop("bureau", None)
    path = _vertical(tmp_path, lender=lender, bureau=bureau, **changes)
    with pytest.raises(InputError) as err:
        load_scenario(path)              # no data file exists: refused before any is opened
    message = str(err.value)
    assert message.startswith(str(path)), message
    for part in parts:
        assert part in message, (part, message)
    assert "\n" not in message


@pytest.mark.parametrize("key, value", [("id", "customer_id"), ("label", "bad_flag"), ("numeric", ["age"]),
                                        ("categorical", ["housing"]), ("missing", {"age": [0]}), ("bad", 1)])
def test_a_horizontal_scenario_refuses_a_partys_own_columns(tmp_path: Path, key: str, value) -> None:
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps({"dataset": SPEC, "partners": [{"name": "a", "kind": "bank", "data": "a.csv",
                                                                  key: value}]}))
    with pytest.raises(InputError) as err:
        load_scenario(path)
    message = str(err.value)
    assert message.startswith(f"{path} partner 'a': field '{key}': ")
    assert "only a vertical scenario has" in message and 'partitioning = "vertical"' in message


def test_a_horizontal_scenario_still_needs_its_dataset_table(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps({"partners": [{"name": "a", "kind": "bank", "data": "a.csv"}]}))
    with pytest.raises(InputError, match=r"field 'dataset': missing the \[dataset\] table"):
        load_scenario(path)
