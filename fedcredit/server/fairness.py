"""The fairness release of the kept model: one exchange after training, when the dataset declares protected
columns (`[dataset] protected`).

The model `model.pt` keeps (the last, or under `stop = "converged"` the best) goes to every partner still
taking part in an evaluate message that asks for its score histograms by protected group
(`fedcredit.clients.partner.fairness_report`: noised and charged to the held-out rows under DP — a release
each DP partner planned at round 0 beside its evaluations); the coordinator sums them and computes the
measures by group (`fedcredit.reports.fairness`). `FairnessRound` is the part of `FederatedTraining` that
does it (it reads that class's state: grid, strategy, task, nodes, who dropped out).
"""

from __future__ import annotations

import time
from dataclasses import replace
from logging import INFO
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord
from flwr.common.logger import log

from fedcredit.credit.fairness import FairnessTask, GroupScores
from fedcredit.credit.protocol import FAIRNESS_KEY, TASK_KEY, PartnerReport
from fedcredit.reports.fairness import cutoff_logit, fairness_summary
from fedcredit.server.progress import fairness_line, progress_extra


class FairnessRound:
    """The fairness exchange (mixed into `FederatedTraining`; see the module docstring)."""

    def fairness(self, arrays: ArrayRecord, rnd: int, reports: list[PartnerReport], *, done: int
                 ) -> tuple[list[dict[str, Any]], dict[str, Any] | None, list[PartnerReport]]:
        """The kept model `arrays` (of round `rnd`; `done` rounds trained) → (`summary.json`'s `fairness` rows,
        its `fairness_settings`, `reports` with the privacy statements the fairness replies brought, as they
        now hold the fairness release): nothing without protected columns."""
        scenario = self.scenario
        if not scenario.dataset.protected:
            return [], None, reports
        started = time.monotonic()
        settings, scale = scenario.fairness, scenario.scorecard
        task = replace(self.task, fairness=FairnessTask(settings, cutoff_logit(float(settings.cutoff_score), scale)))
        config = ConfigRecord({TASK_KEY: task.to_json(), FAIRNESS_KEY: True})
        messages = [m for m in self.strategy.configure_evaluate(rnd, arrays, config, self.grid)
                    if m.metadata.dst_node_id in self.node_partner
                    and self.node_partner[m.metadata.dst_node_id] not in self.dropped]
        replies, failures = self._exchange(messages)
        replied = [self._report(r) for r in replies]
        self._privacy_record(rnd, replied)
        released = sorted((r for r in replied if r.fairness is not None), key=lambda r: r.partner)
        for r in replied:
            if r.fairness is None:
                self._notice(f"partner '{r.partner}' released no fairness histograms: {r.declined or 'none sent'}")
        note = None if released else ("no partner released its score histograms by protected group: "
                                      + "; ".join([*(f"{r.partner}: {r.declined}" for r in replied), *failures]))
        pooled = GroupScores.combine([r.fairness for r in released])
        rows, summary = fairness_summary(pooled, scenario.dataset, settings, scale,
                                         partners=[r.partner for r in released], round=rnd, note=note)
        log(INFO, "%s", fairness_line(rnd, asked=len(messages), released=len(released), rows=rows,
                                      seconds=time.monotonic() - started), extra=progress_extra(done, done or self.fed.rounds))
        statements = {r.partner: r.privacy for r in replied if r.privacy}
        return rows, summary, [replace(r, privacy=statements.get(r.partner, r.privacy)) for r in reports]

