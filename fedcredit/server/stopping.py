"""When federated training stops: at the pooled held-out loss's minimum, or at the round cap.

`StoppingRule` reads one number per evaluated model — the pooled validation log loss the partners
reported beside their update (`pooled_validation_loss`) — and nothing else. Without record-level DP
that loss is free: each partner scores the model it received on a validation share of its own
training rows (`[federation] validation_fraction`, rows it holds out of local training; never the
test rows the metrics are reported on) in the same reply as its update. Under record-level DP every
evaluation is a charged release, so the rule is given no value (`monitors` False): it asks for no
release and the run trains to the cap exactly as `stop = "rounds"` would.

Patience counts evaluated models since the last improvement of more than `min_delta` (Prechelt 1998,
"Early stopping — but when?"); the best model is the one with the lowest loss (ties: the later one).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from fedcredit.credit.protocol import PartnerReport

CONVERGED, ROUNDS = "converged", "rounds"
MONITORED = "pooled log loss of each evaluated model on the partners' validation rows (a share of their training rows)"
NOT_MONITORED = {
    ROUNDS: "nothing: stop = \"rounds\" trains to the round cap",
    "private": ("nothing: under record-level DP every evaluation is a charged release, so the rule reads no "
                "value and asks for none; the run trains to the round cap"),
}


def pooled_validation_loss(reports: Iterable[PartnerReport]) -> tuple[float | None, int]:
    """(row-weighted mean validation log loss, validation rows) of the reports that carry one;
    (None, 0) when none does."""
    known = [r for r in reports if r.validation_loss is not None and r.rows_validation
             and math.isfinite(r.validation_loss)]
    rows = sum(r.rows_validation for r in known)
    return (sum(r.validation_loss * r.rows_validation for r in known) / rows if rows else None), rows


@dataclass
class StoppingRule:
    """Early stopping on a monitored loss, with patience, a minimum improvement and a round cap.

    `observe(round, loss)` after each evaluated model (round = the round that produced it);
    `stop` says whether to end the run after the round just trained. The state is plain data
    (`to_dict` / `from_dict`) so a coordinator could save and resume it.
    """

    rule: str                   # "converged" | "rounds"
    cap: int                    # [federation] rounds: the most rounds trained
    patience: int               # evaluated models without an improvement > min_delta before stopping
    min_delta: float            # the smallest drop of the loss that counts as an improvement
    monitors: bool = True       # False: the rule reads no value (stop = "rounds", or record-level DP)
    why_not: str = ""           # what the summary says is monitored when nothing is
    best_round: int | None = None
    best_loss: float | None = None
    since: int = 0              # evaluated models since the last improvement > min_delta
    reference: float | None = None   # the loss that a later one must beat by min_delta
    history: list[tuple[int, float]] = field(default_factory=list)
    reason: str = ""

    @classmethod
    def from_settings(cls, stop: str, cap: int, patience: int, min_delta: float, *, private: bool) -> StoppingRule:
        """The rule of a run: `private` is True when some partner has a record-level DP policy."""
        monitors = stop == CONVERGED and not private
        why_not = "" if monitors else NOT_MONITORED[ROUNDS if stop == ROUNDS else "private"]
        return cls(stop, cap, patience, min_delta, monitors=monitors, why_not=why_not)

    def observe(self, rnd: int, loss: float | None) -> bool:
        """Record the loss of the model of round `rnd`; True if it is the best so far."""
        if not self.monitors or loss is None or not math.isfinite(loss):
            return False
        self.history.append((rnd, float(loss)))
        if self.reference is None or loss < self.reference - self.min_delta:
            self.reference, self.since = float(loss), 0
        else:
            self.since += 1
        if self.best_loss is None or loss <= self.best_loss:
            self.best_round, self.best_loss = rnd, float(loss)
            return True
        return False

    def stop(self, trained: int) -> bool:
        """True when the run should end after `trained` rounds (sets `reason`)."""
        if self.monitors and self.since >= self.patience:
            self.reason = (f"converged: the pooled validation loss did not improve by more than {self.min_delta:g} "
                           f"for {self.since} evaluated model(s) (patience {self.patience}); best model of round "
                           f"{self.best_round}")
            return True
        if trained >= self.cap:
            self.reason = f"round cap: {self.cap} round(s) trained ([federation] rounds)"
            return True
        return False

    def summary(self, *, saved_round: int, ended: str = "") -> dict[str, Any]:
        """summary.json's `stopping`: the rule, why the run ended, the best and the saved model's round."""
        return {"rule": self.rule, "reason": ended or self.reason or f"round cap: {self.cap} round(s) trained",
                "monitored": MONITORED if self.monitors else self.why_not,
                "best_round": self.best_round, "best_loss": self.best_loss, "saved_round": saved_round,
                "saved": ("the best round's model (lowest pooled validation loss); its metrics are on the test rows"
                          if self.monitors else "the last round's model"),
                "patience": self.patience, "min_delta": self.min_delta, "cap": self.cap}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["history"] = [list(h) for h in self.history]
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StoppingRule:
        return cls(**{**raw, "history": [(int(r), float(v)) for r, v in raw.get("history", [])]})
