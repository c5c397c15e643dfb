"""The privacy cost of a whole cross-validation search, planned before its first training.

Each training of the search (one per fold and setting) is a run like any other: at its round 0 every
partner with record-level DP plans it against its ledger (`fedcredit.privacy.gate.PrivacyGate.plan_run`:
the noise for the per-run cap and the lifetime budget) and charges each release as it goes. Here every
training is planned the same way, read-only, against the ledger as it is now, and the charges of all of
them are composed with the ledger's own (`fedcredit.privacy.accountant.compose_rows`, PRV): the search's
epsilon and the lifetime epsilon after it. Each training charges its DP-SGD steps and statistics to all of
the partner's training rows (the held-out fold's too: a conservative count) and its evaluation to its
held-out fold only (disjoint rows: parallel composition across folds).

Planning each training against today's ledger gives an upper bound of what the search spends: a later
training whose lifetime budget is tighter than its per-run cap calibrates more noise and spends less,
never more. A search whose composed cost does not fit a partner's remaining budget is refused before
anything is released (the partner's gate would otherwise decline its later trainings half-way).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedcredit.clients.partner import PartnerData, privacy_gate
from fedcredit.credit.errors import InputError
from fedcredit.credit.protocol import TaskConfig
from fedcredit.credit.scenario import Scenario
from fedcredit.privacy.accountant import Charge, compose_rows
from fedcredit.simulations.planning import plan_scenario
from fedcredit.simulations.runner import open_partners


@dataclass
class PartnerSearchPlan:
    """One DP partner's cost of the search (epsilons at its delta)."""

    name: str
    budget: float
    delta: float
    run_cap: float
    epsilon_now: float
    trainings: int = 0
    epsilon_training: float = 0.0          # the costliest training's own epsilon
    epsilon_search: float = 0.0            # every training composed
    epsilon_after: float = 0.0             # the lifetime epsilon after the search
    charges: list[Charge] = field(default_factory=list)
    declined: str = ""                     # why the partner would decline one of the trainings

    @property
    def remaining(self) -> float:
        return self.budget - self.epsilon_now

    @property
    def fits(self) -> bool:
        return not self.declined and self.epsilon_after <= self.budget

    def to_dict(self) -> dict[str, Any]:
        return {"partner": self.name, "trainings": self.trainings, "epsilon_per_training": self.epsilon_training,
                "epsilon_naive_sum": self.trainings * self.epsilon_training, "epsilon_search": self.epsilon_search,
                "epsilon_now": self.epsilon_now, "epsilon_after": self.epsilon_after, "budget": self.budget,
                "remaining_before": self.remaining, "remaining_after": self.budget - self.epsilon_after,
                "run_cap": self.run_cap, "delta": self.delta, "fits": self.fits, "declined": self.declined or None}


@dataclass
class SearchPlan:
    partners: list[PartnerSearchPlan]
    off: list[str]                          # partners without record-level DP: nothing to plan or charge

    def to_dict(self) -> dict[str, Any]:
        return {"partners": [p.to_dict() for p in self.partners], "without_record_level_dp": self.off}


def plan_search(base: Scenario, base_data: dict[str, PartnerData], trainings: list[tuple[str, Scenario]]
                ) -> SearchPlan:
    """Plan every training (`(name, scenario)` each, the fold set in its [federation]) read-only; `base_data`
    is the partners' data as the base scenario opens it (for each ledger's prior). InputError: a training's
    private statistics would be unreliable (as `fedcredit plan` says)."""
    partners: dict[str, PartnerSearchPlan] = {}
    with tempfile.TemporaryDirectory(prefix="fedcredit-cv-plan-") as tmp:   # where "run"-scoped ledgers would be
        task = TaskConfig(base.dataset, base.federation, run_dir=tmp)
        prior: dict[str, list[Charge]] = {}
        for p in base.partners:
            gate = privacy_gate(base_data[p.name], task, readonly=True)
            if gate is not None:
                partners[p.name] = PartnerSearchPlan(p.name, p.privacy.epsilon, p.privacy.delta, p.privacy.run_cap,
                                                     gate.statement().epsilon)
                prior[p.name] = gate.ledger.charges()
        for name, scenario in trainings:
            if not partners:
                break
            data = open_partners(scenario, Path(tmp), purpose="check")
            plan = plan_scenario(scenario, data, TaskConfig(scenario.dataset, scenario.federation, run_dir=tmp))
            if plan.statistics:
                raise InputError(plan.statistics, source=str(base.source or base.name), field="stats_noise_multiplier")
            for pp in plan.partners:
                if pp.plan is None or pp.name not in partners:
                    continue
                mine = partners[pp.name]
                mine.trainings += 1
                if not pp.plan.train and not mine.declined:
                    mine.declined = f"training {name}: {pp.plan.reason}"
                mine.epsilon_training = max(mine.epsilon_training, pp.plan.epsilon_run or 0.0)
                mine.charges += pp.plan.charges
    for mine in partners.values():
        mine.epsilon_search = compose_rows(mine.charges, mine.delta).epsilon
        mine.epsilon_after = compose_rows([*prior[mine.name], *mine.charges], mine.delta).epsilon
    return SearchPlan(list(partners.values()), [p.name for p in base.partners if p.name not in partners])


def refusal(plan: SearchPlan) -> str:
    """Why the search may not start ("" if every partner's budget fits it): the partner, the cost, the budget."""
    for p in plan.partners:
        if p.declined:
            return f"partner '{p.name}' would decline {p.declined}"
        if not p.fits:
            return (f"the search would cost partner '{p.name}' epsilon {p.epsilon_search:.3f} ({p.trainings} trainings "
                    f"of at most {p.epsilon_training:.3f} each, composed) and bring its lifetime epsilon to "
                    f"{p.epsilon_after:.3f}, over its budget {p.budget:g} ({p.remaining:.3f} remains of it, "
                    f"{p.epsilon_now:.3f} spent): use fewer folds or settings, fewer rounds, or a smaller per-run "
                    "cap (run_epsilon)")
    return ""


def render_search_plan(plan: SearchPlan) -> str:
    """The plan as a table, one line per partner with record-level DP."""
    head = (f"{'partner':<18}{'trainings':>10}{'ε each':>9}{'n × ε':>8}{'search ε':>10}{'ε now':>8}{'after':>8}"
            f"{'budget':>8}{'left':>8}")
    lines = [head, "-" * len(head)]
    for p in plan.partners:
        lines.append(f"{p.name:<18}{p.trainings:>10}{p.epsilon_training:>9.3f}{p.trainings * p.epsilon_training:>8.3f}"
                     f"{p.epsilon_search:>10.3f}{p.epsilon_now:>8.3f}{p.epsilon_after:>8.3f}{p.budget:>8g}"
                     f"{p.budget - p.epsilon_after:>8.3f}" + ("" if p.fits else "  ✗"))
    for name in plan.off:
        lines.append(f"{name:<18}  no record-level DP: nothing is planned or charged")
    lines.append("ε at each partner's δ; 'search ε' composes every training's releases (PRV), 'n × ε' is the plain "
                 "sum it improves on; 'after' is the lifetime total.")
    return "\n".join(lines)
