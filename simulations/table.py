"""The comparison table printed at the end of a simulation."""

from __future__ import annotations

from typing import Any


def comparison_table(summary: dict[str, Any]) -> str:
    """Per partner local-only vs federated AUC/KS; pooled federated vs centralised."""
    head = f"{'partner':<18}{'kind':<10}{'train':>8}{'test':>7}  {'local AUC':>9}{'fed AUC':>9}{'gain':>8}  {'local KS':>8}{'fed KS':>8}"
    lines = [head, "-" * len(head)]
    for p in summary["partners"]:
        nan = float("nan")
        local, fed = p.get("local") or {}, p.get("federated") or {"auc": nan, "ks": nan}
        la, fa = local.get("auc", nan), fed["auc"]
        lines.append(f"{p['name']:<18}{p['kind']:<10}{p['rows_train']:>8}{p['rows_test']:>7}  "
                     f"{la:>9.4f}{fa:>9.4f}{fa - la:>+8.4f}  {local.get('ks', nan):>8.4f}{fed['ks']:>8.4f}")
    lines.append("-" * len(head))
    fed, cen = summary["federated"], summary.get("centralized") or {}
    lines.append(f"{'pooled test rows':<28}{'AUC':>9}{'KS':>8}{'Gini':>8}{'Brier':>9}")
    lines.append(f"{'  federated':<28}{fed['auc']:>9.4f}{fed['ks']:>8.4f}{fed['gini']:>8.4f}{fed['brier']:>9.4f}")
    if cen:
        lines.append(f"{'  centralised (pooled rows)':<28}{cen['auc']:>9.4f}{cen['ks']:>8.4f}"
                     f"{cen['gini']:>8.4f}{cen['brier']:>9.4f}")
        lines.append(f"{'  federated − centralised':<28}{fed['auc'] - cen['auc']:>+9.4f}{fed['ks'] - cen['ks']:>+8.4f}")
    return "\n".join(lines)
