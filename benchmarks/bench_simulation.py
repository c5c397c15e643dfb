"""Benchmark: the default scenario in a Flower simulation vs the same steps run centrally.

Prints a table and writes benchmarks/results/simulation.json: for each engine (the partners' ClientApps in
this process, the default for a few partners; or on a private Ray, as before), each in a fresh process:
wall time, start-up (statistics round incl. Ray's and the actor's cold start) vs training rounds, peak
memory of the whole process tree (driver + Ray daemons + actors), and the wall time of the same number of
optimizer steps run centrally without Flower, as a ratio — beside issue 14's targets (≤ 2.5×, ≤ 1 GB).

Two ways to time "the same steps centrally", both printed:
- in the simulation's process after it ran (torch, Opacus, pandas already imported and warm), plain
  (non-private) steps on the pooled, already transformed rows: `central_same_steps_seconds`, the
  ratio `wall_vs_central_ratio` against the simulation's wall after its imports;
- start-up included on both sides, each a fresh process timed from its start to its exit: the
  simulation (`process_wall_seconds`) against a central script that imports what it needs, reads
  the partners' files, fits the same feature transform on the pooled rows and trains the same
  number of steps — plain (`central_process_seconds`), and with the same DP-SGD as the partners
  (Opacus, Poisson sampling, per-sample clipping, noise: `central_dp_process_seconds`), since the
  default scenario's partners train privately.

    .venv/bin/python benchmarks/bench_simulation.py [--scenario FILE] [--rounds N] [--engines in-process,ray]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fedcredit.credit.atomic import atomic_write_json  # noqa: E402
from fedcredit.credit.features import FeatureTransform  # noqa: E402
from fedcredit.credit.model import (  # noqa: E402
    CreditClassifier,
    Rows,
    build_model,
    make_loader,
    make_optimizer,
    train_epochs,
)
from fedcredit.credit.scenario import Scenario, load_scenario  # noqa: E402
from fedcredit.privacy.dpsgd import batches_per_epoch  # noqa: E402
from fedcredit.privacy.embedded import default_scenario_path  # noqa: E402

# (the simulation's own modules — Flower among them — are imported where a simulation runs: a central
# script would not import them)

RESULTS = Path(__file__).resolve().parent / "results"


class PeakMemory:
    """Samples the RSS of this process and all its descendants every 100 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.1)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def pooled_training_rows(scenario: Scenario) -> tuple[pd.DataFrame, np.ndarray]:
    """Every partner's training rows (its file — a vault for the embedded default — opened and checked
    as its client opens it, the same held-out split), pooled: (features, label)."""
    from fedcredit.clients.partner import open_partner_data
    from fedcredit.credit.protocol import TaskConfig

    task = TaskConfig(scenario.dataset, scenario.federation, run="", run_dir="", trees=scenario.trees)
    trains = [open_partner_data(p, task, purpose="yardstick").train for p in scenario.partners]
    return (pd.concat([t.features for t in trains], ignore_index=True),
            np.concatenate([t.label for t in trains]).astype(np.float32))


def _scenario(path: str) -> Scenario:
    return load_scenario(path or default_scenario_path())


def central_same_steps(scenario: Scenario, steps: int) -> tuple[float, int]:
    """Train the same model on the pooled rows for `steps` optimizer steps, no Flower."""
    fed = scenario.federation
    x, y = pooled_training_rows(scenario)
    transform = FeatureTransform.fit_rows(x, scenario.dataset)
    design = transform.transform(x)
    epochs = max(1, round(steps / math.ceil(len(y) / fed.batch_size)))
    started = time.perf_counter()
    clf = CreditClassifier(fed.model, hidden=fed.hidden, epochs=epochs, batch_size=fed.batch_size,
                           optimizer=fed.optimizer, learning_rate=fed.learning_rate).fit(design, y)
    return time.perf_counter() - started, clf.steps_


def central_process(scenario: str, steps: int, private: bool) -> dict:
    """In a fresh process (run by `main`): read the partners' files, fit the transform on the pooled
    training rows, train `steps` optimizer steps (DP-SGD if `private`); the inner timings."""
    started = time.perf_counter()
    resolved = _scenario(scenario)
    fed = resolved.federation
    x, y = pooled_training_rows(resolved)
    design = FeatureTransform.fit_rows(x, resolved.dataset).transform(x)
    loaded = time.perf_counter()
    model = build_model(fed.model, design.shape[1], hidden=fed.hidden, seed=fed.seed)
    optimizer = make_optimizer(model, fed.optimizer, lr=fed.learning_rate, weight_decay=fed.weight_decay)
    epochs = max(1, round(steps / batches_per_epoch(len(y), fed.batch_size)))
    if private:
        from fedcredit.privacy.dpsgd import make_private

        clip = next(iter(resolved.partners)).privacy.max_grad_norm
        dp = make_private(model, optimizer, Rows(design, y), noise_multiplier=1.0, max_grad_norm=clip,
                          public_rows=len(y), batch_size=fed.batch_size, seed=fed.seed)
        result = train_epochs(dp.model, dp.loader, dp.optimizer, epochs=epochs)
    else:
        result = train_epochs(model, make_loader(design, y, batch_size=fed.batch_size, seed=fed.seed), optimizer,
                              epochs=epochs)
    return {"load_and_transform_seconds": round(loaded - started, 2),
            "train_seconds": round(time.perf_counter() - loaded, 2), "steps": result.steps}


