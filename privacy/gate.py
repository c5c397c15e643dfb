"""The privacy gate on a partner's training path: its policy applied to its ledger.

Before a round the partner asks the gate for a plan: the noise to use and the epsilon it
would reach; the gate declines when that exceeds the partner's lifetime budget. After local
training the partner charges what it actually did, and only then may the update leave.
"""

from __future__ import annotations

from dataclasses import dataclass

from credit.errors import InputError
from credit.scenario import PrivacyPolicy
from privacy.accountant import (
    BudgetError,
    PrivacySpent,
    Release,
    calibrate_noise,
    compose,
)
from privacy.dpsgd import batches_per_epoch
from privacy.ledger import LedgerEntry, PrivacyLedger


@dataclass(frozen=True)
class RoundPlan:
    """What the partner will do this round, or why it declines."""

    train: bool
    noise_multiplier: float | None
    sample_rate: float
    steps: int
    after: PrivacySpent | None    # lifetime statement if the round is trained
    reason: str = ""


class PrivacyGate:
    """Plans, refuses and charges DP-SGD rounds for one partner dataset."""

    def __init__(self, policy: PrivacyPolicy, ledger: PrivacyLedger, *, rows: int, source: str):
        if policy.delta >= 1.0 / rows:
            raise InputError(f"delta {policy.delta:g} is not below 1/rows = {1.0 / rows:.2e}: choose a "
                             "delta well below one over the number of training rows", source=source, field="delta")
        self.policy, self.ledger, self.rows, self.source = policy, ledger, rows, source

    def statement(self) -> PrivacySpent:
        """Lifetime epsilon of the whole ledger at the policy's delta."""
        return self.ledger.spent(self.policy.delta)

    def round_shape(self, batch_size: int, local_epochs: int) -> tuple[float, int]:
        per_epoch = batches_per_epoch(self.rows, batch_size)
        return 1.0 / per_epoch, per_epoch * local_epochs

    def check_policy(self, batch_size: int, local_epochs: int) -> None:
        """Bad input: a fixed noise multiplier that cannot fit even one round into the budget."""
        q, steps = self.round_shape(batch_size, local_epochs)
        sigma = self.policy.noise_multiplier
        if sigma is None:
            return
        one_round = compose([Release(sigma, q, steps)], self.policy.delta).epsilon
        if one_round > self.policy.epsilon:
            raise InputError(f"noise multiplier {sigma:g} spends epsilon {one_round:.3f} in a single round, "
                             f"over the budget {self.policy.epsilon:g}: raise the noise or leave it out to calibrate",
                             source=self.source, field="noise_multiplier")

    def admit(self, release: Release) -> tuple[PrivacySpent | None, str]:
        """(lifetime statement after `release`, "") if it fits the budget, else (None, reason)."""
        prior = self.ledger.releases()
        after = compose([*prior, release], self.policy.delta)
        if after.epsilon <= self.policy.epsilon:
            return after, ""
        before = compose(prior, self.policy.delta).epsilon
        return None, (f"declined: this release would bring epsilon to {after.epsilon:.3f}, over the budget "
                      f"{self.policy.epsilon:g} (spent {before:.3f})")

    def plan(self, *, batch_size: int, local_epochs: int, rounds_left: int,
             calibrated: float | None = None) -> RoundPlan:
        """Plan this round; `calibrated` reuses the noise chosen earlier in the same run."""
        q, steps = self.round_shape(batch_size, local_epochs)
        prior = self.ledger.releases()
        sigma = self.policy.noise_multiplier or calibrated
        if sigma is None:
            try:
                sigma = calibrate_noise(prior, budget=self.policy.epsilon, delta=self.policy.delta,
                                        sample_rate=q, steps=steps * max(rounds_left, 1))
            except BudgetError as exc:
                return RoundPlan(False, None, q, steps, None, f"declined: {exc}")
        after, reason = self.admit(Release(sigma, q, steps))
        return RoundPlan(after is not None, sigma, q, steps, after, reason)

    def charge(self, release: Release, *, mechanism: str, run: str, round: int) -> LedgerEntry:
        """Record spend durably; call BEFORE the update leaves the partner."""
        return self.ledger.record(release, mechanism=mechanism, delta=self.policy.delta, run=run, round=round)
