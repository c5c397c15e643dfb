"""The terminal comparison table: undefined metrics print as n/a with their reason."""

from __future__ import annotations

from fedcredit.simulations.table import comparison_table

REASON = "the test rows hold 0 bad rows: AUC, KS and Gini need both bad and good rows"


def _metrics(auc, ks, **extra):
    return {"auc": auc, "ks": ks, "gini": None if auc is None else 2 * auc - 1, "brier": 0.1, **extra}


def test_undefined_metrics_print_as_na_with_the_reason() -> None:
    summary = {
        "partners": [
            {"name": "bank-1", "kind": "bank", "rows_train": 900, "rows_test": 300,
             "local": _metrics(0.71, 0.30), "federated": _metrics(0.74, 0.35)},
            {"name": "platform-3", "kind": "platform", "rows_train": 273, "rows_test": 91,
             "local": _metrics(None, None, undefined=REASON), "federated": _metrics(None, None, undefined=REASON)},
            {"name": "insurer-2", "kind": "insurer", "rows_train": 500, "rows_test": 160, "local": None,
             "federated": None, "dropped_round": 2},
        ],
        "federated": _metrics(0.75, 0.36), "centralized": _metrics(0.76, 0.37),
    }
    table = comparison_table(summary)
    assert "nan" not in table.lower()
    platform = next(line for line in table.splitlines() if line.startswith("platform-3"))
    assert platform.split()[-5:] == ["n/a"] * 5                    # local, fed AUC, gain, local, fed KS
    bank = next(line for line in table.splitlines() if line.startswith("bank-1"))
    assert "0.7100" in bank and "+0.0300" in bank
    assert f"n/a: platform-3 (local), platform-3 (federated): {REASON}" in table
    assert "n/a: insurer-2 (federated): dropped out in round 2: no final evaluation" in table
    assert "-0.0100" in table                                       # federated − centralised AUC


def test_undefined_pooled_metrics_print_as_na() -> None:
    why = "there are no test rows: no metric is defined"
    summary = {"partners": [], "federated": _metrics(None, None, undefined=why),
               "centralized": _metrics(0.76, 0.37)}
    table = comparison_table(summary)
    federated = next(line for line in table.splitlines() if line.startswith("  federated "))
    assert federated.split()[1:4] == ["n/a", "n/a", "n/a"]
    assert f"n/a: pooled (federated): {why}" in table and "nan" not in table.lower()


def test_a_reported_auc_swamped_by_its_noise_is_not_printed_as_a_number() -> None:
    gain = {"auc": 0.0764, "low": 0.022, "high": 0.134}
    summary = {
        "partners": [{"name": "platform-c", "kind": "platform", "rows_train": 2197, "rows_test": 728,
                      "local": _metrics(0.73, 0.38), "federated": _metrics(1.0, 0.72, auc_noise_sd=0.31),
                      "gain": gain},
                     {"name": "bank-a", "kind": "bank", "rows_train": 29923, "rows_test": 10182,
                      "local": _metrics(0.80, 0.47), "federated": _metrics(0.78, 0.41, auc_noise_sd=0.034)}],
        "federated": _metrics(0.79, 0.44), "centralized": _metrics(0.81, 0.48),
    }
    table = comparison_table(summary)
    platform = next(line for line in table.splitlines() if line.startswith("platform-c"))
    assert "1.0000" not in platform and "0.7200" not in platform and "±0.310" in platform
    assert "platform-c (fed AUC, fed KS)" in table and "too few rows to read" in table
    bank = next(line for line in table.splitlines() if line.startswith("bank-a"))
    assert "0.7800" in bank and "±0.034" in bank
