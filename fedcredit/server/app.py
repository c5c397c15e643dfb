"""fedcredit ServerApp: coordinates the partners (`flwr run .` or `fedcredit simulate`).

Run config (pyproject `[tool.flwr.app.config]`, overridable with `--run-config`):
`scenario` (path; "" = the embedded synthetic consortium), `out-dir`, and optional
overrides `rounds`, `model`, `strategy` (0 / "" keep the scenario's value); in a deployment
`fedcredit run` adds `app-signature` (checked by the partners) and `registered-nodes` (which
partner each node's key was registered for: a node may speak only under that name).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from logging import ERROR
from pathlib import Path

from flwr.app import Context
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp

from fedcredit.credit.errors import FederationError, InputError
from fedcredit.credit.scenario import Scenario, load_scenario

app = ServerApp()


@dataclass(frozen=True)
class RunSettings:
    """The run config, validated once."""

    scenario: str = ""
    out_dir: str = ""
    rounds: int = 0
    model: str = ""
    strategy: str = ""
    deployment: bool = False
    registered_nodes: dict[int, str] = field(default_factory=dict)   # node id → the partner its key is for

    @classmethod
    def from_run_config(cls, cfg: dict) -> RunSettings:
        known = {"scenario", "out-dir", "rounds", "model", "strategy", "deployment", "app-signature",
                 "registered-nodes"}
        unknown = set(cfg) - known
        if unknown:
            raise InputError(f"unknown run-config key(s) {sorted(unknown)}; known: {sorted(known)}",
                             source="run config")
        rounds = cfg.get("rounds", 0)
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
            raise InputError("must be a whole number ≥ 0", source="run config", field="rounds")
        return cls(str(cfg.get("scenario", "")), str(cfg.get("out-dir", "")), rounds,
                   str(cfg.get("model", "")), str(cfg.get("strategy", "")), bool(cfg.get("deployment", False)),
                   _registered_nodes(cfg.get("registered-nodes", "")))

    def resolve_scenario(self) -> Scenario:
        if self.scenario:
            scenario = load_scenario(self.scenario)
        else:
            from fedcredit.privacy.embedded import default_scenario_path

            scenario = load_scenario(default_scenario_path())
        changes = {k: v for k, v in (("rounds", self.rounds), ("model", self.model),
                                     ("strategy", self.strategy)) if v}
        return scenario.with_federation(**changes) if changes else scenario

    def resolve_out_dir(self, scenario: Scenario) -> Path:
        if self.out_dir:
            return Path(self.out_dir)
        return Path("runs") / f"{scenario.name}-{datetime.now():%Y%m%d-%H%M%S}"


def _registered_nodes(text: object) -> dict[int, str]:
    """`registered-nodes`: JSON {partner name: [node ids]} as `fedcredit run` passes it (a partner has
    two during a key rotation; a single id is read too) → {node id: name}."""
    if not text:
        return {}
    owners: dict[int, str] = {}
    try:
        for name, ids in json.loads(str(text)).items():
            for node in ids if isinstance(ids, list) else [ids]:
                if isinstance(node, bool) or owners.setdefault(int(node), str(name)) != str(name):
                    raise ValueError(node)
    except (ValueError, TypeError, AttributeError):
        raise InputError('must be JSON {"partner": [node ids]}, each node id under one partner', source="run config",
                         field="registered-nodes") from None
    return owners


@app.main()
def main(grid: Grid, context: Context) -> None:
    from fedcredit.credit.rundir import RunDirectory
    from fedcredit.server.strategy import build_strategy, with_partner_level_dp
    from fedcredit.server.training import FederatedTraining

    settings = RunSettings.from_run_config(dict(context.run_config))
    scenario = settings.resolve_scenario()
    run_dir = RunDirectory(settings.resolve_out_dir(scenario)).create()
    run_dir.write_config({"run_config": dict(context.run_config), "scenario": scenario.to_dict()})
    # The round loop waits for the scenario's nodes once and then addresses the partners it knows;
    # the strategy must never block on a node that died (its sampler waits for min_available_nodes).
    strategy = build_strategy(scenario.federation, 1)
    if scenario.client_dp is not None:
        strategy = with_partner_level_dp(strategy, scenario.client_dp, len(scenario.partners))
    secure = scenario.federation.secure_aggregation
    secure = settings.deployment if secure is None else secure
    try:
        FederatedTraining(grid, scenario, run_dir, strategy, simulation=not settings.deployment,
                          context=context, secure=secure, registered=settings.registered_nodes).run()
    except (FederationError, InputError) as exc:     # a run that cannot go on: one line, and why, on disk
        log(ERROR, "fedcredit: the run cannot finish: %s", exc)
        run_dir.write_failure(str(exc))
