"""Benchmark: the privacy–utility curve on the Taiwan data (3 partners) and DP-SGD's cost.

Pooled federated AUC at per-partner lifetime epsilon 0.5, 1, 3, 8 (one run spending its whole
budget) and without DP, against the centralised non-private AUC; for each DP point the pooled
AUC the partners' noised evaluations report beside the exact AUC of the same model on the same
test rows (scored here, where the modeller holds every table); and the wall time of one DP-SGD
epoch vs a non-private one on the largest partner. Each point uses its own machine state, so
no point spends another's budget. Prints a table and writes benchmarks/results/privacy.json.

    .venv/bin/python benchmarks/bench_privacy.py [--rounds 20] [--epsilons 0.5 1 3 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fedcredit.clients.partner import open_partner_data  # noqa: E402
from fedcredit.credit.artefact import ScoringModel  # noqa: E402
from fedcredit.credit.atomic import atomic_write_json  # noqa: E402
from fedcredit.credit.features import FeatureTransform  # noqa: E402
from fedcredit.credit.metrics import exact_metrics  # noqa: E402
from fedcredit.credit.model import build_model, make_loader, make_optimizer, train_epochs  # noqa: E402
from fedcredit.credit.protocol import TaskConfig
from fedcredit.credit.scenario import load_scenario  # noqa: E402
from fedcredit.privacy.dpsgd import make_private  # noqa: E402
from fedcredit.server.app import RunSettings  # noqa: E402
from fedcredit.simulations.datasets import write_taiwan_partners  # noqa: E402
from fedcredit.simulations.runner import simulate  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# Adam at 0.003 suits DP-SGD (noisy gradients); the non-private point uses the same settings.
FEDERATION = {"learning_rate": 0.003}
# issue 14 part 4: AUC loss against the centralised non-private model at per-partner epsilon 1 and 3
TARGETS = {"auc_loss_at_eps1": 0.01, "auc_loss_at_eps3": 0.005, "dp_epoch_ratio": 1.3}


def epoch_times(scenario_path: Path, repeats: int = 5) -> tuple[float, float]:
    """Median seconds of one epoch, non-private vs DP-SGD, on the largest partner."""
    scenario = load_scenario(scenario_path)
    data = max((open_partner_data(p, TaskConfig(scenario.dataset, scenario.federation), purpose="check") for p in scenario.partners),
               key=lambda d: len(d.train))
    fed = scenario.federation
    transform = FeatureTransform.fit_rows(data.train.features, scenario.dataset)
    x, y = transform.transform(data.train.features), data.train.label.astype(np.float32)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for private in (False, True):
            model = build_model(fed.model, x.shape[1])
            opt = make_optimizer(model, fed.optimizer, lr=fed.learning_rate)
            loader = make_loader(x, y, batch_size=fed.batch_size, seed=0)
            if private:
                wrapped = make_private(model, opt, loader.dataset, noise_multiplier=1.0, max_grad_norm=1.0,
                                       public_rows=len(y), batch_size=fed.batch_size, seed=0)
                model, opt, loader = wrapped.model, wrapped.optimizer, wrapped.loader
            started = time.perf_counter()
            train_epochs(model, loader, opt, epochs=1)
            times[private].append(time.perf_counter() - started)
    return statistics.median(times[False]), statistics.median(times[True])


def exact_pooled_auc(scenario_path: Path, run_dir: Path) -> float:
    """The final model's exact AUC on the pooled test rows (what the noised evaluations estimate)."""
    scenario = load_scenario(scenario_path)
    model = ScoringModel.load(run_dir / "model.pt")
    task = TaskConfig(scenario.dataset, scenario.federation)
    tests = [open_partner_data(p, task, purpose="check").test for p in scenario.partners]
    return exact_metrics(np.concatenate([t.label for t in tests]),
                         np.concatenate([model.predict_proba(t.features) for t in tests]))["auc"]


def _target(epsilon: float | None) -> str:
    limit = {1.0: TARGETS["auc_loss_at_eps1"], 3.0: TARGETS["auc_loss_at_eps3"]}.get(epsilon)
    return f"≤ {limit:g}" if limit is not None else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--epsilons", type=float, nargs="+", default=[0.5, 1.0, 3.0, 8.0])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plain = write_taiwan_partners(tmp / "plain", rounds=args.rounds, extra_federation=FEDERATION)
        summary = simulate(RunSettings(scenario=str(plain), out_dir=str(tmp / "run-plain")),
                           yardsticks=True).summary
        centralised = summary["centralized"]["auc"]
        rows.append({"epsilon": None, "federated_auc": summary["federated"]["auc"],
                     "loss_vs_centralised": centralised - summary["federated"]["auc"]})
        for eps in args.epsilons:
            os.environ["FEDCREDIT_STATE_DIR"] = str(tmp / f"state-{eps}")   # this point's own lifetime budgets
            scen = write_taiwan_partners(tmp / f"dp-{eps}", rounds=args.rounds, extra_federation=FEDERATION,
                                         privacy={"mode": "sample", "epsilon": eps, "run_epsilon": eps,
                                                  "delta": 1e-6, "ledger_dir": "run"})
            result = simulate(RunSettings(scenario=str(scen), out_dir=str(tmp / f"run-{eps}")), yardsticks=False)
            s = result.summary
            spent = max(p["privacy"]["epsilon"] for p in s["partners"])
            exact = exact_pooled_auc(scen, result.run_dir)
            rows.append({"epsilon": eps, "epsilon_spent_max": spent, "federated_auc": s["federated"]["auc"],
                         "federated_auc_exact": exact, "evaluation_error": s["federated"]["auc"] - exact,
                         "loss_vs_centralised": centralised - exact, "rounds": s["rounds"]})
        plain_epoch, dp_epoch = epoch_times(plain)
    report = {"dataset": "taiwan-default-credit-card, 3 partners by EDUCATION", "rounds": args.rounds,
              "centralised_nonprivate_auc": centralised, "curve": rows,
              "targets": TARGETS,
              "epoch_seconds_nonprivate": plain_epoch, "epoch_seconds_dp": dp_epoch,
              "dp_epoch_ratio": dp_epoch / plain_epoch}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "privacy.json", report)
    print(f"\ncentralised non-private AUC {centralised:.4f}")
    print(f"{'epsilon':>8}  {'reported AUC':>12}  {'exact AUC':>10}  {'eval. error':>11}  {'loss vs centralised':>20}"
          f"  {'target':>7}")
    for r in rows:
        eps = "no DP" if r["epsilon"] is None else f"{r['epsilon']:g}"
        exact = r.get("federated_auc_exact", r["federated_auc"])
        print(f"{eps:>8}  {r['federated_auc']:>12.4f}  {exact:>10.4f}  {r.get('evaluation_error', 0.0):>+11.4f}  "
              f"{r['loss_vs_centralised']:>+20.4f}  {_target(r['epsilon']):>7}")
    print(f"\none epoch (largest partner): non-private {plain_epoch * 1000:.0f} ms, DP-SGD {dp_epoch * 1000:.0f} ms, "
          f"ratio {dp_epoch / plain_epoch:.2f}× (target ≤ {TARGETS['dp_epoch_ratio']}×)")
    print(f"written: {RESULTS / 'privacy.json'}")


if __name__ == "__main__":
    main()
