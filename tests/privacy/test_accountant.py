"""The accountant against independent epsilon values (../shared/privacy/epsilon-oracle.csv)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from fedcredit.privacy.accountant import BudgetError, Release, calibrate_noise, compose

ORACLE = Path(__file__).resolve().parents[3] / "shared" / "privacy" / "epsilon-oracle.csv"
ROUNDING = 5e-4  # the oracle is printed to 3 decimals


def _oracle() -> list[dict[str, str]]:
    if not ORACLE.exists():
        pytest.fail(f"oracle missing: {ORACLE} (../shared must sit beside the project)")
    with ORACLE.open() as f:
        return list(csv.DictReader(f))


ROWS = _oracle() if ORACLE.exists() else []


@pytest.mark.parametrize("row", [r for r in ROWS if int(r["steps"]) <= 1000],
                         ids=lambda r: f"q{r['sample_rate']}-s{r['noise_multiplier']}-n{r['steps']}")
def test_epsilon_matches_the_oracle(row: dict[str, str]) -> None:
    release = Release(float(row["noise_multiplier"]), float(row["sample_rate"]), int(row["steps"]))
    spent = compose([release], float(row["delta"]))
    assert spent.accountant == "prv"
    assert float(row["eps_prv_lower"]) - ROUNDING <= spent.epsilon <= float(row["eps_prv_upper"]) + ROUNDING
    assert spent.epsilon_rdp == pytest.approx(float(row["eps_rdp_opacus"]), rel=1e-3, abs=ROUNDING)
    assert spent.epsilon_rdp >= float(row["eps_pld_dp_accounting"]) - ROUNDING


def test_long_composition_matches_the_oracle() -> None:
    row = next(r for r in ROWS if (r["sample_rate"], r["noise_multiplier"], r["steps"]) == ("0.01", "1.0", "10000"))
    spent = compose([Release(1.0, 0.01, 10000)], 1e-5)
    assert abs(spent.epsilon - float(row["eps_pld_dp_accounting"])) <= 0.011 + ROUNDING


def test_twenty_rounds_compose_like_one_run_of_twenty_times_the_steps() -> None:
    rounds = compose([Release(1.0, 0.01, 100)] * 20, 1e-5)
    once = compose([Release(1.0, 0.01, 2000)], 1e-5)
    assert rounds.epsilon == once.epsilon
    # the shared README's figure: one round reads 0.728, twenty rounds 2.594
    assert compose([Release(1.0, 0.01, 100)], 1e-5).epsilon == pytest.approx(0.728, abs=0.011)
    assert rounds.epsilon == pytest.approx(2.594, abs=0.011)


def test_heterogeneous_releases_compose_above_each_part() -> None:
    parts = [Release(1.0, 0.01, 500), Release(20.0, 1.0, 1)]
    both = compose(parts, 1e-6).epsilon
    assert both > max(compose([p], 1e-6).epsilon for p in parts)


def test_calibrated_noise_fits_the_budget_tightly() -> None:
    prior = [Release(1.5, 0.01, 300)]
    sigma = calibrate_noise(prior, budget=2.0, delta=1e-6, sample_rate=0.01, steps=1000)
    assert compose([*prior, Release(sigma, 0.01, 1000)], 1e-6).epsilon <= 2.0
    assert compose([*prior, Release(sigma * 0.97, 0.01, 1000)], 1e-6).epsilon > 2.0


def test_calibration_refuses_a_spent_budget() -> None:
    with pytest.raises(BudgetError, match="spent"):
        calibrate_noise([Release(0.6, 0.05, 1000)], budget=1.0, delta=1e-5, sample_rate=0.01, steps=10)


def test_invalid_releases_are_refused() -> None:
    with pytest.raises(ValueError):
        Release(0.0, 0.1, 1)
    with pytest.raises(ValueError):
        Release(1.0, 1.5, 1)
    with pytest.raises(ValueError):
        compose([Release(1.0, 0.1, 1)], 0.0)


def test_prv_failure_falls_back_to_rdp_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import fedcredit.privacy.accountant as accountant

    def broken(self, delta, eps_error=0.01, delta_error=None):
        raise FloatingPointError("domain overflow")

    monkeypatch.setattr(accountant.PRVAccountant, "get_epsilon", broken)
    accountant._compose.cache_clear()           # results are cached per history
    try:
        spent = compose([Release(1.0, 0.01, 100)], 1e-5)
    finally:
        accountant._compose.cache_clear()       # never leave a fallback result behind
    assert spent.accountant == "rdp" and spent.epsilon_prv is None
    assert spent.epsilon == spent.epsilon_rdp == pytest.approx(1.214, abs=1e-3)
    assert "PRV accountant failed" in spent.note and "RDP bound reported" in spent.note


@pytest.mark.parametrize("prior, q, steps, budget", [([Release(20.0, 1.0, 1)] * 2, 1 / 30, 300, 2.95),
                                                     ([], 0.25, 40, 0.7), ([Release(2.0, 0.02, 500)], 0.01, 200, 3.0)])
def test_calibration_finds_the_smallest_fitting_noise_at_the_accounting_precision(prior, q, steps, budget) -> None:
    # the search runs on a coarse PRV; the answer must still be the fine PRV's smallest sigma within rel_tol
    sigma = calibrate_noise(prior, budget=budget, delta=1e-6, sample_rate=q, steps=steps, rel_tol=0.01)
    assert compose([*prior, Release(sigma, q, steps)], 1e-6).epsilon <= budget
    assert compose([*prior, Release(sigma / 1.0101, q, steps)], 1e-6).epsilon > budget
