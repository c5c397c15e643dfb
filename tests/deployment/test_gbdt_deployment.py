"""A real deployment on 127.0.0.1 grows two trees (model "gbdt"): a SuperLink and three SuperNodes as
separate processes, TLS, node authentication, a signed app and record-level DP at every partner; each
tree level is one message phase, charged in each partner's own ledger. Every process is stopped by PID."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import tomli_w

from fedcredit.cli.main import main
from fedcredit.credit.artefact import ScoringModel
from fedcredit.privacy.ledger import PrivacyLedger
from tests.deployment.test_deployment_run import PARTNERS, _start, consortium  # noqa: F401 (the fixture)

pytestmark = pytest.mark.e2e


def test_a_deployed_consortium_grows_two_private_trees(consortium, tmp_path: Path,  # noqa: F811
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    scenario, configs = consortium
    raw = tomllib.loads(scenario.read_text())
    raw["federation"]["model"] = "gbdt"
    raw["gbdt"] = {"trees": 2, "max_depth": 2, "learning_rate": 0.5}
    scenario.write_text(tomli_w.dumps(raw))
    _start(scenario, configs, capsys)
    out = tmp_path / "run"
    assert main(["run", "--config", str(scenario), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "gbdt" and summary["rounds"] == 2 and summary["dropped"] == []
    phases = summary["gbdt"]["message_phases"]
    assert 2 <= phases <= 4 and summary["federated"]["auc"] is not None
    assert any("secure aggregation does not cover" in n for n in summary["notices"])
    model = ScoringModel.load(out / "model.pt")
    assert model.model_name == "gbdt" and len(model.trees.trees) == 2
    for name, *_ in PARTNERS:
        ledger = PrivacyLedger.inspect(configs[name].parent / f"{name}.privacy-ledger.jsonl")
        assert len([e for e in ledger.entries() if e.mechanism == "gaussian-histogram"]) == phases
        assert main(["partner", "stop", "--config", str(configs[name])]) == 0
    assert main(["server", "stop", "--config", str(scenario)]) == 0
