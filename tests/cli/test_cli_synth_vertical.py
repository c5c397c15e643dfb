"""`fedcredit synth --vertical`: a lender (with the label), a payments platform and a bureau about
overlapping customers, keys spelled differently and in different orders, and a vertical scenario that
loads; the folder rules of `synth` hold."""

from __future__ import annotations

import tomllib

import pandas as pd

from fedcredit.credit.customer_keys import normalise_key
from fedcredit.credit.party_table import load_party_table
from fedcredit.credit.scenario import load_scenario
from fedcredit.credit.synthetic_vertical import EXTRA_SHARE, PARTIES
from tests.commands import one_line_error, run

ROWS = 2_000


def test_synth_vertical_writes_a_consortium_that_loads(tmp_path, capsys):
    out = tmp_path / "vertical"
    code, stdout, _ = run(capsys, "synth", "--vertical", "--out", out, "--rows", ROWS, "--seed", 5)
    assert code == 0 and str(out / "scenario.toml") in stdout
    assert sorted(p.name for p in out.iterdir()) == ["bureau.csv", "lender.csv", "platform.csv", "scenario.toml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vertical"]                  # no temp folder left
    raw = tomllib.loads((out / "scenario.toml").read_text())
    assert raw["federation"]["partitioning"] == "vertical" and raw["privacy"]["mode"] == "sample"
    assert raw["synthetic"]["seed"] == 5 and raw["synthetic"]["population"] == ROWS

    scenario = load_scenario(out / "scenario.toml")
    assert scenario.vertical and scenario.label_holder.name == "lender"
    assert [p.kind for p in scenario.partners] == ["bank", "platform", "bureau"]
    headers = {p.name: list(pd.read_csv(p.data, nrows=0).columns) for p in scenario.partners}
    assert [n for n, cols in headers.items() if "default" in cols] == ["lender"]       # the label only there
    tables = {p.name: load_party_table(p, min_rows=scenario.federation.min_rows, label_column="default")
              for p in scenario.partners}
    assert tables["lender"].label is not None and 0.05 < tables["lender"].label.mean() < 0.2
    assert {n: len(t) for n, t in tables.items()} == raw["synthetic"]["rows"]

    keys = {n: set(t.keys) for n, t in tables.items()}
    union = set.union(*keys.values())
    extra = round(EXTRA_SHARE * ROWS)
    # common + each one's own (a common customer may, rarely, be missed by all three)
    assert 0.995 * ROWS + extra * len(PARTIES) <= len(union) <= ROWS + extra * len(PARTIES)
    for party in PARTIES:
        others = set.union(*(k for n, k in keys.items() if n != party.name))
        own = keys[party.name] - others
        common = keys[party.name] & others
        assert len(own) >= extra                                                      # customers only it knows
        assert abs(len(keys[party.name]) - extra - party.share * ROWS) < 0.03 * ROWS  # its share of the rest
        assert 0.8 * ROWS < len(common) < ROWS
    both = keys["lender"] & keys["bureau"]
    assert 0.75 * ROWS < len(both) < 0.9 * ROWS                                       # overlapping, unequal

    raw_platform = pd.read_csv(out / "platform.csv", dtype=str, keep_default_na=False)["customer_ref"]
    assert (raw_platform != raw_platform.str.strip()).any() and raw_platform.str.contains("c-").any()
    assert {normalise_key(k) for k in raw_platform} == keys["platform"]
    lender_order = [k for k in tables["lender"].keys if k in both]
    bureau_order = [k for k in tables["bureau"].keys if k in both]
    assert lender_order != bureau_order                                               # each file its own order


def test_synth_vertical_keeps_the_folder_rules(tmp_path, capsys):
    out = tmp_path / "v"
    assert run(capsys, "synth", "--vertical", "--out", out, "--rows", 1000)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, stdout, err = run(capsys, "synth", "--vertical", "--out", out, "--rows", 1000, "--seed", 1)
    assert code == 2 and stdout == "" and "not empty" in one_line_error(err) and "--force" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert run(capsys, "synth", "--vertical", "--out", out, "--rows", 1000, "--force")[0] == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before                  # same seed, same bytes

    code, _, err = run(capsys, "synth", "--vertical", "--out", tmp_path / "w", "--rows", 10)
    assert code == 2 and "rows must be a whole number ≥ 1000" in one_line_error(err)
    code, _, err = run(capsys, "synth", "--vertical", "--out", tmp_path / "w", "--partners", 3)
    assert code == 2 and "--partners is for the horizontal consortium" in one_line_error(err)
    assert not (tmp_path / "w").exists()
