"""The privacy gate on a partner's path: its policy applied to its ledger.

A run is planned as a whole before its first release: the noisy statistics (train rows),
the DP-SGD rounds (train rows) and the noisy evaluations (held-out rows). The gate picks
the training and evaluation noise so the run's own spend stays within the policy's per-run
cap AND the lifetime total within the lifetime budget, in each cell of rows (parallel
composition, see `fedcredit.privacy.accountant`). Before each release the partner asks the gate to
admit it; afterwards it charges what it actually did, and only then may the release leave.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fedcredit.credit.errors import InputError
from fedcredit.credit.scenario import PrivacyPolicy
from fedcredit.privacy.accountant import (
    EPS_ERROR,
    BudgetError,
    Charge,
    PrivacySpent,
    Release,
    calibrate_noise,
    cells,
    compose,
    compose_rows,
)
from fedcredit.privacy.dpsgd import batches_per_epoch
from fedcredit.privacy.ledger import LedgerEntry, PrivacyLedger

STATS_RELEASES = 2      # round 0: the range release and the bins release (see fedcredit.privacy.statistics)
PLAN_MARGIN = 2 * EPS_ERROR


@dataclass(frozen=True)
class RunShape:
    """What one run will release. `rows` is the (public) number of training rows used for
    the DP-SGD sample rate; `train_rows`/`test_rows` are the row-fraction intervals. `train_parts`: the
    intervals the training rows are in when they are not one (a cross-validation training holds a fold in
    the middle of them out: each training release is charged once to each part, so every row read is
    charged once and the held-out fold not at all)."""

    rounds: int
    batch_size: int
    local_epochs: int
    rows: int
    evaluations: int
    train_rows: tuple[float, float]
    test_rows: tuple[float, float]
    stats_releases: int = STATS_RELEASES
    train_parts: tuple[tuple[float, float], ...] = ()
    unit: str = "round"          # what one of `rounds` is called in messages ("tree": a gbdt run)

    @property
    def train_cells(self) -> tuple[tuple[float, float], ...]:
        """The intervals a training release is charged to (`train_parts`, else `train_rows`)."""
        return self.train_parts or (self.train_rows,)

    def train_charges(self, release: Release) -> list[Charge]:
        """One release on the training rows, as charges (one per part)."""
        return [Charge(release, rows) for rows in self.train_cells]

    @property
    def sample_rate(self) -> float:
        return 1.0 / batches_per_epoch(self.rows, self.batch_size)

    @property
    def steps_per_round(self) -> int:
        return batches_per_epoch(self.rows, self.batch_size) * self.local_epochs


@dataclass(frozen=True)
class RunPlan:
    """The noise a run will use and what it will cost, or why the partner declines it.

    Epsilons are at the policy's delta; `epsilon_run` is the run's own spend (worst cell),
    `after` the lifetime statement if the whole plan is carried out."""

    train: bool
    reason: str
    stats_noise: float
    train_noise: float | None
    eval_noise: float | None
    sample_rate: float
    steps_per_round: int
    epsilon_run: float | None = None
    after: PrivacySpent | None = None
    warnings: list[str] = field(default_factory=list)
    charges: tuple[Charge, ...] = ()   # what the whole run would charge (for planning many runs, `fedcredit cv`)


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
    """Plans, refuses and charges the releases of one partner dataset."""

    def __init__(self, policy: PrivacyPolicy, ledger: PrivacyLedger, *, rows: int, source: str, run: str = ""):
        if policy.delta >= 1.0 / rows:
            raise InputError(f"delta {policy.delta:g} is not below 1/rows = {1.0 / rows:.2e}: choose a "
                             "delta well below one over the number of training rows", source=source, field="delta")
        self.policy, self.ledger, self.rows, self.source, self.run = policy, ledger, rows, source, run

    # -- statements --------------------------------------------------------------------------
    def statement(self) -> PrivacySpent:
        """Lifetime epsilon of the whole ledger at the policy's delta."""
        return self.ledger.spent(self.policy.delta)

    def run_charges(self) -> list[Charge]:
        return [e.charge for e in self.ledger.entries() if self.run and e.run == self.run]

    def run_spent(self) -> PrivacySpent:
        """This run's own spend so far (worst cell)."""
        return compose_rows(self.run_charges(), self.policy.delta)

    # -- planning ----------------------------------------------------------------------------
    def plan_run(self, shape: RunShape) -> RunPlan:
        """Choose the training and evaluation noise for a whole run (nothing is released)."""
        p, delta = self.policy, self.policy.delta
        prior = self.ledger.charges()
        done = self.run_charges()
        stats = shape.train_charges(Release(p.stats_noise_multiplier, 1.0, 1)) * shape.stats_releases
        q, steps = shape.sample_rate, shape.steps_per_round * shape.rounds
        base = dict(stats_noise=p.stats_noise_multiplier, sample_rate=q, steps_per_round=shape.steps_per_round)
        try:
            train_noise = p.noise_multiplier or max(self._calibrate(prior + stats, done + stats, q, steps, rows)
                                                    for rows in shape.train_cells)
            eval_noise = None
            if shape.evaluations:
                eval_noise = p.eval_noise_multiplier or self._calibrate(prior, done, 1.0, shape.evaluations,
                                                                        shape.test_rows)
        except BudgetError as exc:
            return RunPlan(False, f"declined: {exc}", **base, train_noise=None, eval_noise=None)
        evals = [Charge(Release(eval_noise, 1.0, shape.evaluations), shape.test_rows)] if eval_noise else []
        warnings = []
        rounds = shape.rounds
        if p.noise_multiplier:   # a fixed noise: the rounds that fit are trained, the partner says how many
            rounds = self._rounds_that_fit(prior, done, stats + evals, Release(train_noise, q, shape.steps_per_round),
                                           shape)
            if 0 < rounds < shape.rounds:
                warnings.append(f"at the fixed noise multiplier {train_noise:g} only {rounds} of {shape.rounds} "
                                f"{shape.unit}s fit the budget: this partner stops after them")
        planned = stats + evals + shape.train_charges(Release(train_noise, q, shape.steps_per_round * max(rounds, 1)))
        run = compose_rows(done + planned, delta)
        after = compose_rows(prior + planned, delta)
        reason = ""
        if after.epsilon > p.epsilon:
            reason = (f"declined: this run would bring the lifetime epsilon to {after.epsilon:.3f}, over the budget "
                      f"{p.epsilon:g} (spent {self.statement().epsilon:.3f})")
        elif run.epsilon > p.run_cap:
            reason = (f"declined: this run would spend epsilon {run.epsilon:.3f}, over the per-run cap "
                      f"{p.run_cap:g}: raise the noise or run_epsilon")
        if not reason and after.epsilon + run.epsilon > p.epsilon:
            warnings.append(f"after this run {p.epsilon - after.epsilon:.3f} of the lifetime budget {p.epsilon:g} "
                            f"remains, less than a run like it needs ({run.epsilon:.3f}): the next run will be "
                            "declined or need much more noise")
        return RunPlan(not reason, reason, **base, train_noise=train_noise, eval_noise=eval_noise,
                       epsilon_run=run.epsilon, after=after, warnings=warnings, charges=tuple(planned))

    def _rounds_that_fit(self, prior: list[Charge], done: list[Charge], fixed: list[Charge], one_round: Release,
                         shape: RunShape) -> int:
        """How many rounds of `one_round` fit after `fixed` in both budgets (0 … shape.rounds)."""
        p = self.policy

        def fits(rounds: int) -> bool:
            train = shape.train_charges(Release(one_round.noise_multiplier, one_round.sample_rate,
                                                one_round.steps * rounds))
            return (compose_rows(prior + fixed + train, p.delta).epsilon <= p.epsilon
                    and compose_rows(done + fixed + train, p.delta).epsilon <= p.run_cap)

        lo, hi = 0, shape.rounds
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
        return lo

    def _calibrate(self, lifetime_prior: list[Charge], run_prior: list[Charge], q: float, steps: int,
                   rows: tuple[float, float]) -> float:
        """Smallest noise for `steps` more compositions at rate q on `rows` that keeps every cell
        within the lifetime budget and this run's cell within the per-run cap (BudgetError says
        which budget cannot fit and what to change)."""
        p = self.policy
        sigma = 0.0
        # the run cap first: its prior (this run) is short, and the noise it needs usually fits the lifetime too
        for name, budget, prior in (("per-run cap (run_epsilon)", p.run_cap, run_prior),
                                    ("lifetime budget", p.epsilon, lifetime_prior)):
            target = max(budget - PLAN_MARGIN, budget / 2)   # the accountant's own error must not tip the last release
            for _, releases in cells(prior, within=rows):
                before = compose(releases, p.delta).epsilon
                if before >= budget:
                    what = ("spent" if name.startswith("lifetime") else
                            "taken by this run's other releases (the statistics releases of round 0 cost "
                            f"{before:.3f}: raise stats_noise_multiplier or run_epsilon)")
                    raise BudgetError(f"the {name} {budget:g} is {what}: epsilon {before:.3f}")
                if sigma and compose([*releases, Release(sigma, q, steps)], p.delta).epsilon <= target:
                    continue
                sigma = max(sigma, calibrate_noise(releases, budget=target, delta=p.delta, sample_rate=q, steps=steps))
        return sigma

    def eval_noise(self, shape: RunShape, *, remaining: int) -> tuple[float | None, str]:
        """(noise for the next evaluation, "") so the `remaining` evaluations of this run fit the
        held-out rows' run cap and lifetime budget, or (None, why not)."""
        if self.policy.eval_noise_multiplier:
            return self.policy.eval_noise_multiplier, ""
        try:
            return self._calibrate(self.ledger.charges(), self.run_charges(), 1.0, remaining, shape.test_rows), ""
        except BudgetError as exc:
            return None, f"declined: {exc}"

    def check_policy(self, shape: RunShape) -> None:
        """Bad input: a fixed noise multiplier that cannot fit even one round into the budget."""
        sigma = self.policy.noise_multiplier
        if sigma is None:
            return
        one_round = compose([Release(sigma, shape.sample_rate, shape.steps_per_round)], self.policy.delta).epsilon
        cap = min(self.policy.epsilon, self.policy.run_cap)
        if one_round > cap:
            raise InputError(f"noise multiplier {sigma:g} spends epsilon {one_round:.3f} in a single {shape.unit}, "
                             f"over the budget {cap:g}: raise the noise or leave it out to calibrate",
                             source=self.source, field="noise_multiplier")

    def admit(self, charge: Charge | list[Charge]) -> tuple[PrivacySpent | None, str]:
        """(lifetime statement after `charge` — one, or a release's charges on several parts of the rows —,
        "") if it fits the budget and the run cap, else (None, reason)."""
        p = self.policy
        prior = self.ledger.charges()
        charges = charge if isinstance(charge, list) else [charge]
        after = compose_rows([*prior, *charges], p.delta)
        if after.epsilon > p.epsilon:
            before = compose_rows(prior, p.delta).epsilon
            return None, (f"declined: this release would bring epsilon to {after.epsilon:.3f}, over the budget "
                          f"{p.epsilon:g} (spent {before:.3f})")
        run = compose_rows([*self.run_charges(), *charges], p.delta)
        if run.epsilon > p.run_cap * (1 + 1e-9):
            return None, (f"declined: this release would bring this run's spend to {run.epsilon:.3f}, over the "
                          f"per-run cap {p.run_cap:g}")
        return after, ""

    def round_plan(self, shape: RunShape, *, server_round: int, noise: float | None) -> RoundPlan:
        """This round's DP-SGD release; `noise` is the run's calibrated noise (None: plan it now
        for the rounds left)."""
        q, steps = shape.sample_rate, shape.steps_per_round
        if noise is None:
            left = RunShape(max(shape.rounds - server_round + 1, 1), shape.batch_size, shape.local_epochs,
                            shape.rows, shape.evaluations, shape.train_rows, shape.test_rows, stats_releases=0,
                            train_parts=shape.train_parts, unit=shape.unit)
            plan = self.plan_run(left)
            if plan.train_noise is None:
                return RoundPlan(False, None, q, steps, None, plan.reason)
            noise = plan.train_noise
        after, reason = self.admit(shape.train_charges(Release(noise, q, steps)))
        return RoundPlan(after is not None, noise, q, steps, after, reason)

    def charge(self, release: Release, *, mechanism: str, round: int,
               rows: tuple[float, float]) -> LedgerEntry:
        """Record spend durably; call BEFORE the release leaves the partner."""
        return self.ledger.record(release, mechanism=mechanism, delta=self.policy.delta, run=self.run,
                                  round=round, rows=rows)
