"""Benchmark: seconds per round in a real deployment (SuperLink + 3 SuperNodes on 127.0.0.1,
TLS + node authentication) vs the Simulation Engine, for the same scenario, with and without
SecAgg+. Prints a table and writes benchmarks/results/deployment.json.

The deployments run in pairs, plain then SecAgg+, and the SecAgg+/plain ratio is taken pair by pair
(its median is reported): this machine's speed drifts by tens of percent over minutes, and a ratio of
two runs minutes apart would mostly measure that drift.

    .venv/bin/python benchmarks/bench_deployment.py [--rounds 5] [--pairs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fedcredit.cli.main import main as cli  # noqa: E402
from fedcredit.credit.atomic import atomic_write_json  # noqa: E402
from fedcredit.credit.synthetic import default_consortium  # noqa: E402
from fedcredit.credit.synthetic_files import write_consortium  # noqa: E402
from fedcredit.deployment import PROJECT_DIR  # noqa: E402
from fedcredit.deployment.app_bundle import sign_app  # noqa: E402
from fedcredit.protection import tls  # noqa: E402
from fedcredit.protection.app_signing import new_signing_key  # noqa: E402
from fedcredit.server.app import RunSettings  # noqa: E402
from fedcredit.simulations.runner import simulate  # noqa: E402
from tests.processes import free_port, kill_tree, pids_with_argument  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def round_seconds(run_dir: Path) -> float:
    """Median wall seconds of the training rounds (records 1..R-1 each time one full round)."""
    records = [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]
    return statistics.median(r["seconds"] for r in records[1:-1] or records[1:])


def _scenario(data: Path, secure: bool, rounds: int) -> dict:
    scenario = tomllib.loads((data / "scenario.toml").read_text())
    scenario.pop("synthetic", None)
    scenario["federation"].update(rounds=rounds, secure_aggregation=secure)
    for entry in scenario["partners"]:
        entry["data"] = str(data / entry["data"])
    return scenario


def deployment(folder: Path, data: Path, secure: bool, rounds: int) -> Path:
    """Write a 3-partner local deployment over the synthetic tables (TLS, node authentication, a
    signed app); return the coordinator file."""
    coord = folder / "coordinator"
    (coord / "keys").mkdir(parents=True)
    tls.make_certificates(coord / "certs")
    app_pub = new_signing_key(coord / "app-signing.key")
    (coord / "fedcredit-app.sig").write_text(sign_app(coord / "app-signing.key", PROJECT_DIR).to_text() + "\n")
    port = free_port()
    scenario = _scenario(data, secure, rounds)
    for entry in scenario["partners"]:
        name = entry["name"]
        node = folder / name
        node.mkdir()
        tls.new_node_key(node / "node.key")
        (coord / "keys" / f"{name}.pub").write_bytes((node / "node.key.pub").read_bytes())
        (node / "partner.toml").write_text(tomli_w.dumps({
            "partner": {"name": name, "kind": entry["kind"], "data": entry["data"]},
            "privacy": {"mode": "sample", "epsilon": 8.0},       # record-level DP, as the default scenario
            "node": {"superlink": f"127.0.0.1:{port}", "port": free_port(),
                     "root_certificates": str(coord / "certs" / "ca.crt"), "auth_key": "node.key",
                     "trusted_app_keys": [str(app_pub)]}}))
        entry.pop("data")
        entry["public_key"] = f"keys/{name}.pub"
    scenario["coordinator"] = {"address": "127.0.0.1", "port": port, "ca_cert": "certs/ca.crt",
                               "server_cert": "certs/server.crt", "server_key": "certs/server.key",
                               "app_signature": "fedcredit-app.sig"}
    path = coord / "coordinator.toml"
    path.write_text(tomli_w.dumps(scenario))
    return path


def run_deployment(folder: Path, secure: bool, rounds: int) -> float:
    # Each deployment gets its own copy of the data and its own machine state: the partners' lifetime
    # ledgers would otherwise carry the budget one run spent into the next (a partner then declines).
    os.environ["FEDCREDIT_STATE_DIR"] = str(folder / "state")
    data = write_consortium(default_consortium(), folder / "data", rounds=rounds).parent
    coordinator = deployment(folder, data, secure, rounds)
    partners = sorted(folder.glob("*/partner.toml"))
    try:
        assert cli(["server", "start", "--config", str(coordinator), "--detach"]) == 0
        for p in partners:
            assert cli(["partner", "start", "--config", str(p), "--detach"]) == 0
        out = folder / "run"
        started = time.perf_counter()
        assert cli(["run", "--config", str(coordinator), "--out", str(out)]) == 0
        print(f"deployment {'SecAgg+' if secure else 'plain'}: {time.perf_counter() - started:.0f} s in all")
        return round_seconds(out)
    finally:
        for p in partners:
            cli(["partner", "stop", "--config", str(p)])
        cli(["server", "stop", "--config", str(coordinator)])
        kill_tree(pids_with_argument(str(folder)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=3, help="plain + SecAgg+ deployments, one after the other")
    args = parser.parse_args()
    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["FEDCREDIT_STATE_DIR"] = str(tmp / "state")    # never spend this machine's ledgers
        data = write_consortium(default_consortium(), tmp / "data", rounds=args.rounds).parent
        for secure in (False, True):
            scenario = tmp / f"sim-{secure}.toml"
            scenario.write_text(tomli_w.dumps(_scenario(data, secure, args.rounds)))
            result = simulate(RunSettings(scenario=str(scenario), out_dir=str(tmp / f"sim-run-{secure}")),
                              yardsticks=False)
            rows[f"simulation_{'secagg' if secure else 'plain'}_s_per_round"] = round_seconds(result.run_dir)
        pairs = [{"plain_s_per_round": run_deployment(tmp / f"deploy-{i}-plain", False, args.rounds),
                  "secagg_s_per_round": run_deployment(tmp / f"deploy-{i}-secagg", True, args.rounds)}
                 for i in range(args.pairs)]
    for pair in pairs:
        pair["secagg_vs_plain"] = round(pair["secagg_s_per_round"] / pair["plain_s_per_round"], 2)
    rows["deployment_plain_s_per_round"] = statistics.median(p["plain_s_per_round"] for p in pairs)
    rows["deployment_secagg_s_per_round"] = statistics.median(p["secagg_s_per_round"] for p in pairs)
    report = {"scenario": "default synthetic consortium (3 partners, 58,000 rows); deployed: TLS, node "
                          "authentication, signed app, record-level DP (epsilon 8 each)", "rounds": args.rounds, **rows,
              "secagg_overhead_simulation_s": rows["simulation_secagg_s_per_round"] - rows["simulation_plain_s_per_round"],
              "secagg_overhead_deployment_s": rows["deployment_secagg_s_per_round"] - rows["deployment_plain_s_per_round"],
              "deployment_vs_simulation_plain": rows["deployment_plain_s_per_round"] / rows["simulation_plain_s_per_round"],
              "secagg_vs_plain_deployment": statistics.median(p["secagg_vs_plain"] for p in pairs),
              "pairs": pairs}
    targets = {"deployment_plain_s_per_round": "≤ 3 s", "secagg_vs_plain_deployment": "≤ 2×"}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "deployment.json", report)
    width = max(map(len, report))
    for key, value in report.items():
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        if key == "pairs":
            shown = "  ".join(f"{p['plain_s_per_round']:.2f} / {p['secagg_s_per_round']:.2f} s = {p['secagg_vs_plain']:.2f}×"
                              for p in value)
        print(f"{key:<{width}}  {shown}" + (f"   (target {targets[key]})" if key in targets else ""))


if __name__ == "__main__":
    main()
