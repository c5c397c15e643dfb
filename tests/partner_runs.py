"""A whole run of one partner through its real path (fedcredit.clients.partner), without Flower: both
statistics releases, the coordinator's fit from them, DP-SGD rounds, the final evaluation."""

from __future__ import annotations

from dataclasses import replace

from fedcredit.clients.partner import PartnerData, column_statistics, evaluation_report, train_round
from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.model import build_model
from fedcredit.credit.protocol import BINS, RANGE, TaskConfig


def partner_run(data: PartnerData, task: TaskConfig, *, rounds: int) -> list:
    """Every report the partner sends in one run (stops at the first declined release)."""
    task = replace(task, evaluations=1)
    first = column_statistics(data, task, RANGE)
    if first.declined:
        return [first]
    plan = ColumnPlan.fit(first.stats, task.spec, noise_sd=first.stats_noise_sd)
    task = replace(task, plan=plan, weights={data.partner.name: first.rows_train})
    second = column_statistics(data, task, BINS)
    if second.declined:
        return [first, second]
    task = replace(task, transform=FeatureTransform.fit(plan, second.stats, task.spec, noise_sd=second.stats_noise_sd),
                   plan=None)
    planned = dict(first.privacy.get("planned") or {})
    state = build_model(task.federation.model, task.transform.n_features, hidden=task.federation.hidden).state_dict()
    reports = [first, second]
    for rnd in range(1, rounds + 1):
        new_state, report = train_round(data, task, state, server_round=rnd, planned=planned, evaluate=False)
        reports.append(report)
        if new_state is None:
            return reports
        if report.privacy.get("noise_multiplier"):   # as fedcredit.clients.app keeps it for the next round
            planned.update({"dp-sgd": report.privacy["noise_multiplier"], "sample_rate": report.privacy["sample_rate"]})
        state = new_state
    reports.append(evaluation_report(data, task, state, round=rounds, planned=planned))
    return reports
