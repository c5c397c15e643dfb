"""The coordinator's progress lines: each says exactly what the step it reports measured.

One exchange with the partners in round r does two things: they train round r on the model of
round r-1, and (when the schedule asks) they first evaluate that model of round r-1. So a line
names both rounds, how many partners' updates are in round r's aggregate out of how many were
asked, and that its time covers the whole exchange:

    round  0/3  statistics from 2 of 3 partners (insurer-b declined): shared transform fitted, 32 features  (34.3 s)
    round  1/3  trained by 2 of 2 partners  train loss 0.6214  |  model of round 0 evaluated by 2 partners: pooled
                AUC 0.5000  KS 0.0000  Brier 0.2500  |  7.7 s for both
    final       model of round 3 evaluated by 2 of 2 partners: pooled AUC 0.7711  KS 0.4012  Brier 0.1533  |  1.2 s

The ServerApp logs these lines through Flower's logger (what `flwr run` and the SuperLink show);
each carries `progress_extra(done, total)` — rounds trained of rounds planned — so `fedcredit
simulate` can draw a bar from the same records. Pure text: no Flower, no console here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fedcredit.credit.metrics import UNDEFINED

MARK = "fedcredit"                    # a line of ours (a quiet console keeps only these and warnings)
PROGRESS_KEY = "fedcredit_progress"   # (rounds trained, rounds planned) of a progress line
PROGRESS = {MARK: True}              # `extra` of a line of ours that is not a progress line


def progress_extra(done: int, total: int) -> dict[str, Any]:
    """The `extra` of a logged progress line: `done` of `total` planned rounds are trained."""
    return {MARK: True, PROGRESS_KEY: (done, total)}


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _partners(n: int) -> str:
    return f"{n} partner" if n == 1 else f"{n} partners"


def _secs(seconds: float) -> str:
    return f"{seconds:.1f} s"


def _who_else(declined: Sequence[str], failed: int) -> str:
    parts = []
    if declined:
        parts.append(", ".join(declined) + " declined")
    if failed:
        parts.append(f"{failed} failed or did not reply")
    return f" ({'; '.join(parts)})" if parts else ""


def pooled_text(pooled: Mapping[str, Any]) -> str:
    why = f"  (n/a: {pooled[UNDEFINED]})" if UNDEFINED in pooled else ""
    return f"pooled AUC {_num(pooled['auc'])}  KS {_num(pooled['ks'])}  Brier {_num(pooled['brier'])}{why}"


def start_line(scenario: str, partners: int, model: str, strategy: str, rounds: int) -> str:
    return f"fedcredit: {scenario}, {partners} partners, {model}/{strategy}, {rounds} rounds"


def statistics_line(total: int, *, asked: int, contributed: int, declined: Sequence[str], features: int,
                    seconds: float, waited: float) -> str:
    """Round 0: which partners' statistics the shared transform was fitted from, and its time
    (which includes waiting for the partner nodes to connect: a simulation starts them then)."""
    wait = f", of which {_secs(waited)} waiting for the partner nodes" if waited >= 0.1 else ""
    return (f"round  0/{total}  statistics from {contributed} of {_partners(asked)}{_who_else(declined, 0)}: "
            f"shared transform fitted, {features} features  ({_secs(seconds)}{wait})")


@dataclass(frozen=True)
class Exchange:
    """What one exchange with the partners did (the facts a progress line states).

    `trained_round` is the round this exchange trained (None: the final evaluation, which trains
    nothing); `evaluated_round` is the round whose model the replies evaluated."""

    total: int                                  # rounds planned
    trained_round: int | None
    evaluated_round: int
    asked: int                                  # partners sent the message
    trained: int = 0                            # partners whose update is in the aggregate
    declined: tuple[str, ...] = ()              # partners that declined (their privacy budget)
    failed: int = 0                             # partners that failed or did not reply
    train_loss: float | None = None             # of `trained_round` (withheld under DP)
    pooled: Mapping[str, Any] | None = None     # pooled metrics of the evaluated model; None: none released
    evaluated_by: int = 0                       # partners whose evaluation is pooled
    scheduled: bool = True                      # was the evaluation asked for (DP evaluates on a schedule)
    seconds: float = 0.0                        # wall time of the whole exchange
    notes: tuple[str, ...] = ()                 # anything else the line must say (a halted secure sum)


def _evaluation(x: Exchange, *, final: bool) -> str:
    model = f"model of round {x.evaluated_round}"
    if x.pooled is None:
        if not x.scheduled:
            return f"{model} not evaluated (not on the evaluation schedule: [federation] evaluate_every)"
        return f"{model}: no partner released an evaluation"
    by = f"{x.evaluated_by} of {_partners(x.asked)}" if final else _partners(x.evaluated_by)
    return f"{model} evaluated by {by}: {pooled_text(x.pooled)}"


def exchange_line(x: Exchange) -> str:
    """The progress line of one exchange (see the module docstring)."""
    if x.trained_round is None:
        return f"final       {_evaluation(x, final=True)}{_who_else(x.declined, x.failed)}  |  {_secs(x.seconds)}"
    loss = f"  train loss {x.train_loss:.4f}" if x.train_loss is not None and x.trained else ""
    notes = "".join(f"; {n}" for n in x.notes)
    return (f"round {x.trained_round:2d}/{x.total}  trained by {x.trained} of {_partners(x.asked)}"
            f"{_who_else(x.declined, x.failed)}{loss}{notes}  |  {_evaluation(x, final=False)}  |  "
            f"{_secs(x.seconds)}{' for both' if x.scheduled else ''}")


def fairness_line(round: int, *, asked: int, released: int, rows: Sequence[Mapping[str, Any]], seconds: float) -> str:
    """The fairness release of the kept model: from how many partners, and its lowest adverse impact ratio."""
    airs = [(r["air"], f"{r['column']} {r['group']}") for r in rows if r.get("air") is not None]
    lowest = f": lowest AIR {min(airs)[0]:.4f} ({min(airs)[1]})" if airs else ": no adverse impact ratio"
    return (f"fairness    model of round {round} by protected group from {released} of {_partners(asked)}{lowest}"
            f"  |  {_secs(seconds)}")
