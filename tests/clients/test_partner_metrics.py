"""A partner is told, once per run in its own log, why some of its metrics are undefined."""

from __future__ import annotations

import logging

import numpy as np

from fedcredit.clients import app
from fedcredit.credit.metrics import ScoreHistogram
from fedcredit.credit.protocol import PartnerReport


def _report(name: str, y, p) -> PartnerReport:
    hist = ScoreHistogram.from_scores(np.asarray(y), np.asarray(p))
    return PartnerReport(name, "platform", 273, len(y), evaluation=hist)


def test_partner_logs_the_reason_once_per_run(caplog, monkeypatch) -> None:
    monkeypatch.setattr(app, "_TOLD", set())
    one_class = _report("platform-3", np.zeros(91), np.full(91, 0.1))
    defined = _report("bank-1", [0, 1, 0, 1], [0.1, 0.8, 0.3, 0.6])
    with caplog.at_level(logging.WARNING, logger="flwr"):
        for _ in range(3):                                   # every round evaluates again
            app._tell_undefined(one_class, 7)
            app._tell_undefined(defined, 7)
        app._tell_undefined(PartnerReport("x", "bank", 1, 1), 7)   # a stats reply: nothing evaluated
        app._tell_undefined(one_class, 8)                    # the next run says it again
    messages = [r.getMessage() for r in caplog.records if r.name == "flwr"]
    assert len(messages) == 2, messages
    assert all(m.startswith("partner 'platform-3': the test rows hold 0 bad rows") for m in messages)
    assert "its AUC, KS and Gini are undefined and reported as null" in messages[0]
