"""Benchmark: federated boosted trees (model "gbdt") against scikit-learn's centralised
HistGradientBoostingClassifier (same trees, depth, learning rate, L2, bins) and federated logistic
regression, on the Taiwan data (3 partners), German credit and (--datasets synthetic) the embedded
synthetic default consortium; without DP and, on Taiwan, at a
per-run epsilon (default 3) per partner for both trees and DP-SGD LR. Also: wall time per tree
(federated, inside a simulation on this machine) vs the centralised HGB fit per tree, and message
phases per tree. DP points report the exact AUC of the final model on the pooled test rows (scored
here, where the modeller holds every table) beside the noised one. Each point uses its own machine
state, so no point spends another's budget. Prints a table and writes benchmarks/results/gbdt.json.

    .venv/bin/python benchmarks/bench_gbdt.py [--trees 50] [--depth 3] [--learning-rate 0.3]
        [--dp-trees 80] [--dp-depth 1] [--dp-colsample 0.1] [--dp-max-bins 8] [--epsilon 3] [--rounds 20]
        [--datasets taiwan german synthetic] [--skip-dp]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fedcredit.clients.partner import open_partner_data  # noqa: E402
from fedcredit.credit.artefact import ScoringModel  # noqa: E402
from fedcredit.credit.atomic import atomic_write_json  # noqa: E402
from fedcredit.credit.features import FeatureTransform  # noqa: E402
from fedcredit.credit.metrics import exact_metrics  # noqa: E402
from fedcredit.credit.protocol import TaskConfig  # noqa: E402
from fedcredit.credit.scenario import load_scenario  # noqa: E402
from fedcredit.credit.trees import TreeSettings  # noqa: E402
from fedcredit.server.app import RunSettings  # noqa: E402
from fedcredit.simulations.datasets import (  # noqa: E402
    write_default_without_dp,
    write_german_partners,
    write_taiwan_partners,
)
from fedcredit.simulations.runner import simulate  # noqa: E402
from fedcredit.simulations.tree_yardsticks import fit_hgb  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
LR_FEDERATION = {"learning_rate": 0.003}      # as benchmarks/bench_privacy.py (DP-SGD's Adam step)


def with_gbdt(path: Path, gbdt: dict) -> Path:
    raw = tomllib.loads(path.read_text())
    raw["federation"]["model"] = "gbdt"
    raw["gbdt"] = gbdt
    path.write_text(tomli_w.dumps(raw))
    return path


def write_default(out: Path, *, rounds: int = 20, extra_federation: dict | None = None) -> Path:
    """The embedded synthetic default consortium (58,000 rows, 3 partners) with privacy off."""
    return write_default_without_dp(out, federation={"rounds": rounds, **(extra_federation or {})})


def pooled_rows(scenario_path: Path) -> tuple[list, list]:
    scenario = load_scenario(scenario_path)
    task = TaskConfig(scenario.dataset, scenario.federation)
    data = [open_partner_data(p, task, purpose="check") for p in scenario.partners]
    return [d.train for d in data], [d.test for d in data]


def exact_pooled_auc(scenario_path: Path, run_dir: Path) -> float:
    """The final model's exact AUC on the pooled test rows (what the noised evaluations estimate)."""
    _, tests = pooled_rows(scenario_path)
    model = ScoringModel.load(run_dir / "model.pt")
    return exact_metrics(np.concatenate([t.label for t in tests]),
                         np.concatenate([model.predict_proba(t.features) for t in tests]))["auc"]


def hgb_seconds_per_tree(scenario_path: Path, trees: TreeSettings) -> float:
    """The centralised HGB's fit time per tree on the pooled training rows (design matrix ready)."""
    scenario = load_scenario(scenario_path)
    trains, _ = pooled_rows(scenario_path)
    features = pd.concat([t.features for t in trains], ignore_index=True)
    label = np.concatenate([t.label for t in trains])
    x = FeatureTransform.fit_rows(features, scenario.dataset).transform(features)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        fit_hgb(x, label, trees)
        times.append(time.perf_counter() - started)
    return statistics.median(times) / trees.trees


def run(scenario: Path, out: Path, *, yardsticks: bool, state: Path) -> dict:
    os.environ["FEDCREDIT_STATE_DIR"] = str(state)      # this point's own lifetime budgets
    result = simulate(RunSettings(scenario=str(scenario), out_dir=str(out)), yardsticks=yardsticks)
    return {"summary": result.summary, "run_dir": result.run_dir}


def compare(name: str, write, tmp: Path, gbdt: dict, rounds: int) -> dict:
    """Non-private: federated trees (with the HGB yardsticks) and federated LR on one dataset."""
    trees_path = with_gbdt(write(tmp / f"{name}-gbdt", rounds=rounds), gbdt)
    trees = run(trees_path, tmp / f"{name}-run-gbdt", yardsticks=True, state=tmp / f"{name}-state-gbdt")
    s = trees["summary"]
    lr = run(write(tmp / f"{name}-lr", rounds=rounds, extra_federation=LR_FEDERATION), tmp / f"{name}-run-lr",
             yardsticks=False, state=tmp / f"{name}-state-lr")["summary"]
    settings = TreeSettings(**gbdt)
    return {"dataset": name, "federated_gbdt_auc": s["federated"]["auc"], "centralised_hgb_auc": s["centralized"]["auc"],
            "gbdt_minus_hgb": s["federated"]["auc"] - s["centralized"]["auc"],
            "federated_lr_auc": lr["federated"]["auc"], "gbdt_minus_lr": s["federated"]["auc"] - lr["federated"]["auc"],
            "local_hgb_auc": {p["name"]: p["local"]["auc"] for p in s["partners"]},
            "trees": s["gbdt"]["trees_grown"], "phases_per_tree": statistics.mean(s["gbdt"]["phases_per_tree"]),
            "seconds_per_tree_federated": statistics.median(s["gbdt"]["seconds_per_tree"]),
            "seconds_per_tree_centralised_hgb": hgb_seconds_per_tree(trees_path, settings),
            "seconds_simulation": s["timing"]["seconds_simulation"]}


