"""What a run's model artefact says about itself: where it comes from (scenario, run, model, the
partners with their public row counts, privacy statements and, where the coordinator's process can
read the data — a simulation — dataset fingerprints), one privacy sentence, and the reference
distributions for drift (`fedcredit.credit.reference`: only counts the partners already released)."""

from __future__ import annotations

from typing import Any

from fedcredit.credit.errors import InputError
from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.protocol import PartnerReport
from fedcredit.credit.reference import reference, withheld_because
from fedcredit.credit.scenario import Scenario
from fedcredit.credit.statistics import BinStats, RangeStats
from fedcredit.protection.access import dataset_fingerprint


def privacy_sentence(partners: list[dict[str, Any]], client_dp: Any) -> str:
    """The artefact's privacy statement in one sentence, from the partners' own statements."""
    if client_dp:
        return "partner-level DP (Flower's client-side clipping and server noise); see the run's privacy report"
    dp = [p for p in partners if p["privacy"].get("mode") == "sample" and p["privacy"].get("epsilon") is not None]
    if not dp:
        return "no differential privacy: the weights carry no formal guarantee about any partner's rows"
    eps = max(float(p["privacy"].get("run_epsilon") or p["privacy"]["epsilon"]) for p in dp)
    delta = max(float(p["privacy"]["delta"]) for p in dp)
    who = "every partner" if len(dp) == len(partners) else f"{len(dp)} of {len(partners)} partners"
    return (f"record-level DP (DP-SGD, Opacus) at {who}: this run spent at most ε = {eps:.3g} at δ = {delta:g} "
            "per partner dataset; the customer row is the unit")


def model_metadata(summary: dict[str, Any], final_reports: list[PartnerReport], transform: FeatureTransform,
                   scenario: Scenario, released_stats: tuple[ColumnPlan | None, RangeStats | None, BinStats | None],
                   stats_contributors: int, *, read_data: bool) -> dict[str, Any]:
    """The artefact's metadata from the run's `summary` (summary.json's dict), the final evaluation's
    reports, round 0's summed statistics (`released_stats`, from `stats_contributors` partners);
    `read_data`: this process may read the partners' files (a simulation) to fingerprint them."""
    partners = []
    for p in summary["partners"]:
        privacy = {k: p["privacy"].get(k) for k in ("mode", "epsilon", "delta", "budget", "run_epsilon",
                                                  "run_cap", "status") if k in p["privacy"]}
        partners.append({"name": p["name"], "kind": p["kind"], "rows_train": p["rows_train"],
                         "privacy": privacy, "dataset": _fingerprint(scenario, p["name"]) if read_data else None})
    plan, ranges, bins = released_stats
    noised = any(r.privacy and r.privacy.get("mode") == "sample" for r in final_reports)
    exact = sorted(r.partner for r in final_reports if not (r.privacy and r.privacy.get("mode") == "sample"))
    contributors = min(len(final_reports), stats_contributors)
    return {"scenario": summary["scenario"], "rounds": summary["rounds"], "run": summary["run"],
            "model": summary["model"], "strategy": summary["strategy"],
            "secure_aggregation": summary["secure_aggregation"], "partners": partners,
            "privacy": privacy_sentence(partners, summary.get("client_dp")),
            "reason_texts": dict(scenario.scorecard.reasons),
            **({"scorecard": summary["scorecard"]} if summary.get("scorecard") else {}),
            "reference": reference(plan, ranges, bins, transform,
                                   [r.evaluation for r in final_reports if r.evaluation is not None],
                                   noised=noised, withheld=withheld_because(contributors, exact))}


def _fingerprint(scenario: Scenario, name: str) -> str | None:
    """The partner's dataset fingerprint (the one its ledger uses); None where it cannot be read."""
    partner = next((p for p in scenario.partners if p.name == name), None)
    if partner is None or partner.data is None:
        return None
    try:
        return dataset_fingerprint(partner.data)
    except (OSError, InputError):
        return None
