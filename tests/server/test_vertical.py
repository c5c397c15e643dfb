"""The vertical phases end to end in one process: the real coordinator (`VerticalTraining`) and the real
ClientApp, with Flower's transport replaced by a direct call per message (`LocalGrid`); the real Flower
simulation and deployment runs are in tests/simulations and tests/deployment."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import tomli_w
from flwr.app import Context, Message, RecordDict

from fedcredit.clients.app import app
from fedcredit.credit.rundir import RunDirectory
from fedcredit.credit.scenario import load_scenario
from fedcredit.credit.synthetic_vertical import write_vertical_consortium
from fedcredit.server.vertical import VerticalTraining


@pytest.fixture(autouse=True)
def task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a Flower process sets before it builds messages."""
    from flwr.supercore.task_identity import TaskIdentity

    for name, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 0)):
        monkeypatch.setattr(TaskIdentity, name, value)


class LocalGrid:
    """Delivers each message to the ClientApp of its node in this process (partition id = node id - 1)."""

    def __init__(self, parties: int):
        self.contexts = {i + 1: Context(run_id=1, node_id=i + 1, node_config={"partition-id": i},
                                        state=RecordDict(), run_config={}) for i in range(parties)}
        self.replies: list[tuple[str, Message]] = []
        self.sent: list[Message] = []

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def send_and_receive(self, messages, *, timeout=None):
        out = []
        for m in messages:
            self.sent.append(m)
            reply = app(m, self.contexts[m.metadata.dst_node_id])
            self.replies.append((str(m.content["config"]["vphase"]), reply))
            out.append(reply)
        return out


def _without_privacy(path: Path) -> Path:
    raw = tomllib.loads(path.read_text())
    raw.pop("privacy", None)
    path.write_text(tomli_w.dumps(raw))
    return path


def _small_dp(path: Path) -> Path:
    """The synthetic consortium's DP policy with statistics noise a few thousand rows support (the default
    20 needs about 3,500 training rows a party: `clients.vertical_party.statistics_refusal`)."""
    raw = tomllib.loads(path.read_text())
    raw["privacy"] = {**raw["privacy"], "epsilon": 8.0, "run_epsilon": 4.0, "stats_noise_multiplier": 6.0}
    path.write_text(tomli_w.dumps(raw))
    return path


def _run(scenario_path: Path, out: Path) -> tuple[dict, LocalGrid]:
    scenario = load_scenario(scenario_path)
    grid = LocalGrid(len(scenario.partners))
    run_dir = RunDirectory(out).create()
    summary = VerticalTraining(grid, scenario, run_dir, simulation=True).run()
    return summary, grid


def test_three_parties_align_train_and_evaluate_without_dp(tmp_path: Path) -> None:
    scenario = _without_privacy(write_vertical_consortium(tmp_path / "synth", rows=3000, seed=3))
    summary, grid = _run(scenario, tmp_path / "run")
    assert summary["partitioning"] == "vertical" and summary["alignment"]["intersection"] > 1000
    assert summary["federated"]["auc"] > 0.65
    assert [p["phase"] for p in summary["phases"]] == ["hello", "psi-blind", "psi-reblind", "psi-align", "gram-1",
                                                       "gram-2", "solve", "score", "evaluate"]
    again, _ = _run(scenario, tmp_path / "run2")          # the alignment is cached: no PSI the second time
    assert again["alignment"]["cached"] and "psi-blind" not in [p["phase"] for p in again["phases"]]
    assert again["federated"]["auc"] == pytest.approx(summary["federated"]["auc"], abs=1e-6)


def test_every_field_a_dp_party_sends_is_inventoried(tmp_path: Path) -> None:
    """Walks every phase of a DP run: each leaf of each reply (report, info, sealed outputs) is in the release
    inventory; the Gram shares travel sealed; the released evaluation is noised."""
    import fnmatch

    from fedcredit.credit.protocol import REPORT_KEY
    from fedcredit.privacy.inventory import SEALED, WITHHELD, classify, reply_paths

    path = _small_dp(write_vertical_consortium(tmp_path / "synth", rows=3000, seed=5))
    summary, grid = _run(path, tmp_path / "run")
    seen = set()
    for phase, reply in grid.replies:
        content = {"report": str(reply.content["report"][REPORT_KEY]),
                   "vinfo": json.loads(str(reply.content["vinfo"]["json"])),
                   "vout": {k: "bytes" for k in reply.content["vout"].keys()}}
        for leaf, value in reply_paths(content):
            assert not any(fnmatch.fnmatchcase(leaf, w) for w in WITHHELD), f"{phase}: {leaf} must be withheld"
            item = classify(leaf, "query.vertical")
            assert item is not None, f"{phase}: {leaf} = {value!r} is not in the release inventory"
            if leaf.startswith("vout."):
                assert item.protection == SEALED
            seen.add(leaf)
    assert {"vout.gram", "vout.masked.lender|platform", "vout.scores", "vinfo.intersection"} <= seen
    assert summary["federated"]["auc"] is not None and summary["partners"][0]["privacy"]["epsilon"] > 0


