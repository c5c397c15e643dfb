"""The comparison table printed at the end of a simulation.

A metric that is undefined (None in the summary, e.g. the AUC of a partner whose test rows
hold no bad row) prints as "n/a", and a note under the table gives the reason.
"""

from __future__ import annotations

from typing import Any

from fedcredit.credit.metrics import UNDEFINED

NA = "n/a"
# A reported AUC whose evaluation noise sd is this large says nothing (a tiny partner under DP).
TOO_NOISY = 0.1


def _num(value: float | None, width: int, sign: str = "") -> str:
    return f"{NA:>{width}}" if value is None else f"{value:>{sign}{width}.4f}"


def _diff(a: float | None, b: float | None, width: int) -> str:
    return _num(None if a is None or b is None else a - b, width, "+")


def comparison_table(summary: dict[str, Any]) -> str:
    """Per partner local-only vs federated AUC/KS; pooled federated vs centralised."""
    head = (f"{'partner':<18}{'kind':<10}{'train':>8}{'test':>7}  {'local AUC':>9}{'fed AUC':>9}{'':<7}{'gain':>8}"
            f"{'90% interval':>18}  {'local KS':>8}{'fed KS':>8}")
    lines = [head, "-" * len(head)]
    notes: dict[str, list[str]] = {}   # reason → where it applies

    def note(where: str, metrics: dict[str, Any] | None) -> None:
        if metrics and metrics.get(UNDEFINED):
            notes.setdefault(metrics[UNDEFINED], []).append(where)

    for p in summary["partners"]:
        local, fed, gain = p.get("local") or {}, p.get("federated") or {}, p.get("gain")
        la, fa = local.get("auc"), fed.get("auc")
        interval = _interval(gain) if gain else ""
        noisy = f"±{fed['auc_noise_sd']:.3f}" if fed.get("auc_noise_sd") else ""
        if (fed.get("auc_noise_sd") or 0) >= TOO_NOISY:
            fa = None
            notes.setdefault(f"its noised evaluation (AUC sd ≥ {TOO_NOISY:g}) is too few rows to read; the gain "
                             "is scored exactly", []).append(f"{p['name']} (fed AUC, fed KS)")
        lines.append(f"{p['name']:<18}{p['kind']:<10}{_count(p['rows_train'], 8)}{_count(p['rows_test'], 7)}  "
                     f"{_num(la, 9)}{_num(fa, 9)}{noisy:<7}{_num(gain['auc'], 8, '+') if gain else _diff(fa, la, 8)}"
                     f"{interval:>18}  {_num(local.get('ks'), 8)}{_num(fed.get('ks') if fa is not None else None, 8)}")
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
                 f"{_num(fed['brier'], 9)}" + (f"  (AUC ±{fed['auc_noise_sd']:.3f}: noised evaluations)"
                                                if fed.get("auc_noise_sd") else ""))
    note("pooled (federated)", fed)
    if cen:
        lines.append(f"{'  centralised (pooled rows)':<28}{_num(cen['auc'], 9)}{_num(cen['ks'], 8)}"
                     f"{_num(cen['gini'], 8)}{_num(cen['brier'], 9)}")
        lines.append(f"{'  federated − centralised':<28}{_diff(fed['auc'], cen['auc'], 9)}"
                     f"{_diff(fed['ks'], cen['ks'], 8)}")
        note("pooled (centralised)", cen)
    for reason, where in notes.items():
        lines.append(f"{NA}: {', '.join(where)}: {reason}")
    private = [p for p in summary["partners"] if p.get("gain_private")]
    if private:
        lines.append(f"{'under the partner’s own DP policy':<28}{'local DP AUC':>13}{'gain':>8}{'90% interval':>18}")
        for p in private:
            g = p["gain_private"]
            lines.append(f"{'  ' + p['name']:<28}{_num((p.get('local_private') or {}).get('auc'), 13)}"
                         f"{_num(g['auc'], 8, '+')}{_interval(g):>18}")
    if any(p.get("gain") for p in summary["partners"]):
        lines.append("gain: the federated model's AUC minus the local-only model's on the partner's own test rows, "
                     "both scored exactly by the modeller (fed AUC is what the partner reported: noised under DP); "
                     "90% paired bootstrap interval; ± the sd the evaluation noise puts on a reported AUC. Under a DP policy the fair alternative is the partner alone "
                     "under that policy (DP-SGD at its per-run cap): the second table")
    return "\n".join(lines)


def _interval(gain: dict[str, Any]) -> str:
    return f"[{gain['low']:+.4f}, {gain['high']:+.4f}]"


def _count(value: int | None, width: int) -> str:
    return f"{'—' if value is None else value:>{width}}"
