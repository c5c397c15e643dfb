"""docs/deployment.md, followed literally: its tagged bash blocks run in order in an empty folder,
with only the venv's `fedcredit` path and free loopback ports put in (real processes on 127.0.0.1,
every one stopped by PID even on failure)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fedcredit.credit.artefact import ScoringModel
from fedcredit.privacy.ledger import PrivacyLedger
from tests.processes import free_port_block, kill_tree, pids_with_argument

pytestmark = pytest.mark.e2e
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
TAG = re.compile(r"<!-- guide-test: (?P<name>[\w-]+) -->\n```bash\n(?P<body>.*?)\n```", re.S)


def guide_blocks() -> dict[str, str]:
    """The guide's bash blocks tagged `<!-- guide-test: NAME -->` on the line before, in order."""
    return {m["name"]: m["body"] for m in TAG.finditer(GUIDE.read_text(encoding="utf-8"))}


def _localised(script: str, superlink_port: int, first_node_port: int) -> str:
    """The guide's block with this machine's fedcredit and free ports (the guide uses 9092, 9094+)."""
    fedcredit = Path(sys.executable).with_name("fedcredit")
    script = script.replace("F=/path/to/fedcredit/.venv/bin/fedcredit\n", "")
    script = f"F={fedcredit}\n" + script
    return script.replace("9092", str(superlink_port)).replace("port=9094", f"port={first_node_port}")


def test_the_guide_reaches_a_first_run_and_a_key_rotation_in_its_own_commands(tmp_path: Path) -> None:
    """Issue 9: a fresh reader reaches a first deployed run (signed app, TLS, node auth, SecAgg+, DP)
    and rotates a partner's node key, in the documented commands only."""
    blocks = guide_blocks()
    assert list(blocks) == ["first-run", "stop", "rotate-key"], "docs/deployment.md lost a tagged block"
    superlink = free_port_block(2)             # the guide's SuperLink takes port + 1 on loopback
    node = free_port_block(3)                  # the guide's partners take port, port + 1, port + 2
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
    demo = tmp_path / "demo"
    outputs: dict[str, str] = {}
    try:
        for name, cwd in (("first-run", tmp_path), ("rotate-key", demo), ("stop", demo)):
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", _localised(blocks[name], superlink, node)],
                                  cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, timeout=900)
            outputs[name] = done.stdout
            assert done.returncode == 0, f"guide block {name!r} failed:\n{done.stdout[-4000:]}"
    finally:
        kill_tree(pids_with_argument(str(tmp_path)))
    demo = tmp_path / "demo"
    summary = json.loads((demo / "runs" / "first" / "summary.json").read_text())
    assert sorted(p["name"] for p in summary["partners"]) == ["bank-1", "bank-2", "platform-3"]
    assert summary["secure_aggregation"] is True and summary["rounds"] == 3 and summary["dropped"] == []
    for p in summary["partners"]:
        assert p["privacy"]["mode"] == "sample" and 0 < p["privacy"]["epsilon"] <= 2.0   # a quarter of 8.0
        ledger = PrivacyLedger.inspect(demo / p["name"] / f"{p['name']}.privacy-ledger.jsonl")
        assert [e.mechanism for e in ledger.entries()] == ["gaussian-statistics"] * 2 + ["dp-sgd"] * 3 + [
            "gaussian-evaluation"]
    # reported metrics are noised under DP: the model itself is scored exactly on the partners' rows
    model = ScoringModel.load(demo / "runs" / "first" / "model.pt")
    pooled = pd.concat([pd.read_csv(demo / "data" / f"{name}.csv") for name in ("bank-1", "bank-2", "platform-3")])
    # measured 0.54-0.65 (12,000 rows, ε ≤ 2 a run; 0.77 pooled without DP): above chance by > 4 standard errors
    assert roc_auc_score(pooled["default"], model.predict_proba(pooled)) > 0.52
    assert (demo / "runs" / "first" / "privacy_report.html").exists()
    assert "Traceback" not in "".join(outputs.values())
    assert outputs["first-run"].count(" online ") >= 3
    # after the rotation bank-1 runs on its new key, the old one is retired and its files are gone
    status = outputs["rotate-key"].rsplit("SuperLink:", 1)[-1]
    bank1 = [line for line in status.splitlines() if line.strip().startswith("bank-1 ")]
    assert sorted(line.split()[3] for line in bank1) == ["online", "unregistered"], status
    assert not (demo / "bank-1" / "node.key.old").exists() and (demo / "bank-1" / "node.key").exists()
    assert 'public_key = "keys/bank-1.next.pub"' in (demo / "coordinator" / "coordinator.toml").read_text()
    assert not pids_with_argument(str(tmp_path)), "the guide's stop commands left processes running"