def test_fedcredit_score_scores_applicants_across_the_parties_files(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from fedcredit.cli.main import main

    path = _without_privacy(write_vertical_consortium(tmp_path / "synth", rows=3000, seed=4))
    summary, _ = _run(path, tmp_path / "run")
    files = {p: tmp_path / "synth" / f"{p}.csv" for p in ("lender", "platform", "bureau")}
    out = tmp_path / "scores.csv"
    assert main(["score", str(tmp_path / "run"), f"lender={files['lender']}", "--party", f"platform={files['platform']}",
                 "--party", f"bureau={files['bureau']}", "--out", str(out)]) == 0
    scores = pd.read_csv(out)
    assert len(scores) == summary["alignment"]["intersection"] and scores["p_bad"].between(0, 1).all()
    lender = pd.read_csv(files["lender"]).assign(key=lambda f: f["customer_id"].str.strip().str.casefold())
    joined = scores.merge(lender[["key", "default"]], on="key")
    assert len(joined) == len(scores) and roc_auc_score(joined["default"], joined["p_bad"]) > 0.65
    capsys.readouterr()
    assert main(["score", str(tmp_path / "run"), f"lender={files['lender']}", "--out", str(out)]) != 0   # exists
    assert main(["score", str(tmp_path / "run"), f"lender={files['lender']}", "--out", str(tmp_path / "x.csv")]) != 0
    assert "no applicant file for parties ['bureau', 'platform']" in capsys.readouterr().err


def _payloads(message: Message) -> list[bytes]:
    """Every value a message carries, as bytes (config values, relayed blobs, the report JSON)."""
    out = []
    for record in message.content.config_records.values():
        for value in record.values():
            out.append(value if isinstance(value, bytes) else str(value).encode())
    return out


def test_no_customer_key_in_any_message_or_the_coordinators_log(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    import pandas as pd

    from fedcredit.credit.customer_keys import normalise_key

    path = _small_dp(write_vertical_consortium(tmp_path / "synth", rows=2000, seed=8))
    keys = set()
    for name in ("lender", "platform", "bureau"):
        frame = pd.read_csv(tmp_path / "synth" / f"{name}.csv", dtype=str, keep_default_na=False)
        column = next(c for c in frame.columns if c in ("customer_id", "customer_ref", "cust_id", "id")
                      or c.endswith("_id") or c.endswith("_ref"))
        keys |= {k for k in frame[column].head(200)} | {normalise_key(k) for k in frame[column].head(200)}
    with caplog.at_level("DEBUG"):
        summary, grid = _run(path, tmp_path / "run")
    assert summary["alignment"]["intersection"] > 1000 and len(keys) > 400
    blobs = [b for m in [*grid.sent, *(r for _, r in grid.replies)] for b in _payloads(m)]
    assert sum(len(b) for b in blobs) > 100_000                      # the blinded sets went through
    leaked = [k for k in keys if any(k.encode() in b for b in blobs) or k in caplog.text]
    assert leaked == []


def test_plan_shows_each_partys_cost_and_cv_refuses_a_vertical_scenario(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from fedcredit.cli.main import main

    path = write_vertical_consortium(tmp_path / "synth", rows=2000, seed=6)
    capsys.readouterr()
    assert main(["plan", "--scenario", str(path)]) != 0          # ~1,400 training rows: too few at noise 20
    err = capsys.readouterr().err
    assert "too few training rows for private statistics" in err and "stats_noise_multiplier" in err
    path = _small_dp(path)
    assert main(["plan", "--scenario", str(path)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("lender", "platform", "bureau")) and "Gram release" in out
    assert not list((tmp_path / "synth").glob("*.privacy-ledger.jsonl")) or all(
        "gaussian" not in f.read_text() for f in (tmp_path / "synth").glob("*.privacy-ledger.jsonl"))
    assert main(["cv", "--scenario", str(path), "--folds", "2"]) != 0
    assert "not available for vertical scenarios" in capsys.readouterr().err


def test_a_reordered_file_with_the_same_customers_is_aligned_again(tmp_path: Path) -> None:
    """The cache holds row numbers: valid only for the file they were computed on."""
    import pandas as pd

    path = _without_privacy(write_vertical_consortium(tmp_path / "synth", rows=2000, seed=9))
    first, _ = _run(path, tmp_path / "run")
    bureau = tmp_path / "synth" / "bureau.csv"
    pd.read_csv(bureau, dtype=str, keep_default_na=False).iloc[::-1].to_csv(bureau, index=False)
    again, _ = _run(path, tmp_path / "run2")
    assert not again["alignment"]["cached"] and again["alignment"]["intersection"] == first["alignment"]["intersection"]
    assert again["federated"]["auc"] == pytest.approx(first["federated"]["auc"], abs=1e-6)
def _own_configs(scenario_path: Path, changes: dict[str, dict]) -> dict[int, dict[str, str]]:
    """Each party's own partner.toml (its [[partners]] entry, data path absolute, with `changes`), as the
    node config of a deployed SuperNode names it; node id → node config."""
    raw = tomllib.loads(scenario_path.read_text())
    nodes = {}
    for i, entry in enumerate(raw["partners"]):
        own = {**entry, "data": str(scenario_path.parent / entry["data"]), **changes.get(entry["name"], {})}
        path = scenario_path.parent / f"{entry['name']}.partner.toml"
        path.write_text(tomli_w.dumps({"partner": {k: v for k, v in own.items() if v is not None}}))
        nodes[i + 1] = {"partner-config": str(path)}
    return nodes


def _deployed_run(coordinator: Path, nodes: dict[int, dict[str, str]], out: Path, grid: LocalGrid | None = None) -> None:
    """A run whose parties read their own configs, as deployed ClientApps do."""
    grid = grid or LocalGrid(len(nodes))
    for node, config in nodes.items():
        grid.contexts[node].node_config = config
    VerticalTraining(grid, load_scenario(coordinator), RunDirectory(out).create(), simulation=True).run()


def test_a_party_whose_own_config_declares_another_role_stops_the_run_before_any_psi(tmp_path: Path) -> None:
    from fedcredit.credit.errors import FederationError

    scenario = _without_privacy(write_vertical_consortium(tmp_path / "synth", rows=1000, seed=4))
    coordinator = tmp_path / "synth" / "coordinator.toml"      # names the bureau as the label holder
    raw = tomllib.loads(scenario.read_text())
    for entry in raw["partners"]:
        if entry["name"] in ("lender", "bureau"):
            entry["label"] = None if entry["name"] == "lender" else "default"
            entry.pop("bad", None)
    raw["partners"] = [{k: v for k, v in e.items() if v is not None} for e in raw["partners"]]
    coordinator.write_text(tomli_w.dumps(raw))
    grid = LocalGrid(3)
    with pytest.raises(FederationError, match=r"partner 'lender' does not declare the role.*itself the label holder"):
        _deployed_run(coordinator, _own_configs(scenario, {}), tmp_path / "run", grid)
    assert {phase for phase, _ in grid.replies} == {"hello"}

    numeric = [c for c in raw["partners"][1]["numeric"] if c != "night_share"]    # one column fewer at the party
    nodes = _own_configs(scenario, {"platform": {"numeric": numeric, "drop": ["night_share"]}})
    with pytest.raises(FederationError, match=r"partner 'platform'.*only in the scenario: \['night_share'\]"):
        _deployed_run(scenario, nodes, tmp_path / "run2")


def test_bad_input_at_a_party_ends_the_run_with_its_one_line_reason(tmp_path: Path) -> None:
    from fedcredit.credit.errors import FederationError

    scenario = _without_privacy(write_vertical_consortium(tmp_path / "synth", rows=1000, seed=4))
    nodes = _own_configs(scenario, {"platform": {"id": "customer_no"}})
    with pytest.raises(FederationError, match=r"partner 'platform' declined phase 'hello': .*no key column "
                                              r"'customer_no'") as caught:
        _deployed_run(scenario, nodes, tmp_path / "run")
    assert "<class" not in str(caught.value) and "Traceback" not in str(caught.value)


@pytest.mark.parametrize("shared", [0, 40])
def test_too_small_an_overlap_ends_the_run_after_the_psi_before_any_training_release(tmp_path: Path,
                                                                                   shared: int) -> None:
    import pandas as pd

    from fedcredit.credit.errors import FederationError

    path = _without_privacy(write_vertical_consortium(tmp_path / "synth", rows=1000, seed=12))
    bureau = tmp_path / "synth" / "bureau.csv"
    frame = pd.read_csv(bureau, dtype=str, keep_default_na=False)
    frame["customer_id"] = [k if i < shared else f"X-{i:06d}" for i, k in enumerate(frame["customer_id"])]
    frame.to_csv(bureau, index=False)
    with pytest.raises(FederationError, match=r"share \d+ customers, fewer than min_rows = 200: check"):
        _run(path, tmp_path / "run")
    assert not (tmp_path / "run" / "parties").exists()
