"""Flower's own aggregation strategies, chosen and configured from the scenario, and
Flower's partner-level DP wrapper (fixed clipping + server noise + RDP accountant)."""

from __future__ import annotations

import math
from typing import Any

from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    FedAdam,
    FedAvg,
    FedProx,
    Strategy,
)

from fedcredit.credit.scenario import FederationSettings, PrivacyPolicy


def build_strategy(federation: FederationSettings, min_nodes: int) -> Strategy:
    """FedAvg (default), FedProx or FedAdam; every available partner trains each round."""
    common = dict(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=min_nodes,
                  min_evaluate_nodes=min_nodes, min_available_nodes=min_nodes)
    if federation.strategy == "fedprox":
        return FedProx(proximal_mu=federation.proximal_mu, **common)
    if federation.strategy == "fedadam":
        return FedAdam(eta=federation.server_learning_rate, eta_l=federation.learning_rate, **common)
    return FedAvg(**common)


def with_partner_level_dp(strategy: Strategy, policy: PrivacyPolicy, partners: int) -> Strategy:
    """Wrap for partner-level DP: each update clipped by the partner, Gaussian noise added by the
    server, epsilon tracked by Flower's RDP accountant (no sampling amplification)."""
    from flwr.serverapp import PrivacyConfig, RdpAccountant
    from flwr.supercore.privacy_accounting import NeighboringRelation, SamplingMethod

    accountant = RdpAccountant(PrivacyConfig(
        target_delta=policy.delta, population_size=partners,
        neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
        sampling_method=SamplingMethod.NO_AMPLIFICATION))
    return DifferentialPrivacyClientSideFixedClipping(
        strategy, policy.client_noise_multiplier, policy.client_clipping_norm, partners, accountant=accountant)


def partner_level_dp_statement(strategy: Strategy, policy: PrivacyPolicy, partners: int) -> dict[str, Any]:
    spent = strategy.privacy_spent() if hasattr(strategy, "privacy_spent") else None
    epsilon = None if spent is None else float(spent.epsilon)
    unbounded = epsilon is not None and not math.isfinite(epsilon)
    statement = {
        "unit": "one partner (its whole dataset)",
        "accountant": "Flower 1.42 RdpAccountant (no sampling amplification, equal weights)",
        "noise_multiplier": policy.client_noise_multiplier,
        "clipping_norm": policy.client_clipping_norm,
        "delta": policy.delta,
        "epsilon": None if unbounded else epsilon,
        "warning": (f"with only {partners} partners the server noise (std {policy.client_noise_multiplier:g} × "
                    f"clip / {partners} on the average) must be very large for a meaningful epsilon; "
                    "this protects partners, not individual customers — use mode 'sample' for that"),
    }
    if unbounded:   # standard JSON has no Infinity: say it in words
        statement["epsilon_undefined"] = (f"the accountant's epsilon is {epsilon} (no finite bound at this "
                                          "delta): there is no meaningful partner-level guarantee")
    return statement
