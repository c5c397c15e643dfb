"""Secure aggregation (SecAgg+) for one training round, called from our Message-API loop.

Flower 1.42 runs SecAgg+ only through its legacy workflow. This module is the bridge on the
coordinator's side: a LegacyContext whose client manager holds one GridClientProxy per
partner node, and a minimal legacy strategy that hands every proxy the same FitIns and keeps
the results. The workflow replaces every result's parameters with the unmasked weighted mean,
so the coordinator learns only the sum of the (weighted) updates, never one partner's update.
Example counts and the partner reports travel in clear beside the masked vector.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.common import (
    FitIns,
    FitRes,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.compat.common.recorddict_compat import parameters_to_arrayrecord
from flwr.server import LegacyContext, SimpleClientManager
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.strategy import Strategy as LegacyStrategy
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key
from flwr.serverapp import Grid


class _KeepResults(LegacyStrategy):
    """Every registered node gets the same FitIns; the (already unmasked) results are kept."""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.results: list[tuple[Any, FitRes]] = []
        self.failures: list[Any] = []

    def initialize_parameters(self, client_manager):  # noqa: D102
        return None

    def configure_fit(self, server_round, parameters, client_manager):  # noqa: D102
        return [(proxy, FitIns(parameters, dict(self.config))) for proxy in client_manager.all().values()]

    def aggregate_fit(self, server_round, results, failures):  # noqa: D102
        self.results, self.failures = list(results), list(failures)
        return (results[0][1].parameters if results else None), {}

    def configure_evaluate(self, server_round, parameters, client_manager):  # noqa: D102
        return []

    def aggregate_evaluate(self, server_round, results, failures):  # noqa: D102
        return None, {}

    def evaluate(self, server_round, parameters):  # noqa: D102
        return None


STAGES = ("setup", "share keys", "collect masked vectors", "unmask")


class _DropoutTolerantSecAggPlus(SecAggPlusWorkflow):
    """Flower 1.42 keeps a node that never answered the setup or share-keys stage among the
    sampled ones, and the unmask stage then asks for key shares of it that cannot exist (it never
    sent any), so the round halts. A node gone before its shares reached anyone holds no secret
    anyone used for a mask: it is forgotten before the next stage.

    It also remembers the workflow's state and the last stage it ran, so that a halted round can
    say which nodes were still answering (the workflow itself returns None either way)."""

    state = None
    stage = ""

    def _enter(self, stage: str, state) -> None:
        self.state, self.stage = state, stage

    def setup_stage(self, grid, context, state):  # noqa: D102
        self._enter(STAGES[0], state)
        return super().setup_stage(grid, context, state)

    def collect_masked_vectors_stage(self, grid, context, state):  # noqa: D102
        self._enter(STAGES[2], state)
        _forget_gone(state)
        return super().collect_masked_vectors_stage(grid, context, state)

    def unmask_stage(self, grid, context, state):  # noqa: D102
        self._enter(STAGES[3], state)
        return super().unmask_stage(grid, context, state)

    def share_keys_stage(self, grid, context, state):  # noqa: D102
        self._enter(STAGES[1], state)
        _forget_gone(state)
        return super().share_keys_stage(grid, context, state)


def _forget_gone(state) -> None:
    """Drop the sampled nodes that did not answer the last stage from the protocol's bookkeeping."""
    gone = state.sampled_node_ids - state.active_node_ids
    if gone:
        state.sampled_node_ids -= gone
        for nid in gone:
            state.nid_to_neighbours.pop(nid, None)
        for neighbours in state.nid_to_neighbours.values():
            neighbours -= gone


@dataclass
class SecureRound:
    """What one secure round returned: the aggregate and each partner's clear-text part."""

    arrays: ArrayRecord | None
    results: list[tuple[int, FitRes]]      # (node id, result whose parameters are the aggregate)
    failures: int
    halted: str = ""                       # the stage at which the protocol stopped ("" = completed)
    alive: frozenset[int] = frozenset()    # nodes that answered the last stage that ran (a node that sent
                                           # its masked vector and died at unmask is in the sum, not alive)
    reports: tuple[FitRes, ...] = ()       # clear-text parts received before a halt (masked-vector stage)


class SecureAggregator:
    """Runs SecAgg+ rounds on a Grid for a fixed set of partner nodes."""

    def __init__(self, grid: Grid, context: Context, *, max_weight: float, timeout: float,
                 clipping_range: float = 16.0):
        self.grid = grid
        self.strategy = _KeepResults()
        self.context = LegacyContext(context, strategy=self.strategy, client_manager=SimpleClientManager())
        self.workflow = _DropoutTolerantSecAggPlus(num_shares=1.0, reconstruction_threshold=0.5, max_weight=max_weight,
                                           clipping_range=clipping_range, timeout=timeout)

    def _enrol(self, node_ids: list[int]) -> None:
        manager = self.context.client_manager
        for cid, proxy in list(manager.all().items()):
            if proxy.node_id not in node_ids:
                manager.unregister(proxy)
        known = {p.node_id for p in manager.all().values()}
        for nid in node_ids:
            if nid not in known:
                manager.register(GridClientProxy(nid, self.grid, self.grid.run.run_id))

    def round(self, rnd: int, arrays: ArrayRecord, config: dict[str, Any], node_ids: list[int]) -> SecureRound:
        """One secure training round over `node_ids`; `arrays` is the global model."""
        self._enrol(node_ids)
        names = list(arrays.keys())
        self.strategy.config, self.strategy.results, self.strategy.failures = config, [], []
        state = self.context.state
        state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord({Key.CURRENT_ROUND: rnd})
        state.array_records[MAIN_PARAMS_RECORD] = parameters_to_arrayrecord(
            ndarrays_to_parameters([a.numpy() for a in arrays.values()]), keep_input=True)
        self.workflow.state, self.workflow.stage = None, ""
        self.workflow(self.grid, self.context)   # returns None even when it halts: check the results
        results = [(proxy.node_id, fitres) for proxy, fitres in self.strategy.results]
        wf = self.workflow.state
        alive = frozenset(wf.active_node_ids) if wf is not None else frozenset()
        if not results:
            received = [fitres for _, fitres in getattr(wf, "legacy_results", [])] if wf is not None else []
            return SecureRound(None, [], len(node_ids), halted=self.workflow.stage or STAGES[0], alive=alive,
                               reports=tuple(received))
        aggregate = parameters_to_ndarrays(results[0][1].parameters)
        restored = ArrayRecord(OrderedDict((n, torch.from_numpy(np.asarray(a, dtype=np.float32)))
                                           for n, a in zip(names, aggregate, strict=True)))
        return SecureRound(restored, results, len(self.strategy.failures), alive=alive)

