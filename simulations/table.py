"""The comparison table printed at the end of a simulation.

A metric that is undefined (None in the summary, e.g. the AUC of a partner whose test rows
hold no bad row) prints as "n/a", and a note under the table gives the reason.
"""

from __future__ import annotations

from typing import Any

from credit.metrics import UNDEFINED

NA = "n/a"


def _num(value: float | None, width: int, sign: str = "") -> str:
    return f"{NA:>{width}}" if value is None else f"{value:>{sign}{width}.4f}"


def _diff(a: float | None, b: float | None, width: int) -> str:
    return _num(None if a is None or b is None else a - b, width, "+")


def comparison_table(summary: dict[str, Any]) -> str:
    """Per partner local-only vs federated AUC/KS; pooled federated vs centralised."""
    head = f"{'partner':<18}{'kind':<10}{'train':>8}{'test':>7}  {'local AUC':>9}{'fed AUC':>9}{'gain':>8}  {'local KS':>8}{'fed KS':>8}"
    lines = [head, "-" * len(head)]
    notes: dict[str, list[str]] = {}   # reason → where it applies

    def note(where: str, metrics: dict[str, Any] | None) -> None:
        if metrics and metrics.get(UNDEFINED):
            notes.setdefault(metrics[UNDEFINED], []).append(where)

    for p in summary["partners"]:
        local, fed = p.get("local") or {}, p.get("federated") or {}
        la, fa = local.get("auc"), fed.get("auc")
        lines.append(f"{p['name']:<18}{p['kind']:<10}{p['rows_train']:>8}{p['rows_test']:>7}  "
                     f"{_num(la, 9)}{_num(fa, 9)}{_diff(fa, la, 8)}  "
                     f"{_num(local.get('ks'), 8)}{_num(fed.get('ks'), 8)}")
        if not p.get("federated"):
            reason = (f"dropped out in round {p['dropped_round']}: no final evaluation"
                      if p.get("dropped_round") else "no final evaluation")
            notes.setdefault(reason, []).append(f"{p['name']} (federated)")
        note(f"{p['name']} (local)", local)
        note(f"{p['name']} (federated)", fed)
    lines.append("-" * len(head))
    fed, cen = summary["federated"], summary.get("centralized") or {}
    lines.append(f"{'pooled test rows':<28}{'AUC':>9}{'KS':>8}{'Gini':>8}{'Brier':>9}")
    lines.append(f"{'  federated':<28}{_num(fed['auc'], 9)}{_num(fed['ks'], 8)}{_num(fed['gini'], 8)}"
                 f"{_num(fed['brier'], 9)}")
    note("pooled (federated)", fed)
    if cen:
        lines.append(f"{'  centralised (pooled rows)':<28}{_num(cen['auc'], 9)}{_num(cen['ks'], 8)}"
                     f"{_num(cen['gini'], 8)}{_num(cen['brier'], 9)}")
        lines.append(f"{'  federated − centralised':<28}{_diff(fed['auc'], cen['auc'], 9)}"
                     f"{_diff(fed['ks'], cen['ks'], 8)}")
        note("pooled (centralised)", cen)
    for reason, where in notes.items():
        lines.append(f"{NA}: {', '.join(where)}: {reason}")
    return "\n".join(lines)
