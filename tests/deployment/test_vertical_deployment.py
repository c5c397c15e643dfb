"""A real deployment on 127.0.0.1 trains a vertical model (`[federation] partitioning = "vertical"`): a
SuperLink and three SuperNodes (lender with the label, payments platform, bureau) as separate processes,
TLS, node authentication, a signed app and record-level DP in each party's own partner.toml. The parties
align their customers by PSI, release their DP Gram blocks and keep their model parts; the coordinator's
run directory and logs hold no customer key, no row and no party's model part. A second run reuses the
cached alignment. Every process is stopped by PID, even on failure."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import tomli_w

from fedcredit.cli.main import main
from fedcredit.credit.synthetic_vertical import write_vertical_consortium
from fedcredit.privacy.ledger import PrivacyLedger
from fedcredit.protection import tls
from tests.deployment.test_deployment_run import stop_deployment
from tests.processes import free_port

pytestmark = pytest.mark.e2e
PARTIES = ("lender", "platform", "bureau")
PRIVACY = {"mode": "sample", "epsilon": 16.0, "run_epsilon": 8.0, "delta": 1e-4,   # two runs' worth
           "stats_noise_multiplier": 6.0}   # the default 20 needs ~3,500 training rows a party
PHASES = ["hello", "psi-blind", "psi-reblind", "psi-align", "gram-1", "gram-2", "solve", "score", "evaluate"]


@pytest.fixture
def vertical_consortium(tmp_path: Path, app_signing):
    """Coordinator folder (certs; scenario with [coordinator], partitioning "vertical" and each party's
    entry with its columns and public key, no data) + one folder per party (its synthetic file, node key,
    partner.toml declaring its role and its own record-level DP)."""
    synth = write_vertical_consortium(tmp_path / "synth", rows=4000, seed=5)
    entries = {e["name"]: e for e in tomllib.loads(synth.read_text())["partners"]}
    coord = tmp_path / "coordinator"
    (coord / "keys").mkdir(parents=True)
    tls.make_certificates(coord / "certs")
    port = free_port()
    configs: dict[str, Path] = {}
    coordinator_entries = []
    for name in PARTIES:
        entry = dict(entries[name])
        folder = tmp_path / name
        folder.mkdir()
        shutil.move(str(synth.parent / entry["data"]), folder / "data.csv")
        tls.new_node_key(folder / "node.key")
        configs[name] = folder / "partner.toml"
        configs[name].write_text(tomli_w.dumps({
            "partner": {**entry, "data": "data.csv"},
            "privacy": dict(PRIVACY),
            "node": {"superlink": f"127.0.0.1:{port}", "port": free_port(),
                     "root_certificates": str(coord / "certs" / "ca.crt"), "auth_key": "node.key",
                     "trusted_app_keys": [str(app_signing[0])]}}))
        (coord / "keys" / f"{name}.pub").write_bytes((folder / "node.key.pub").read_bytes())
        coordinator_entries.append({**{k: v for k, v in entry.items() if k != "data"}, "public_key": f"keys/{name}.pub"})
    shutil.rmtree(synth.parent)                 # nobody but the parties holds a file
    scenario = coord / "scenario.toml"
    scenario.write_text(tomli_w.dumps({
        "federation": {"partitioning": "vertical", "model": "logistic", "round_timeout": 120},
        "partners": coordinator_entries,
        "coordinator": {"address": "127.0.0.1", "port": port, "control_port": free_port(), "ca_cert": "certs/ca.crt",
                        "server_cert": "certs/server.crt", "server_key": "certs/server.key",
                        "app_signature": str(app_signing[1]), "federation": "fedcredit-vertical-test"}}))
    try:
        yield scenario, configs
    finally:
        stop_deployment(scenario, configs, tmp_path)


def _keys(configs: dict[str, Path], per_party: int = 25) -> set[str]:
    """A sample of each party's customer keys, in their canonical spelling ("C-004217")."""
    keys: set[str] = set()
    for name, path in configs.items():
        entry = tomllib.loads(path.read_text())["partner"]
        column = pd.read_csv(path.parent / entry["data"], dtype=str)[entry["id"]]
        keys |= {k.strip().upper() for k in column.sample(per_party, random_state=1)}
    return keys


def _text_under(folder: Path) -> dict[Path, str]:
    return {f: f.read_bytes().decode("latin-1").upper() for f in folder.rglob("*") if f.is_file()}


def test_a_deployed_vertical_consortium_trains_with_dp_and_the_coordinator_sees_no_key(
        vertical_consortium, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario, configs = vertical_consortium
    assert main(["server", "start", "--config", str(scenario), "--detach", "--wait", "30"]) == 0
    for name in PARTIES:
        assert main(["partner", "start", "--config", str(configs[name]), "--detach", "--wait", "30"]) == 0
    capsys.readouterr()
    out = tmp_path / "runs" / "first"
    code = main(["run", "--config", str(scenario), "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, (printed.out + printed.err)[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partitioning"] == "vertical" and summary["alignment"]["intersection"] > 0
    assert not summary["alignment"]["cached"] and summary["federated"]["auc"] is not None
    assert summary["message_phases"] == 9 and [p["phase"] for p in summary["phases"]] == PHASES
    assert {p["name"] for p in summary["partners"]} == set(PARTIES)
    report = {p["name"]: p for p in json.loads((out / "privacy_report.json").read_text())["partners"]}
    assert set(report) == set(PARTIES)
    for name, party in report.items():          # each party's own policy, its own ledger, recounted
        assert party["mode"] == "sample" and 0 < party["epsilon"] <= PRIVACY["run_epsilon"], party
        assert party["budget"] == PRIVACY["epsilon"] and party["recomputed_matches"], party
    for name in PARTIES:
        folder = configs[name].parent
        mechanisms = [e.mechanism for e in PrivacyLedger.inspect(folder / f"{name}.privacy-ledger.jsonl").entries()]
        assert "gaussian-gram" in mechanisms, (name, mechanisms)
        assert ("gaussian-evaluation" in mechanisms) == (name == "lender"), (name, mechanisms)
        parts = list((folder / "vertical").glob(f"{name}.*.model.json"))
        assert len(parts) == 1, parts                     # each party's model part stays on its own side
        part = json.loads(parts[0].read_text())
        assert part["party"] == name and part["weights"] and (part["intercept"] is not None) == (name == "lender")

    # the coordinator holds the combining step only: no party's part, no table, no customer key
    assert (out / "vertical_model.json").is_file() and not (out / "parties").exists()
    assert not [f for f in out.rglob("*") if f.suffix in (".csv", ".parquet", ".xlsx") or f.name.endswith(".model.json")]
    keys = _keys(configs)
    seen = {**_text_under(out), **_text_under(scenario.parent), Path("stdout"): (printed.out + printed.err).upper()}
    leaks = sorted((str(f), k) for f, text in seen.items() for k in keys if k in text)
    assert not leaks, leaks[:5]

    # a second run on the same files reuses every party's cached alignment: no PSI phase
    again = tmp_path / "runs" / "second"
    code = main(["run", "--config", str(scenario), "--out", str(again)])
    printed = capsys.readouterr()
    assert code == 0, (printed.out + printed.err)[-4000:]
    summary2 = json.loads((again / "summary.json").read_text())
    assert summary2["alignment"]["cached"] and summary2["federated"]["auc"] is not None
    assert [p["phase"] for p in summary2["phases"]] == [p for p in PHASES if not p.startswith("psi")]
    for name in PARTIES:
        assert main(["partner", "stop", "--config", str(configs[name])]) == 0
    assert main(["server", "stop", "--config", str(scenario)]) == 0
