"""A partner is told, once per run in its own log, why some of its metrics are undefined."""

from __future__ import annotations

import logging

import numpy as np

from clients import partner
from credit.metrics import ScoreHistogram


def test_partner_logs_the_reason_once_per_run(caplog, monkeypatch) -> None:
    monkeypatch.setattr(partner, "_TOLD", set())
    one_class = ScoreHistogram.from_scores(np.zeros(91), np.full(91, 0.1)).metrics()
    defined = ScoreHistogram.from_scores(np.array([0, 1, 0, 1]), np.array([0.1, 0.8, 0.3, 0.6])).metrics()
    with caplog.at_level(logging.WARNING, logger="fedcredit"):
        for _ in range(3):                                   # every round evaluates again
            partner._tell_undefined("platform-3", "run-1", one_class)
            partner._tell_undefined("bank-1", "run-1", defined)
        partner._tell_undefined("platform-3", "run-2", one_class)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and all(m.startswith("partner 'platform-3': the test rows hold 0 bad rows") for m in messages)
    assert "its AUC, KS and Gini are undefined and reported as null" in messages[0]