def _child(*args: str) -> tuple[dict, float]:
    """Run this script with `args` in a fresh process: (its JSON answer, its whole wall seconds)."""
    started = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(child.stdout.strip().splitlines()[-1]), time.perf_counter() - started


TARGET_RATIO, TARGET_MB = 2.5, 1024


def measure(engine: str, scenario: str, rounds: int) -> dict:
    """One simulation on `engine`, in this process (run by `main` in a fresh one per engine)."""
    from fedcredit.server.app import RunSettings
    from fedcredit.simulations.runner import simulate

    with tempfile.TemporaryDirectory() as tmp:
        # a machine state and demo cache of the benchmark's own: it never spends the user's budgets
        os.environ["FEDCREDIT_STATE_DIR"] = str(Path(tmp) / "state")
        os.environ.setdefault("FEDCREDIT_CACHE_DIR", str(Path(tmp) / "cache"))
        settings = RunSettings(scenario=scenario, out_dir=str(Path(tmp) / "run"), rounds=rounds)
        started = time.perf_counter()
        with PeakMemory() as memory:
            result = simulate(settings, yardsticks=False, engine=engine)
        wall = time.perf_counter() - started
        rounds_log = [json.loads(line) for line in (result.run_dir / "rounds.jsonl").read_text().splitlines()]
        steps = sum(r["train_steps"] for r in rounds_log)
        central_seconds, central_steps = central_same_steps(settings.resolve_scenario(), steps)
    summary = result.summary
    training = sum(r["seconds"] for r in rounds_log[1:])
    startup = summary["timing"]["seconds_statistics_round"]
    return {
        "engine": summary["simulation_engine"]["backend"],
        "scenario": summary["scenario"],
        "partners": len(summary["partners"]),
        "rows": sum(p["rows_train"] + p["rows_test"] for p in summary["partners"]),
        "rounds": summary["rounds"],
        "wall_seconds": round(wall, 2),
        "startup_and_statistics_round_seconds": round(startup, 2),
        "training_rounds_seconds": round(training, 2),
        "seconds_per_round": round(training / max(summary["rounds"], 1), 3),
        "other_seconds": round(wall - startup - training, 2),
        "peak_memory_mb": round(memory.peak / 2**20),
        "optimizer_steps": steps,
        "central_same_steps_seconds": round(central_seconds, 2),
        "central_steps": central_steps,
        "wall_vs_central_ratio": round(wall / central_seconds, 1),
        "rounds_vs_central_ratio": round(training / central_seconds, 1),
        "federated_auc": summary["federated"]["auc"] and round(summary["federated"]["auc"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="", help="scenario TOML (default: embedded synthetic consortium)")
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--engines", default="in-process,ray", help="comma-separated: in-process, ray")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)    # child: measure one engine, print JSON
    parser.add_argument("--central", type=int, default=0, help=argparse.SUPPRESS)   # child: N central steps
    parser.add_argument("--private", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.scenario, args.rounds)))
        return
    if args.central:
        print(json.dumps(central_process(args.scenario, args.central, args.private)))
        return

    reports = []
    cache = tempfile.TemporaryDirectory()      # the embedded consortium's files, written once before any timing
    os.environ.setdefault("FEDCREDIT_CACHE_DIR", cache.name)
    os.environ["FEDCREDIT_STATE_DIR"] = str(Path(cache.name) / "state")   # never this machine's ledgers/audit
    _scenario(args.scenario)
    for engine in args.engines.split(","):
        report, process_wall = _child("--one", engine, "--scenario", args.scenario, "--rounds", str(args.rounds))
        steps = report["optimizer_steps"]
        plain, plain_wall = _child("--central", str(steps), "--scenario", args.scenario)
        private, private_wall = _child("--central", str(steps), "--private", "--scenario", args.scenario)
        report.update({
            "process_wall_seconds": round(process_wall, 2),
            "central_process_seconds": round(plain_wall, 2),
            "central_process_train_seconds": plain["train_seconds"],
            "central_dp_process_seconds": round(private_wall, 2),
            "central_dp_process_train_seconds": private["train_seconds"],
            "process_wall_vs_central_process_ratio": round(process_wall / plain_wall, 1),
            "process_wall_vs_central_dp_process_ratio": round(process_wall / private_wall, 1)})
        reports.append(report)
    report = {"runs": reports, "target": {"wall_vs_central_ratio": TARGET_RATIO, "peak_memory_mb": TARGET_MB,
                                          "process_wall_vs_central_process_ratio": TARGET_RATIO,
                                          "process_wall_vs_central_dp_process_ratio": TARGET_RATIO}}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "simulation.json", report)
    keys = list(reports[0])
    width = max(map(len, keys))
    print(f"\n{'measure':<{width}}  " + "  ".join(f"{r['engine']:>12}" for r in reports) + "  target")
    for key in keys:
        target = report["target"].get(key, "")
        target = f"≤ {target}" if target != "" else ""
        print(f"{key:<{width}}  " + "  ".join(f"{str(r[key]):>12}" for r in reports) + f"  {target}")
    print(f"\nwritten: {RESULTS / 'simulation.json'}")


if __name__ == "__main__":
    main()
