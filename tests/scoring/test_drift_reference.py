"""The drift reference travels with the model to every partner only when no partner could read
another's exact counts from it (pooled exact counts of two partners minus one's own = the other's)."""

from __future__ import annotations

from fedcredit.credit.reference import reference, withheld_because
from fedcredit.scoring.drift import DriftCounter


def test_exact_counts_of_two_partners_are_withheld_noised_or_three_are_kept() -> None:
    why = withheld_because(2, ["bank-a", "bank-b"])
    assert why and "bank-a, bank-b released exact counts" in why and "subtract its own" in why
    assert withheld_because(2, []) is None                 # every release noised: post-processing
    assert withheld_because(3, ["bank-a"]) is None         # a pooled sum of at least two others
    assert withheld_because(1, ["bank-a"]) is not None


def test_a_withheld_reference_says_why_in_the_drift_report() -> None:
    why = withheld_because(2, ["bank-a"])
    ref = reference(None, None, None, transform=None, evaluations=[], noised=False, withheld=why)  # type: ignore[arg-type]
    assert ref["score"] is None and ref["features"] == {} and ref["withheld"] == why
    report = DriftCounter(ref, transform=None).report()  # type: ignore[arg-type]
    assert report["score"]["psi"] is None and report["score"]["why"] == why
    assert report["why"].startswith("this model's reference distributions were not kept: bank-a released exact")
