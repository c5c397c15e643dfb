"""Benchmark: how a simulated consortium's wall time and memory grow with the number of partners.

Synthetic consortia (`fedcredit synth --partners N`, Parquet), logistic regression with record-level
DP at ε = 3 per partner, 10 rounds, no yardsticks. Rows: 3 → 10 → 100 partners with 10,000 rows
each on average, and 1,000 partners with 1,000 rows each where a round asks 10 % of them
(`fraction_train = 0.1`). Peak memory is the whole process tree (driver, Ray daemons, actors).
Prints a table and writes benchmarks/results/scale.json. Issue 14's targets: 100 partners × 10,000
rows, 10 rounds, DP in ≤ 180 s wall and ≤ 4 GB.

    .venv/bin/python benchmarks/bench_scale.py [--only 3,10,100,1000] [--rounds 10] [--epsilon 3] [--engine auto]
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

from bench_simulation import PeakMemory  # noqa: E402

from fedcredit.credit.atomic import atomic_write_json  # noqa: E402
from fedcredit.credit.synthetic import scaled_consortium  # noqa: E402
from fedcredit.credit.synthetic_files import write_consortium  # noqa: E402
from fedcredit.server.app import RunSettings  # noqa: E402
from fedcredit.simulations.runner import simulate  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CASES = {3: (10_000, 1.0), 10: (10_000, 1.0), 100: (10_000, 1.0), 1000: (1_000, 0.1)}   # rows each, fraction_train
TARGET_SECONDS, TARGET_GB = 180, 4.0


def consortium(folder: Path, partners: int, rows_each: int, fraction: float, rounds: int, epsilon: float) -> Path:
    path = write_consortium(scaled_consortium(partners, partners * rows_each, seed=0), folder, fmt="parquet",
                            rounds=rounds)
    scenario = tomllib.loads(path.read_text())
    scenario["federation"].update(fraction_train=fraction)
    scenario["privacy"] = {"mode": "sample", "epsilon": epsilon, "run_epsilon": epsilon, "delta": 1e-6}
    path.write_text(tomli_w.dumps(scenario))
    return path


def run_case(tmp: Path, partners: int, rounds: int, epsilon: float, engine: str = "auto") -> dict:
    rows_each, fraction = CASES[partners]
    os.environ["FEDCREDIT_STATE_DIR"] = str(tmp / f"state-{partners}")   # fresh ledgers: never the user's
    scenario = consortium(tmp / f"consortium-{partners}", partners, rows_each, fraction, rounds, epsilon)
    started = time.perf_counter()
    with PeakMemory() as memory:
        result = simulate(RunSettings(scenario=str(scenario), out_dir=str(tmp / f"run-{partners}")), yardsticks=False,
                          engine=engine)
    wall = time.perf_counter() - started
    summary = result.summary
    stats = summary["timing"]["seconds_statistics_round"]
    epsilons = [p["privacy"].get("epsilon") or 0.0 for p in summary["partners"]]
    return {
        "partners": partners, "engine": summary["simulation_engine"]["backend"], "rows": sum(p["rows_train"] + p["rows_test"] for p in summary["partners"]),
        "fraction_train": fraction, "rounds": summary["rounds"], "wall_seconds": round(wall, 1),
        "statistics_round_seconds": round(stats, 1),
        "seconds_per_round": round((summary["timing"]["seconds_total"] - stats) / max(summary["rounds"], 1), 2),
        "peak_memory_gb": round(memory.peak / 2**30, 2), "federated_auc": summary["federated"]["auc"],
        "max_partner_epsilon": round(max(epsilons), 3), "ended_early": summary["ended_early"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="3,10,100,1000", help="comma-separated partner counts")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--epsilon", type=float, default=3.0)
    parser.add_argument("--engine", default="auto", choices=["auto", "in-process", "ray"])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("FEDCREDIT_CACHE_DIR", str(Path(tmp) / "cache"))
        for n in (int(x) for x in args.only.split(",")):
            rows.append(run_case(Path(tmp), n, args.rounds, args.epsilon, args.engine))
            print(rows[-1], flush=True)
    for row in rows:
        if row["partners"] == 100:
            row["target"] = (f"≤ {TARGET_SECONDS} s, ≤ {TARGET_GB} GB: "
                             + ("met" if row["wall_seconds"] <= TARGET_SECONDS and row["peak_memory_gb"] <= TARGET_GB
                                else "not met"))
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "scale.json", {"rounds": args.rounds, "epsilon": args.epsilon, "runs": rows})
    keys = ["partners", "engine", "rows", "fraction_train", "wall_seconds", "statistics_round_seconds", "seconds_per_round",
            "peak_memory_gb", "federated_auc", "max_partner_epsilon"]
    print("\n" + "  ".join(f"{k:>14}" for k in keys))
    for row in rows:
        print("  ".join(f"{str(row[k] if not isinstance(row[k], float) else round(row[k], 4)):>14}" for k in keys)
              + (f"   {row['target']}" if "target" in row else ""))
    print(f"\nwritten: {RESULTS / 'scale.json'}")


if __name__ == "__main__":
    main()
