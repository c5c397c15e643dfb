"""Benchmark: the default scenario in a Flower simulation vs the same steps run centrally.

Prints a table and writes benchmarks/results/simulation.json: for each engine (the partners' ClientApps in
this process, the default for a few partners; or on a private Ray, as before), each in a fresh process:
wall time, start-up (statistics round incl. Ray's and the actor's cold start) vs training rounds, peak
memory of the whole process tree (driver + Ray daemons + actors), and the wall time of the same number of
optimizer steps run centrally without Flower, as a ratio — beside issue 14's targets (≤ 2.5×, ≤ 1 GB).

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
from fedcredit.credit.model import CreditClassifier  # noqa: E402
from fedcredit.server.app import RunSettings  # noqa: E402
from fedcredit.simulations.runner import check_partners, simulate  # noqa: E402

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


def central_same_steps(settings: RunSettings, steps: int) -> tuple[float, int]:
    """Train the same model on the pooled rows for `steps` optimizer steps, no Flower."""
    scenario = settings.resolve_scenario()
    data = check_partners(scenario)
    fed = scenario.federation
    x = pd.concat([d.train.features for d in data.values()], ignore_index=True)
    y = np.concatenate([d.train.label for d in data.values()]).astype(np.float32)
    transform = FeatureTransform.fit_rows(x, scenario.dataset)
    design = transform.transform(x)
    epochs = max(1, round(steps / math.ceil(len(y) / fed.batch_size)))
    started = time.perf_counter()
    clf = CreditClassifier(fed.model, hidden=fed.hidden, epochs=epochs, batch_size=fed.batch_size,
                           optimizer=fed.optimizer, learning_rate=fed.learning_rate).fit(design, y)
    return time.perf_counter() - started, clf.steps_


TARGET_RATIO, TARGET_MB = 2.5, 1024


def measure(engine: str, scenario: str, rounds: int) -> dict:
    """One simulation on `engine`, in this process (run by `main` in a fresh one per engine)."""
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
        central_seconds, central_steps = central_same_steps(settings, steps)
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
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.scenario, args.rounds)))
        return

    reports = []
    for engine in args.engines.split(","):
        child = subprocess.run([sys.executable, __file__, "--one", engine, "--scenario", args.scenario,
                                "--rounds", str(args.rounds)], capture_output=True, text=True, check=True)
        reports.append(json.loads(child.stdout.strip().splitlines()[-1]))
    report = {"runs": reports, "target": {"wall_vs_central_ratio": TARGET_RATIO, "peak_memory_mb": TARGET_MB}}
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
