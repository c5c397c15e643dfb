"""A partner's side of federated boosted trees: one tree level's gradient histograms.

No Flower here (`fedcredit.clients.app` translates the message). The partner scores its training
rows with the ensemble it received, routes them through the tree being grown to its open nodes,
and sums its rows' clipped gradients and hessians per node and column bin
(`fedcredit.credit.histograms`). Under a record-level DP policy the histograms are noised and the
level is charged to the partner's lifetime ledger before anything leaves
(`fedcredit.privacy.histograms`); a tree's first level first checks that the whole tree fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fedcredit.clients.partner import PartnerData, charge, privacy_gate, privacy_statement, report, run_shape
from fedcredit.credit.errors import InputError
from fedcredit.credit.histograms import gradient_histograms, logistic_gradients, open_node_index
from fedcredit.credit.loading import partner_seed
from fedcredit.credit.protocol import PartnerReport, TaskConfig
from fedcredit.credit.trees import Tree, TreeEnsemble
from fedcredit.privacy.accountant import Charge
from fedcredit.privacy.histograms import noisy_histograms

MECHANISM = "gaussian-histogram"
_DESIGN: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}   # (data, transform, bins) → (x, codes): one run's levels


def _design(data: PartnerData, task: TaskConfig) -> tuple[np.ndarray, np.ndarray]:
    key = (data.fingerprint, data.partner.name, task.run, id(data))
    if key not in _DESIGN:
        _DESIGN.clear()
        x = task.transform.transform(data.train.features)
        _DESIGN[key] = (x, task.bins.codes(x))
    return _DESIGN[key]


def level_histograms(data: PartnerData, task: TaskConfig, ensemble: TreeEnsemble, growing: Mapping[str, Any], *,
                     planned: Mapping[str, float] | None = None
                     ) -> tuple[tuple[np.ndarray, np.ndarray] | None, PartnerReport]:
    """((G, H) each (open nodes, total bins), report) for tree `growing["tree"]`, level
    `growing["level"]`; (None, report saying why) when the partner declines."""
    if task.trees is None or task.bins is None or task.transform is None:
        raise InputError("a histogram message needs the [gbdt] settings, the bin plan and the transform",
                         source="coordinator message")
    planned = planned or {}
    tree_no, level = int(growing["tree"]), int(growing["level"])
    nodes = [int(n) for n in growing["nodes"]]
    partial = Tree.from_dict(growing["partial"])
    x, codes = _design(data, task)
    g, h = logistic_gradients(ensemble, x, data.train.label.astype(np.float64))
    node = open_node_index(partial, nodes, x)
    if task.trees.row_share < 1:   # the same rows for every level of a tree (seeded by tree and partner)
        rng = np.random.default_rng(partner_seed(task.federation.seed + tree_no, data.partner.name))
        node[rng.random(len(node)) >= task.trees.row_share] = -1
    columns = growing.get("columns")     # the tree's column sample ([gbdt] colsample; None: all), public
    bins = task.bins.subset(columns)
    grad, hess = gradient_histograms(codes if columns is None else codes[:, columns], node, g, h, len(nodes), bins)
    gate = privacy_gate(data, task)
    if gate is None:
        return (grad, hess), report(data, task, None, privacy=privacy_statement(None, data))
    shape = run_shape(data, task)
    noise = planned.get("dp-sgd") if planned.get("sample_rate") == shape.sample_rate else None
    if level == 0 or noise is None:   # the whole tree must fit before its first level leaves
        plan = gate.round_plan(shape, server_round=tree_no, noise=noise)
        if not plan.train:
            return None, report(data, task, gate, declined=plan.reason,
                                privacy=privacy_statement(gate, data, status="declined", history=True))
        noise = plan.noise_multiplier
    grad, hess, release, sd = noisy_histograms(grad, hess, noise, len(bins.columns))
    after, reason = gate.admit([Charge(release, rows) for rows in data.train_parts])
    if after is None:
        return None, report(data, task, gate, declined=reason,
                            privacy=privacy_statement(gate, data, status="declined", history=True))
    for rows in data.train_parts:   # before the histograms leave (a `fedcredit cv` fold: each part around it)
        charge(gate, data, task, release, mechanism=MECHANISM, round=tree_no, rows=rows, epsilon=after.epsilon)
    return (grad, hess), report(data, task, gate, stats_noise_sd=sd,
                                privacy=privacy_statement(gate, data, spent=after, release=release))

