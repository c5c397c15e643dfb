"""What the coordinator and the other partners can see of one partner, per mode, derived from
the release inventory (`fedcredit.privacy.inventory`): privacy off, record-level DP, each with or
without SecAgg+.

Every field a partner sends reaches the coordinator (the SuperLink operator, who runs the
ServerApp). Under SecAgg+ only the model update is masked: the coordinator learns the weighted
sum of all partners' updates, while reports, counts and evaluation histograms travel in clear
beside it. The other partners receive only what the coordinator sends back: the global model,
the shared transform fitted from everyone's statistics, and every partner's FedAvg weight; and, to
score applicants, the run's model artefact (`model.pt`), which also keeps for drift the statistics
and the final model's evaluation histograms summed over every partner (`fedcredit.credit.reference`:
counts already released, noised under DP; no partner's own; not kept when a partner released exact
counts and fewer than 3 partners contributed, since subtracting its own would give the other's).

`statement()` gives the rows; `markdown()` renders them for the deployment guide (a test keeps
the guide's copy equal to it) and the privacy report embeds the rows.
"""

from __future__ import annotations

import fnmatch

from fedcredit.privacy.inventory import INVENTORY, NOISED, SEALED, WITHHELD

_KEPT = "not kept with exact counts from fewer than 3 partners"
_FINAL_SUM = ("only the final model's, summed over every partner and both labels on the coarse score grid, in "
              f"the model artefact's drift reference ({_KEPT}); never a partner's own")
# Which fields reach the other partners, and in what form (everything else reaches no partner).
_TO_PARTNERS = (
    ("report.partner", "yes: the names key the FedAvg weights every partner receives"),
    ("arrays.*", "only inside the global model (the weighted mean of every partner's update)"),
    ("histograms.*", "only inside the trees (splits and leaf values from every partner's summed histograms)"),
    ("metrics.num-examples", "yes: every partner's FedAvg weight is in the task each partner receives"),
    ("report.rows_train", "yes: as that FedAvg weight"),
    ("report.stats.*", "only inside the shared transform fitted from every partner's statistics, and summed over "
                       "every partner (at most 10 bins a column, level counts) in the model artefact's drift "
                       f"references ({_KEPT})"),
    ("report.evaluation.bad", _FINAL_SUM),
    ("report.evaluation.good", _FINAL_SUM),
    ("vout.*", "sealed to one party (see the field): the coordinator relays ciphertext"),
)
_SECURE = ("arrays.*",)          # masked by SecAgg+: the coordinator sees only the sum
_SUM = "only the weighted sum with the other partners' updates"


def _partners(path: str) -> str:
    for pattern, text in _TO_PARTNERS:
        if fnmatch.fnmatchcase(path, pattern):
            return text
    return "no"


def statement() -> list[dict[str, str]]:
    """One row per field: field, messages, and what the coordinator sees with privacy off, under
    DP, what SecAgg+ changes, and what the other partners see."""
    rows = []
    for item in INVENTORY:
        dp = {NOISED: f"noised: {item.how}", SEALED: f"sealed: {item.how}"}.get(item.protection,
                                                                                f"as sent: {item.how}")
        off = {NOISED: "exact", SEALED: "sealed (the party's payload is the same, exact where the DP column "
                                        "says noised)"}.get(item.protection, "as sent")
        secure = _SUM if item.path in _SECURE else "same (sent in clear beside the masked update)"
        rows.append({"field": item.path, "messages": ", ".join(item.messages), "privacy_off": off, "dp": dp,
                     "secagg": secure, "other_partners": _partners(item.path)})
    for path in WITHHELD:
        rows.append({"field": path, "messages": "", "privacy_off": "exact", "dp": "not sent",
                     "secagg": "same (sent in clear when sent)", "other_partners": _partners(path)})
    return rows


def markdown() -> str:
    """The statement as a Markdown table."""
    head = ("| field | in replies to | coordinator, privacy off | coordinator, DP | with SecAgg+ | other partners |\n"
            "|---|---|---|---|---|---|\n")
    return head + "".join(f"| `{r['field']}` | {r['messages'] or '—'} | {r['privacy_off']} | {r['dp']} | {r['secagg']} | "
                          f"{r['other_partners']} |\n" for r in statement())
