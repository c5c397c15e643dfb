"""Flower's own aggregation strategies, chosen and configured from the scenario."""

from __future__ import annotations

from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx, Strategy

from credit.scenario import FederationSettings


def build_strategy(federation: FederationSettings, min_nodes: int) -> Strategy:
    """FedAvg (default), FedProx or FedAdam; every available partner trains each round."""
    common = dict(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=min_nodes,
                  min_evaluate_nodes=min_nodes, min_available_nodes=min_nodes)
    if federation.strategy == "fedprox":
        return FedProx(proximal_mu=federation.proximal_mu, **common)
    if federation.strategy == "fedadam":
        return FedAdam(eta=federation.server_learning_rate, eta_l=federation.learning_rate, **common)
    return FedAvg(**common)
