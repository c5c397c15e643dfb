"""`fedcredit plan`: what a run of a scenario would cost each partner — releasing nothing.

For every partner with a record-level DP policy: its lifetime epsilon now (its ledger,
reconciled with the dataset's anchor and audit trail), the noise the run would use for
each kind of release, the run's own epsilon against the per-run cap, the lifetime epsilon
and remaining budget after it, and whether a run like it would still fit afterwards. It
also checks that the consortium has enough rows for its private statistics. The same
planning code runs inside each partner before its first release (`fedcredit.privacy.gate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fedcredit.clients.partner import PartnerData, privacy_gate, run_shape
from fedcredit.credit.binning import too_few_rows_per_bin
from fedcredit.credit.protocol import TaskConfig
from fedcredit.credit.scenario import Scenario
from fedcredit.privacy.evaluation import group_noise_sd
from fedcredit.privacy.gate import RunPlan
from fedcredit.privacy.statistics import bins_noise_sd, labelled_noise_sd, range_noise_sd, summed_sd, too_few_rows


@dataclass(frozen=True)
class PartnerPlan:
    name: str
    mode: str
    budget: float | None = None
    run_cap: float | None = None
    delta: float | None = None
    epsilon_now: float | None = None
    plan: RunPlan | None = None
    noise_sd: dict[str, float] = field(default_factory=dict)   # per released count / per gradient sum

    def to_dict(self) -> dict[str, Any]:
        p = self.plan
        return {"partner": self.name, "mode": self.mode, "budget": self.budget, "run_cap": self.run_cap,
                "delta": self.delta, "epsilon_now": self.epsilon_now,
                "epsilon_run": p.epsilon_run if p else None, "epsilon_after": p.after.epsilon if p and p.after else None,
                "remaining_after": (self.budget - p.after.epsilon) if p and p.after and self.budget else None,
                "train": p.train if p else None, "reason": p.reason if p else "",
                "noise_multiplier": {"statistics": p.stats_noise, "dp_sgd": p.train_noise, "evaluation": p.eval_noise}
                if p else None, "noise_sd": self.noise_sd, "warnings": list(p.warnings) if p else []}


@dataclass(frozen=True)
class ScenarioPlan:
    partners: list[PartnerPlan]
    statistics: str   # "" or why the private statistics would not be reliable

    def to_dict(self) -> dict[str, Any]:
        return {"partners": [p.to_dict() for p in self.partners], "statistics": self.statistics or None}


def evaluations(scenario: Scenario) -> int:
    """Releases on the held-out rows a DP partner budgets for a run of this scenario (evaluations, fairness)."""
    return scenario.planned_evaluations


def plan_scenario(scenario: Scenario, data: dict[str, PartnerData], task: TaskConfig) -> ScenarioPlan:
    """Each partner's plan for one run (nothing is released; ledgers are only read and reconciled)."""
    task = TaskConfig(task.spec, task.federation, run=task.run or "plan", run_dir=task.run_dir,
                      evaluations=evaluations(scenario), trees=scenario.trees)
    plans, bins_sd = [], []
    columns = len(scenario.dataset.features)
    for partner in scenario.partners:
        d = data[partner.name]
        gate = privacy_gate(d, task, readonly=True)
        if gate is None:
            plans.append(PartnerPlan(partner.name, partner.privacy.mode))
            continue
        shape = run_shape(d, task)
        plan = gate.plan_run(shape)
        policy = partner.privacy
        sd = {"statistics_range_count": range_noise_sd(policy.stats_noise_multiplier, columns),
              "statistics_bins_count": bins_noise_sd(policy.stats_noise_multiplier, len(scenario.dataset.numeric))}
        bins_sd.append(sd["statistics_bins_count"])
        if plan.train_noise and scenario.trees is not None:   # gbdt: per level, each gradient sum of a bin
            from fedcredit.privacy.histograms import noise_sd

            sd["histogram_gradient_sum"] = noise_sd(plan.train_noise, scenario.trees.columns_per_tree(columns))[0]
        elif plan.train_noise:
            sd["dp_sgd_gradient_sum"] = plan.train_noise * policy.max_grad_norm
        if plan.eval_noise:
            sd["evaluation_count"] = plan.eval_noise
            if scenario.dataset.protected:
                sd["fairness_count"] = group_noise_sd(plan.eval_noise, len(scenario.dataset.protected))
        plans.append(PartnerPlan(partner.name, policy.mode, policy.epsilon, policy.run_cap, policy.delta,
                                 gate.statement().epsilon, plan, sd))
    rows = sum(len(d.train) for d in data.values())
    reliable = ""
    if bins_sd:
        sigma = max(p.privacy.stats_noise_multiplier for p in scenario.partners if p.privacy.enabled)
        reliable = too_few_rows(rows, summed_sd(bins_sd), noise_multiplier=sigma)
        if not reliable and scenario.federation.model == "scorecard":   # labelled cells: each bin above the noise
            spec = scenario.dataset
            cell_sd = summed_sd([labelled_noise_sd(p.privacy.stats_noise_multiplier, len(spec.features))
                                 for p in scenario.partners if p.privacy.enabled])
            reliable = too_few_rows_per_bin(rows, cell_sd, min_bin_share=scenario.scorecard.min_bin_share,
                                            noise_multiplier=sigma)
    return ScenarioPlan(plans, reliable)


def render_plan(plan: ScenarioPlan) -> str:
    head = (f"{'partner':<18}{'ε now':>8}{'this run':>10}{'after':>8}{'budget':>8}{'left':>8}  "
            f"{'σ stats':>8}{'σ DP-SGD':>9}{'σ eval':>8}")
    lines = [head, "-" * len(head)]
    warnings = []
    for p in plan.partners:
        if p.plan is None:
            lines.append(f"{p.name:<18}  mode {p.mode}: no record-level guarantee, nothing to plan")
            continue
        q = p.plan
        f = lambda v, d=3: "—" if v is None else f"{v:.{d}f}"  # noqa: E731
        after = q.after.epsilon if q.after else None
        lines.append(f"{p.name:<18}{f(p.epsilon_now):>8}{f(q.epsilon_run):>10}{f(after):>8}{p.budget:>8g}"
                     f"{f(None if after is None else p.budget - after):>8}  {q.stats_noise:>8.3g}"
                     f"{f(q.train_noise, 3):>9}{f(q.eval_noise, 2):>8}")
        if not q.train:
            warnings.append(f"{p.name}: {q.reason}")
        warnings += [f"{p.name}: {w}" for w in q.warnings]
    lines.append("ε at each partner's δ; 'this run' is the run's own spend (per-run cap), 'after' the lifetime total.")
    if any("histogram_gradient_sum" in p.noise_sd for p in plan.partners):
        lines.append("trees (gbdt / random_forest): 'σ DP-SGD' is the noise multiplier of each tree level's histograms.")
    if plan.statistics:
        warnings.append(plan.statistics)
    lines += [f"warning: {w}" for w in warnings]
    return "\n".join(lines)