def private(tmp: Path, gbdt: dict, epsilon: float, rounds: int) -> dict:
    """Taiwan at a per-run epsilon per partner: trees vs DP-SGD LR, exact AUCs of both final models."""
    policy = {"mode": "sample", "epsilon": epsilon, "run_epsilon": epsilon, "delta": 1e-6, "ledger_dir": "run"}
    trees_path = with_gbdt(write_taiwan_partners(tmp / "dp-gbdt", rounds=rounds, privacy=policy), gbdt)
    trees = run(trees_path, tmp / "dp-run-gbdt", yardsticks=False, state=tmp / "dp-state-gbdt")
    lr_path = write_taiwan_partners(tmp / "dp-lr", rounds=rounds, extra_federation=LR_FEDERATION, privacy=policy)
    lr = run(lr_path, tmp / "dp-run-lr", yardsticks=False, state=tmp / "dp-state-lr")
    t_exact = exact_pooled_auc(trees_path, trees["run_dir"])
    l_exact = exact_pooled_auc(lr_path, lr["run_dir"])
    s = trees["summary"]
    return {"epsilon": epsilon, "gbdt": gbdt,
            "epsilon_spent_gbdt": max(p["privacy"]["epsilon"] for p in s["partners"]),
            "epsilon_spent_lr": max(p["privacy"]["epsilon"] for p in lr["summary"]["partners"]),
            "federated_gbdt_auc_reported": s["federated"]["auc"], "federated_gbdt_auc_exact": t_exact,
            "federated_lr_auc_reported": lr["summary"]["federated"]["auc"], "federated_lr_auc_exact": l_exact,
            "gbdt_minus_lr_exact": t_exact - l_exact,
            "noise_multiplier_per_level": sorted({r["noise_multiplier"] for r in json.loads(
                (trees["run_dir"] / "privacy_report.json").read_text())["rounds"]
                if r["mechanism"] == "gaussian-histogram"})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=0.3)
    parser.add_argument("--dp-trees", type=int, default=80)
    parser.add_argument("--dp-depth", type=int, default=1)
    parser.add_argument("--dp-colsample", type=float, default=0.1)
    parser.add_argument("--dp-max-bins", type=int, default=8)
    parser.add_argument("--epsilon", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=20, help="federated LR rounds")
    parser.add_argument("--datasets", nargs="*", choices=["taiwan", "german", "synthetic"], default=["taiwan", "german"])
    parser.add_argument("--skip-dp", action="store_true")
    args = parser.parse_args()
    gbdt = {"trees": args.trees, "max_depth": args.depth, "learning_rate": args.learning_rate}
    rows = []
    dp = None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("FEDCREDIT_CACHE_DIR", str(tmp / "cache"))   # the synthetic consortium, built privately
        writers = {"taiwan": write_taiwan_partners, "german": write_german_partners, "synthetic": write_default}
        for name in args.datasets:
            rows.append(compare(name, writers[name], tmp, gbdt, args.rounds))
        if not args.skip_dp:
            dp = private(tmp, {**gbdt, "trees": args.dp_trees, "max_depth": args.dp_depth,
                               "colsample": args.dp_colsample, "max_bins": args.dp_max_bins}, args.epsilon, args.rounds)
    report = {"settings": gbdt, "lr_rounds": args.rounds, "comparison": rows, "private": dp,
              "targets": {"gbdt_within_hgb": 0.005}}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "gbdt.json", report)
    print(f"\n{'dataset':<8} {'fed GBDT':>9} {'cen. HGB':>9} {'Δ':>8} {'fed LR':>8} {'GBDT−LR':>8} "
          f"{'phases/tree':>11} {'s/tree fed':>10} {'s/tree HGB':>10}")
    for r in rows:
        print(f"{r['dataset']:<8} {r['federated_gbdt_auc']:>9.4f} {r['centralised_hgb_auc']:>9.4f} "
              f"{r['gbdt_minus_hgb']:>+8.4f} {r['federated_lr_auc']:>8.4f} {r['gbdt_minus_lr']:>+8.4f} "
              f"{r['phases_per_tree']:>11.1f} {r['seconds_per_tree_federated']:>10.3f} "
              f"{r['seconds_per_tree_centralised_hgb']:>10.4f}")
    if dp:
        print(f"\nTaiwan at ε = {dp['epsilon']:g} per partner (run), exact pooled AUC: GBDT ({dp['gbdt']['trees']} "
              f"trees) {dp['federated_gbdt_auc_exact']:.4f} (reported {dp['federated_gbdt_auc_reported']:.4f}), "
              f"DP-SGD LR {dp['federated_lr_auc_exact']:.4f} (reported {dp['federated_lr_auc_reported']:.4f}); "
              f"GBDT − LR {dp['gbdt_minus_lr_exact']:+.4f}; ε spent {dp['epsilon_spent_gbdt']:.3f} / "
              f"{dp['epsilon_spent_lr']:.3f}")
    print(f"written: {RESULTS / 'gbdt.json'}")


if __name__ == "__main__":
    main()
