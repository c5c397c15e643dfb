"""Benchmark: the non-DP federated model vs the centralised yardstick, before and after training
to convergence (issue 14, part 5).

Three consortia: German credit split by property into 3 partners (1,000 rows), Taiwan split by
education into 3 partners (30,000 rows), and the embedded default consortium (58,000 rows) with
its DP policy turned off; and a small heterogeneous book like the issue's: a seeded 20 % sample of
each Taiwan partner (≈6,000 rows, "taiwan-6k"). Each is run twice in a Flower simulation: "before" is the former
default (`stop = "rounds"`, `min_local_steps = 0`: 20 rounds of one local epoch on every training
row, the last model kept); "after" is today's default (`stop = "converged"`). The centralised
yardstick is `fedcredit.simulations.yardsticks.centralised` (the same for both). Target: the
federated AUC within 0.005 of the centralised one (above it is fine).

Prints a table and writes benchmarks/results/convergence.json.

    .venv/bin/python benchmarks/bench_convergence.py [--only german taiwan default]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fedcredit.credit.atomic import atomic_write_json  # noqa: E402
from fedcredit.credit.scenario import load_scenario  # noqa: E402
from fedcredit.server.app import RunSettings  # noqa: E402
from fedcredit.simulations.datasets import (  # noqa: E402
    write_default_without_dp,
    write_german_partners,
    write_taiwan_partners,
)
from fedcredit.simulations.runner import check_partners, simulate  # noqa: E402
from fedcredit.simulations.yardsticks import centralised, local_only  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 0.005
BEFORE = {"stop": "rounds", "min_local_steps": 0}   # the former default behaviour


def default_without_dp(out: Path) -> Path:
    """The embedded default consortium's scenario with privacy off (absolute paths to its vaults)."""
    return write_default_without_dp(out)


def small_taiwan(out: Path, share: float = 0.2) -> Path:
    """Taiwan's three partners, each cut to a seeded `share` of its rows."""
    import pandas as pd

    scenario = write_taiwan_partners(out)
    for csv in out.glob("*.csv"):
        frame = pd.read_csv(csv, dtype=str)
        frame.sample(frac=share, random_state=0).to_csv(csv, index=False)
    return scenario


def variant(scenario: Path, name: str, federation: dict) -> Path:
    """A copy of `scenario` beside it (same relative paths) with [federation] keys changed."""
    raw = tomllib.loads(scenario.read_text(encoding="utf-8"))
    raw["federation"] = {**raw.get("federation", {}), **federation}
    path = scenario.with_name(f"{name}.toml")
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return path


def measure(name: str, scenario: Path, tmp: Path) -> dict:
    loaded = load_scenario(scenario)
    data = check_partners(loaded, purpose="yardstick")
    started = time.monotonic()
    cen = centralised(data, loaded.dataset, loaded.federation)["pooled"]["auc"]
    cen_seconds = time.monotonic() - started
    local = {n: local_only(d, loaded.dataset, loaded.federation)[0]["auc"] for n, d in data.items()}
    row = {"dataset": name, "partners": {n: len(d.train) for n, d in data.items()}, "centralised_auc": cen,
           "centralised_seconds": round(cen_seconds, 1), "local_auc": local}
    for label, federation in (("before", BEFORE), ("after", {})):
        path = variant(scenario, label, federation)
        started = time.monotonic()
        s = simulate(RunSettings(scenario=str(path), out_dir=str(tmp / f"run-{name}-{label}")),
                     yardsticks=False).summary
        auc = s["federated"]["auc"]
        row[label] = {"federated_auc": auc, "gap": cen - auc, "within_target": cen - auc <= TARGET,
                      "rounds": s["rounds"], "stopping": s.get("stopping"),
                      "partners_federated_auc": {p["name"]: (p["federated"] or {}).get("auc") for p in s["partners"]},
                      "seconds": round(time.monotonic() - started, 1)}
        print(f"  {name} {label}: federated AUC {auc:.4f} (centralised {cen:.4f}), {s['rounds']} rounds", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = ["german", "taiwan", "default", "taiwan-6k"]
    parser.add_argument("--only", nargs="+", choices=names, default=names)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # the runs spend no shared budget and build the default consortium in a private cache
        os.environ.setdefault("FEDCREDIT_STATE_DIR", str(tmp / "state"))
        os.environ.setdefault("FEDCREDIT_CACHE_DIR", str(tmp / "cache"))
        makers = {"german": lambda: write_german_partners(tmp / "german"),
                  "taiwan": lambda: write_taiwan_partners(tmp / "taiwan"),
                  "default": lambda: default_without_dp(tmp / "default"),
                  "taiwan-6k": lambda: small_taiwan(tmp / "taiwan-6k")}
        for name in args.only:
            rows.append(measure(name, makers[name](), tmp))
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "convergence.json", {"target_gap": TARGET, "before": BEFORE, "rows": rows})
    print(f"\n{'dataset':<9} {'centralised':>11} {'before AUC':>10} {'gap':>7} {'rounds':>6}   "
          f"{'after AUC':>9} {'gap':>7} {'rounds':>6} {'best':>4}  within {TARGET}")
    for r in rows:
        b, a = r["before"], r["after"]
        print(f"{r['dataset']:<9} {r['centralised_auc']:>11.4f} {b['federated_auc']:>10.4f} {b['gap']:>+7.4f} "
              f"{b['rounds']:>6}   {a['federated_auc']:>9.4f} {a['gap']:>+7.4f} {a['rounds']:>6} "
              f"{a['stopping']['saved_round']:>4}  {'yes' if a['within_target'] else 'NO'}")
    print("gap = centralised − federated (negative: the federation is above the yardstick)")
    print(f"written: {RESULTS / 'convergence.json'}")


if __name__ == "__main__":
    main()
