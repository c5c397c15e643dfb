"""Benchmark: scoring applicants with a model artefact, in batch and over HTTP.

Model: logistic regression on the Taiwan data (`../shared/data`, 30,000 rows, 14 numeric + 9
categorical columns → the shared transform's 100+ features), trained centrally in a few seconds with
the same transform method and training loop as a federated run (the scorer does not care how the
weights were found), reference distributions from exact statistics.

Batch (`fedcredit.scoring.batch.score_file`: validation by the reading rules, transform, PD, points,
decision, 4 reason codes, drift counts, atomic write):
* the 30,000-row Taiwan file as shipped (CSV.gz) and as Parquet, to CSV and Parquet;
* --rows (default 1,000,000) rows (the Taiwan rows repeated, new ids) from Parquet and from CSV —
  target ≥ 200,000 rows/s for Parquet → Parquet.
Rows/s counts the whole call (open, read, score, write, rename), medians of --repeat runs.

HTTP (a real `fedcredit serve` process on 127.0.0.1, a real HTTP client, keep-alive connections):
* one applicant per request, sequential: p50 / p99 latency — target p99 ≤ 10 ms;
* 8 concurrent clients (threads, one connection each) for --seconds: requests/s, p50 / p99.
The clients run in this process on the same 2 cores as the server.

    .venv/bin/python benchmarks/bench_scoring.py [--rows 1000000] [--repeat 3] [--requests 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fedcredit.credit.artefact import ScoringModel  # noqa: E402
from fedcredit.credit.atomic import atomic_write_json  # noqa: E402
from fedcredit.credit.features import ColumnPlan, FeatureTransform  # noqa: E402
from fedcredit.credit.loading import prepare_table, read_table  # noqa: E402
from fedcredit.credit.metrics import ScoreHistogram, exact_metrics  # noqa: E402
from fedcredit.credit.model import CreditClassifier  # noqa: E402
from fedcredit.credit.reference import reference  # noqa: E402
from fedcredit.credit.schema import DatasetSpec  # noqa: E402
from fedcredit.credit.statistics import RangeStats  # noqa: E402
from fedcredit.scoring.batch import score_file  # noqa: E402
from fedcredit.scoring.scorer import Scaling, ScoreOptions, Scorer  # noqa: E402
from fedcredit.simulations.datasets import TAIWAN, TAIWAN_DATASET, require  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BATCH_TARGET = 200_000          # rows/s, logistic, Parquet
P99_TARGET_MS = 10.0


def train(folder: Path) -> Path:
    spec = DatasetSpec.from_dict(TAIWAN_DATASET)
    table = prepare_table(read_table(require(TAIWAN)), spec, source="taiwan")
    ranges = RangeStats.from_frame(table.features, table.label, spec)
    plan = ColumnPlan.fit(ranges, spec)
    bins = plan.bin_stats(table.features)
    transform = FeatureTransform.fit(plan, bins, spec)
    x = transform.transform(table.features)
    clf = CreditClassifier("logistic", epochs=3).fit(x, table.label.astype(np.float32))
    p = clf.predict_proba(x)[:, 1]
    print(f"model: logistic on Taiwan, {transform.n_features} features, training AUC "
          f"{exact_metrics(table.label, p)['auc']:.3f}")
    meta = {"scenario": "bench-scoring", "run": "bench", "rounds": 0, "model": "logistic",
            "privacy": "no differential privacy (benchmark model)",
            "reference": reference(plan, ranges, bins, transform, [ScoreHistogram.from_scores(table.label, p)],
                                   noised=False)}
    path = folder / "model.pt"
    ScoringModel(spec, transform, "logistic", (), clf.module_.state_dict(), meta).save(path)
    return path


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column of the Taiwan file holds whole numbers: as int64 (Parquet), not text."""
    return frame.apply(pd.to_numeric).astype("int64")


