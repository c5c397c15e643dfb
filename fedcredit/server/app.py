"""fedcredit ServerApp: coordinates the partners (`flwr run .` or `fedcredit simulate`).

Run config (pyproject `[tool.flwr.app.config]`, overridable with `--run-config`):
`scenario` (path; "" = the embedded synthetic consortium), `out-dir`, and optional
overrides `rounds`, `model`, `strategy` (0 / "" keep the scenario's value); in a deployment
`fedcredit run` adds `app-signature` (checked by the partners) and `registered-nodes` (which
partner each node's key was registered for: a node may speak only under that name). `fedcredit cv`
(through `fedcredit.simulations.runner.simulate_batch`) sets `trainings`: several runs, each with its own
scenario and run directory, trained one after another in one Flower run.
"""

from __future__ import annotations

import json
from datetime import datetime
from logging import ERROR
from pathlib import Path
from typing import Annotated

from flwr.app import Context
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp
from pydantic import BeforeValidator, ConfigDict, Field
from pydantic.dataclasses import dataclass as schema_dataclass

from fedcredit.credit.errors import FederationError, InputError
from fedcredit.credit.scenario import Scenario, load_scenario
from fedcredit.credit.validation import STRICT, Flag, Whole, rule, validated

app = ServerApp()


def _registered_nodes(text: object) -> object:
    """`registered-nodes`: JSON {partner name: [node ids]} as `fedcredit run` passes it (a partner has
    two during a key rotation; a single id is read too) → {node id: name}."""
    if isinstance(text, dict):          # built in Python (a simulation), not read from a run config
        return text
    if not text:
        return {}
    owners: dict[int, str] = {}
    try:
        for name, ids in json.loads(str(text)).items():
            for node in ids if isinstance(ids, list) else [ids]:
                if isinstance(node, bool) or owners.setdefault(int(node), str(name)) != str(name):
                    raise ValueError(node)
    except (ValueError, TypeError, AttributeError):
        raise ValueError(text) from None
    return owners


_NODES = 'must be JSON {"partner": [node ids]}, each node id under one partner'


@schema_dataclass(frozen=True, config=ConfigDict(**STRICT, validate_by_name=True, validate_by_alias=True))
class RunSettings:
    """The run config (`[tool.flwr.app.config]` and `--run-config`; keys spelled with '-'),
    validated once."""

    scenario: str = rule("must be the path of a scenario file (\"\": the embedded consortium)", "")
    out_dir: str = rule("must be a folder path (\"\": runs/<scenario>-<time>)", "", alias="out-dir")
    rounds: Annotated[Whole, Field(ge=0)] = rule("must be a whole number ≥ 0", 0)
    model: str = rule("must name a model (\"\": the scenario's)", "")
    strategy: str = rule("must name a strategy (\"\": the scenario's)", "")
    deployment: Flag = rule("must be true or false", False)
    # node id → the partner its key is for
    registered_nodes: Annotated[dict[int, str], BeforeValidator(_registered_nodes)] = rule(
        _NODES, default_factory=dict, alias="registered-nodes")
    app_signature: str = rule("must be the app's signature line", "", alias="app-signature")   # checked by the partners, not here
    # `fedcredit cv`: JSON [{"scenario": path, "out-dir": path}, ...], trained one after another in this
    # Flower run (each a whole run of its own: run directory, run id, privacy plan); "" = one run of `scenario`
    trainings: str = rule('must be JSON [{"scenario": path, "out-dir": path}, ...] ("": one run)', "")

    @classmethod
    def from_run_config(cls, cfg: dict) -> RunSettings:
        known = sorted(info.alias or name for name, info in cls.__pydantic_fields__.items())
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise InputError(f"unknown run-config key(s) {unknown}; known: {known}", source="run config")
        return validated(cls, cfg, locate="run config")

    def resolve_scenario(self) -> Scenario:
        if self.scenario:
            scenario = load_scenario(self.scenario)
        else:
            from fedcredit.privacy.embedded import default_scenario_path

            scenario = load_scenario(default_scenario_path())
        changes = {k: v for k, v in (("rounds", self.rounds), ("model", self.model),
                                     ("strategy", self.strategy)) if v}
        return scenario.with_federation(**changes) if changes else scenario

    def each_training(self) -> list[RunSettings]:
        """The runs this Flower run trains: itself, or each of `trainings` (with this run's overrides)."""
        if not self.trainings:
            return [self]
        try:
            entries = [(str(t["scenario"]), str(t["out-dir"])) for t in json.loads(self.trainings)]
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(f"trainings: {exc}", source="run config", field="trainings") from None
        return [RunSettings(scenario, out_dir, self.rounds, self.model, self.strategy, self.deployment,
                            self.registered_nodes, self.app_signature) for scenario, out_dir in entries]

    def resolve_out_dir(self, scenario: Scenario) -> Path:
        if self.out_dir:
            return Path(self.out_dir)
        return Path("runs") / f"{scenario.name}-{datetime.now():%Y%m%d-%H%M%S}"


@app.main()
def main(grid: Grid, context: Context) -> None:
    settings = RunSettings.from_run_config(dict(context.run_config))
    from fedcredit.server.grid import DEFAULT_PULL_INTERVAL, SIMULATION_PULL_INTERVAL, PromptGrid, prompt_object_pulls

    # Flower's deployed Grid looks for replies every 3 s, its simulation Grid every 0.1 s (twice a round)
    grid = PromptGrid(grid, DEFAULT_PULL_INTERVAL if settings.deployment else SIMULATION_PULL_INTERVAL)
    if settings.deployment:
        prompt_object_pulls()
    for one in settings.each_training():   # `fedcredit cv`: the next only after one finished
        if not _train(grid, context, one):
            break


def _train(grid: Grid, context: Context, settings: RunSettings) -> bool:
    """One federated training into its run directory; False when it could not finish (failed.json says why)."""
    from fedcredit.credit.rundir import RunDirectory
    from fedcredit.server.strategy import build_strategy, with_partner_level_dp
    from fedcredit.server.training import FederatedTraining

    scenario = settings.resolve_scenario()
    run_dir = RunDirectory(settings.resolve_out_dir(scenario)).create()
    config = dict(context.run_config)
    if settings.trainings:
        config.update({"scenario": settings.scenario, "out-dir": settings.out_dir})
    run_dir.write_config({"run_config": config, "scenario": scenario.to_dict()})
    if scenario.vertical:      # same partners' apps, the vertical phases (`fedcredit.server.vertical`)
        from fedcredit.server.vertical import VerticalTraining

        try:
            VerticalTraining(grid, scenario, run_dir, simulation=not settings.deployment, context=context,
                             registered=settings.registered_nodes).run()
        except (FederationError, InputError) as exc:
            log(ERROR, "fedcredit: the run cannot finish: %s", exc)
            run_dir.write_failure(str(exc))
            return False
        return True
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
        return False
    return True
