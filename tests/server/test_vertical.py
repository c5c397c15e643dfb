"""The vertical phases end to end in one process: the real coordinator (`VerticalTraining`) and the real
ClientApp, with Flower's transport replaced by a direct call per message (`LocalGrid`); the real Flower
simulation and deployment runs are in tests/simulations and tests/deployment."""

from __future__ import annotations

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

    def get_node_ids(self) -> list[int]:
        return list(self.contexts)

    def send_and_receive(self, messages, *, timeout=None):
        out = []
        for m in messages:
            reply = app(m, self.contexts[m.metadata.dst_node_id])
            self.replies.append((str(m.content["config"]["vphase"]), reply))
            out.append(reply)
        return out


def _without_privacy(path: Path) -> Path:
    raw = tomllib.loads(path.read_text())
    raw.pop("privacy", None)
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
