"""A real vertical simulation (Flower's Simulation Engine) with every party's table in an encrypted vault and
record-level DP: the issue's summary contract, each party's epsilon recounted from its own releases, no
customer key or row in plaintext on disk, and the party-level bad inputs stopped before any PSI message."""

from __future__ import annotations

import json
import tempfile
import time
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import tomli_w

from fedcredit.cli.main import main
from fedcredit.credit.synthetic_vertical import write_vertical_consortium
from fedcredit.privacy.ledger import PrivacyLedger
from fedcredit.protection.keys import new_key_file
from fedcredit.protection.vault import encrypt_file
from fedcredit.server.app import RunSettings
from fedcredit.simulations.runner import simulate
from tests.simulations.test_vault_run import _scan

pytestmark = pytest.mark.e2e


def _needles(folder: Path, scenario: dict) -> list[bytes]:
    """Byte strings only a plaintext key or row could contain: keys as written, normalised, and a row."""
    out = []
    for p in scenario["partners"]:
        frame = pd.read_csv(folder / p["data"], dtype=str, keep_default_na=False)
        keys = frame[p["id"]].head(40)
        out += [k.encode() for k in keys] + [k.strip().casefold().encode() for k in keys]
        out.append(",".join(frame.iloc[5]).encode())
    return out


def test_a_vertical_run_on_vaults_meets_the_contract_and_leaves_no_plaintext(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    path = write_vertical_consortium(folder, rows=3000, seed=11)
    scenario = tomllib.loads(path.read_text())
    needles = _needles(folder, scenario)
    assert _scan([folder], 0, needles), "the scan must find plaintext where it exists"
    for p in scenario["partners"]:
        plain = folder / p["data"]
        encrypt_file(plain, folder / f"{p['name']}.vault", new_key_file(folder / f"{p['name']}.key"))
        plain.unlink()
        p.update(data=f"{p['name']}.vault", key=f"{p['name']}.key")
    scenario["privacy"] = {"mode": "sample", "epsilon": 6.0, "run_epsilon": 3.0, "delta": 1e-5,
                           "stats_noise_multiplier": 6.0}   # the default 20 needs ~3,500 training rows a party
    path.write_text(tomli_w.dumps(scenario))
    assert not _scan([folder], 0, needles)

    started = time.time() - 1
    summary = simulate(RunSettings(scenario=str(path), out_dir=str(tmp_path / "run"))).summary
    assert summary["partitioning"] == "vertical"
    assert set(summary["alignment"]) >= {"intersection", "protocol", "seconds"} and summary["alignment"]["intersection"] > 1500
    assert all(summary["federated"][k] is not None for k in ("auc", "ks", "gini", "brier"))
    assert {"auc", "ks"} <= set(summary["centralized"]) and {"auc", "ks"} <= set(summary["label_holder_alone"])
    assert summary["federated_exact"]["auc"] > summary["label_holder_alone"]["auc"] - 0.05
    for p in summary["partners"]:
        assert {"name", "kind", "rows", "aligned_rows", "features", "privacy"} <= set(p)
        assert {"epsilon", "delta", "budget", "status"} <= set(p["privacy"]) and p["privacy"]["status"] == "ok"
        assert p["rows"] > p["aligned_rows"] == summary["alignment"]["intersection"] and p["features"]
        ledger = PrivacyLedger.inspect(folder / f"{p['name']}.privacy-ledger.jsonl")
        mechanisms = [e.mechanism for e in ledger.entries()]
        assert mechanisms.count("gaussian-gram") == 1 and mechanisms.count("gaussian-statistics") == 2
        assert ("gaussian-evaluation" in mechanisms) == (p["name"] == "lender")
        assert 0 < p["privacy"]["epsilon"] <= 3.0
    report = json.loads((tmp_path / "run" / "privacy_report.json").read_text())
    for p in report["partners"]:          # each party's epsilon recounted from its own listed releases
        assert p["releases"] and p["recomputed_matches"] is True, p["name"]

    roots = [tmp_path, Path(tempfile.gettempdir()), Path("/tmp/ray")]
    assert _scan([r for r in roots if r.exists()], started, needles) == []
    assert not list(folder.glob("vertical/state/*/*.json"))       # a party's per-run state is gone at the end
    assert sorted(f.name for f in (tmp_path / "run" / "parties").iterdir()) == ["bureau.json", "lender.json",
                                                                                  "platform.json"]


@pytest.mark.parametrize("fault, message", [
    ("duplicate", "more than once"),
    ("empty", "empty key"),
    ("label at a passive party", "only the label holder may hold it"),
    ("no key column", "no key column"),
])
def test_a_bad_party_file_stops_the_run_before_any_psi_message(tmp_path: Path, fault: str, message: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write_vertical_consortium(tmp_path / "data", rows=1000, seed=2)
    scenario = tomllib.loads(path.read_text())
    bureau = next(p for p in scenario["partners"] if p["name"] == "bureau")
    file = tmp_path / "data" / bureau["data"]
    frame = pd.read_csv(file, dtype=str, keep_default_na=False)
    if fault == "duplicate":
        frame.loc[3, bureau["id"]] = frame.loc[4, bureau["id"]].upper() + "  "
    elif fault == "empty":
        frame.loc[[3, 9], bureau["id"]] = ""
    elif fault == "label at a passive party":
        frame["default"] = "0"
    else:
        frame = frame.drop(columns=[bureau["id"]])
    frame.to_csv(file, index=False)
    capsys.readouterr()
    code = main(["simulate", "--scenario", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code != 0 and message in err and "bureau" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob("run*"))
    assert not list((tmp_path / "data").glob("*.privacy-ledger.jsonl"))     # nothing released, nothing charged