def batch(model: Path, folder: Path, rows: int, repeat: int) -> list[dict]:
    scorer = Scorer(ScoringModel.load(model), ScoreOptions(cutoff=0.3, scaling=Scaling()))
    taiwan = typed(read_table(require(TAIWAN)))       # as a warehouse exports it: numbers as numbers
    taiwan.to_parquet(folder / "taiwan.parquet")
    big = pd.concat([taiwan] * -(-rows // len(taiwan)), ignore_index=True).iloc[:rows]
    big["ID"] = np.arange(1, rows + 1).astype(str)
    big.to_parquet(folder / "big.parquet")
    big.to_csv(folder / "big.csv", index=False)
    cases = [(TAIWAN, "taiwan-scores.csv", len(taiwan)), (TAIWAN, "taiwan-scores.parquet", len(taiwan)),
             (folder / "taiwan.parquet", "taiwan-scores2.parquet", len(taiwan)),
             (folder / "big.parquet", "big-scores.parquet", rows), (folder / "big.parquet", "big-scores.csv", rows),
             (folder / "big.csv", "big-scores2.csv", rows), (folder / "big.csv", "big-scores2.parquet", rows)]
    out = []
    for src, dst, n in cases:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            result = score_file(scorer, src, folder / dst, overwrite=True)
            times.append(time.perf_counter() - started)
            assert result.scored == n
        med = statistics.median(times)
        kind = "Parquet" if str(src).endswith(".parquet") else "CSV.gz" if str(src).endswith(".gz") else "CSV"
        row = {"input": kind, "output": "Parquet" if dst.endswith(".parquet") else "CSV", "rows": n,
               "seconds_median": round(med, 3), "rows_per_second": round(n / med)}
        out.append(row)
        print(f"batch  {n:>9,} rows  {row['input']:>7} → {row['output']:<7}  {med:7.3f} s  "
              f"{row['rows_per_second']:>9,} rows/s")
    return out


def _applicant(row: pd.Series) -> dict:
    return {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()
            if k not in ("ID", "next_payment")}


def http(model: Path, requests: int, seconds: float) -> dict:
    proc = subprocess.Popen([sys.executable, "-m", "fedcredit.cli.main", "serve", str(model), "--port", "0",
                             "--cutoff", "0.3", "--points", "600:50:20"], stdout=subprocess.PIPE, text=True)
    try:
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        if not lines or "serving model" not in lines[0]:
            raise SystemExit(f"the service did not start: {lines}")
        url = lines[0].split(" on ")[1].split(" ")[0]
        taiwan = typed(read_table(require(TAIWAN)))    # a loan system sends numbers as JSON numbers
        people = [_applicant(taiwan.iloc[i]) for i in range(500)]
        with httpx.Client(base_url=url, timeout=10) as client:
            for person in people[:50]:                                  # warm-up
                assert client.post("/score", json=person).status_code == 200
            lat = []
            for i in range(requests):
                started = time.perf_counter()
                reply = client.post("/score", json=people[i % len(people)])
                lat.append(time.perf_counter() - started)
                assert reply.status_code == 200
        lat_ms = np.array(lat) * 1e3
        single = {"requests": requests, "p50_ms": round(float(np.percentile(lat_ms, 50)), 3),
                  "p99_ms": round(float(np.percentile(lat_ms, 99)), 3),
                  "mean_ms": round(float(lat_ms.mean()), 3)}
        print(f"http   one applicant, sequential: p50 {single['p50_ms']:.2f} ms  p99 {single['p99_ms']:.2f} ms "
              f"(target p99 ≤ {P99_TARGET_MS:g} ms)")

        results: list[list[float]] = [[] for _ in range(8)]
        stop = time.monotonic() + seconds

        def client_loop(k: int) -> None:
            with httpx.Client(base_url=url, timeout=10) as c:
                i = k
                while time.monotonic() < stop:
                    t = time.perf_counter()
                    r = c.post("/score", json=people[i % len(people)])
                    results[k].append(time.perf_counter() - t)
                    assert r.status_code == 200
                    i += 8
        threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(8)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        every = np.array([x for r in results for x in r]) * 1e3
        concurrent = {"clients": 8, "seconds": round(elapsed, 2), "requests": int(len(every)),
                      "requests_per_second": round(len(every) / elapsed), "p50_ms": round(float(np.percentile(every, 50)), 3),
                      "p99_ms": round(float(np.percentile(every, 99)), 3)}
        print(f"http   8 concurrent clients: {concurrent['requests_per_second']:,} requests/s  "
              f"p50 {concurrent['p50_ms']:.2f} ms  p99 {concurrent['p99_ms']:.2f} ms")
        return {"single": single, "concurrent": concurrent}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = train(folder)
        batch_rows = batch(model, folder, args.rows, args.repeat)
        served = http(model, args.requests, args.seconds)
    parquet = next(r for r in batch_rows if r["input"] == "Parquet" and r["output"] == "Parquet" and r["rows"] == args.rows)
    verdict = {"batch_parquet_rows_per_second": parquet["rows_per_second"],
               "batch_target_met": parquet["rows_per_second"] >= BATCH_TARGET,
               "http_p99_ms": served["single"]["p99_ms"], "http_target_met": served["single"]["p99_ms"] <= P99_TARGET_MS}
    print(f"targets: batch Parquet {parquet['rows_per_second']:,} rows/s (≥ {BATCH_TARGET:,}: "
          f"{'met' if verdict['batch_target_met'] else 'NOT met'}); HTTP p99 {served['single']['p99_ms']:.2f} ms "
          f"(≤ {P99_TARGET_MS:g}: {'met' if verdict['http_target_met'] else 'NOT met'})")
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "scoring.json", {"machine": {"cpus": __import__("os").cpu_count(),
                                                             "python": platform.python_version()},
                                                 "batch": batch_rows, "http": served, "targets": verdict})
    print(f"wrote {RESULTS / 'scoring.json'}")


if __name__ == "__main__":
    main()
