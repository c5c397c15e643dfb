"""Benchmark: vertical logistic regression from a DP-noised joint Gram matrix, in process (no Flower).

Taiwan split by columns into a lender (LIMIT_BAL, SEX, EDUCATION, MARRIAGE, AGE, BILL_AMT1–6, and the
label) and a bureau (PAY_0, PAY_2–6, PAY_AMT1–6, numeric), an `--overlap` share of the rows joined
(the PSI intersection), 25 % of them held out by a fixed seed; German credit split into its first and
last ten attributes as a second check (several splits: 1,000 rows). Each party fits its own
`FeatureTransform.fit_rows` on its training rows, clips rows to `fedcredit.privacy.gram.row_bound`,
and the full two-party protocol runs here: the dealer's triple, masked matrices, shares, each
party's Gaussian noise on the blocks involving its columns, the label holder's reconstruction,
`GramLogistic`. Scored exactly on the test rows (sklearn AUC), against: scikit-learn's
LogisticRegression on the joined transformed rows (centralised, same transforms, unclipped), the
label holder alone (LR on its columns), and the vertical model without noise. DP points: each party's
σ from fedcredit's accountant for ONE Gaussian release at (ε − `--reserve`, δ) — the reserve is left
for the transform statistics — over `--seeds` noise draws (mean ± sd). `--tune` also prints the grid
over the row-bound constant c and the ridge that chose the defaults. Also: the secure product's
wall time for n = 25,000, a = 30, b = 20. Prints tables and writes benchmarks/results/vertical_lr.json.

    .venv/bin/python benchmarks/bench_vertical_lr.py [--epsilons 1 3] [--seeds 10] [--overlap 0.85] [--tune]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fedcredit.credit.atomic import atomic_write_json  # noqa: E402
from fedcredit.credit.features import FeatureTransform  # noqa: E402
from fedcredit.credit.gram_logistic import DEFAULT_RIDGE, GramLogistic, assemble_gram  # noqa: E402
from fedcredit.credit.loading import prepare_table, read_table  # noqa: E402
from fedcredit.credit.metrics import exact_metrics  # noqa: E402
from fedcredit.credit.schema import DatasetSpec  # noqa: E402
from fedcredit.privacy import gram  # noqa: E402
from fedcredit.privacy.accountant import calibrate_noise  # noqa: E402
from fedcredit.protection import secure_product as sp  # noqa: E402
from fedcredit.simulations.datasets import GERMAN, GERMAN_COLUMNS, GERMAN_NUMERIC, TAIWAN, require  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DELTA = 1e-5
TEST_FRACTION = 0.25


@dataclass(frozen=True)
class Party:
    name: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    levels: dict | None = None


TAIWAN_LENDER = Party("lender", ("LIMIT_BAL", "AGE", *(f"BILL_AMT{i}" for i in range(1, 7))),
                      ("SEX", "EDUCATION", "MARRIAGE"),
                      {"SEX": ("1", "2"), "EDUCATION": tuple(map(str, range(7))), "MARRIAGE": ("0", "1", "2", "3")})
TAIWAN_BUREAU = Party("bureau", ("PAY_0", *(f"PAY_{i}" for i in range(2, 7)), *(f"PAY_AMT{i}" for i in range(1, 7))))
GERMAN_A = Party("lender", tuple(c for c in GERMAN_COLUMNS[:10] if c in GERMAN_NUMERIC),
                 tuple(c for c in GERMAN_COLUMNS[:10] if c not in GERMAN_NUMERIC))
GERMAN_B = Party("other", tuple(c for c in GERMAN_COLUMNS[10:20] if c in GERMAN_NUMERIC),
                 tuple(c for c in GERMAN_COLUMNS[10:20] if c not in GERMAN_NUMERIC))


@dataclass
class Split:
    """Per party: transformed (unclipped) train/test rows, the column count of its row bound; the label."""

    train: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    columns: dict[str, int]
    y_train: np.ndarray
    y_test: np.ndarray


def party_spec(label: str, party: Party) -> DatasetSpec:
    return DatasetSpec(label=label, numeric=party.numeric, categorical=party.categorical, levels=party.levels or {})


def load(dataset: str) -> tuple[pd.DataFrame, np.ndarray, str, tuple[Party, Party]]:
    if dataset == "taiwan":
        parties = (TAIWAN_LENDER, TAIWAN_BUREAU)
        frame, label, bad, drop = read_table(require(TAIWAN)), "next_payment", 1, ("ID",)
    else:
        parties = (GERMAN_A, GERMAN_B)
        frame = pd.read_csv(require(GERMAN), sep=r"\s+", header=None, names=list(GERMAN_COLUMNS), dtype=str)
        label, bad, drop = "class", 2, ()
    numeric = tuple(c for p in parties for c in p.numeric)
    categorical = tuple(c for p in parties for c in p.categorical)
    levels = {k: v for p in parties for k, v in (p.levels or {}).items()}
    spec = DatasetSpec(label=label, numeric=numeric, categorical=categorical, bad=bad, drop=drop, levels=levels)
    table = prepare_table(frame, spec, source=dataset)
    return table.features, table.label, label, parties


def split(features: pd.DataFrame, label: np.ndarray, label_name: str, parties: Sequence[Party], *,
          overlap: float, seed: int) -> Split:
    """The joined rows (an `overlap` share), 25 % held out; each party's own transform on its train rows."""
    rng = np.random.default_rng(seed)
    joined = rng.permutation(len(label))[: int(round(overlap * len(label)))]
    n_test = int(round(TEST_FRACTION * len(joined)))
    test_idx, train_idx = joined[:n_test], joined[n_test:]
    train, test, columns = {}, {}, {}
    for p in parties:
        cols = list(p.numeric + p.categorical)
        tr = features.iloc[train_idx][cols].reset_index(drop=True)
        te = features.iloc[test_idx][cols].reset_index(drop=True)
        transform = FeatureTransform.fit_rows(tr, party_spec(label_name, p))
        train[p.name] = transform.transform(tr).astype(np.float64)
        test[p.name] = transform.transform(te).astype(np.float64)
        columns[p.name] = gram.norm_columns(transform)
    return Split(train, test, columns, label[train_idx].astype(np.float64), label[test_idx].astype(np.float64))


def secure_cross_block(z_left: np.ndarray, z_right: np.ndarray, noise_left: np.ndarray,
                       noise_right: np.ndarray) -> np.ndarray:
    """The full two-party protocol for Z_left^T Z_right, each party's noise added to its share."""
    n, a = z_left.shape
    b = z_right.shape[1]
    seed_left, seed_right = sp.new_seed(), sp.new_seed()                 # dealer
    c1, c2 = sp.dealer_shares(seed_left, seed_right, n, a, b)
    E = sp.masked(sp.encode(z_left), seed_left)                          # P → Q (encrypted)
    F = sp.masked(sp.encode(z_right), seed_right)                        # Q → P (encrypted)
    share_left = sp.add_noise(sp.left_share(seed_left, F, c1), noise_left)
    share_right = sp.add_noise(sp.right_share(E, F, seed_right, c2), noise_right)
    return sp.reconstruct(share_left, share_right)                       # at the label holder


def vertical_fit(data: Split, names: Sequence[str], *, c: float, ridge: float, sigma: float | None,
                 rng: np.random.Generator, replace_one: bool = False, noise_rule: bool = True) -> dict:
    """Clip, run the protocol with each party's noise (sigma None: none), solve, score the test rows."""
    holder = names[0]
    clipped = {p: gram.clip_rows(data.train[p], gram.row_bound(data.columns[p], per_column=c)) for p in names}
    blocks = {p: clipped[p] for p in names}
    n = len(data.y_train)
    blocks[holder] = np.column_stack([np.ones(n), clipped[holder], data.y_train])
    bounds = {p: gram.block_bound(data.columns[p], label_holder=p == holder, per_column=c) for p in names}
    sd = {p: 0.0 if sigma is None else
          sigma * gram.gram_sensitivity(bounds[p], list(bounds.values()), replace_one=replace_one) for p in names}
    sizes = [blocks[p].shape[1] for p in names]
    own = {p: blocks[p].T @ blocks[p] + gram.symmetric_noise(sizes[i], sd[p], rng) for i, p in enumerate(names)}
    cross = {(p, q): secure_cross_block(blocks[p], blocks[q], gram.block_noise(sizes[i], sizes[j], sd[p], rng),
                                        gram.block_noise(sizes[i], sizes[j], sd[q], rng))
             for i, p in enumerate(names) for j, q in enumerate(names) if i < j}
    S, layout = assemble_gram(own, cross, holder)
    noise = math.sqrt(sum(s * s for s in sd.values()))
    model = GramLogistic(ridge=ridge).fit(S, layout, noise_sd=noise if noise_rule else 0.0)
    scores = sum(model.partial_score(p, gram.clip_rows(data.test[p], gram.row_bound(data.columns[p], per_column=c)))
                 for p in names)
    return _metrics(data.y_test, model.predict_proba_from_scores(scores))


def _metrics(y: np.ndarray, p_bad: np.ndarray) -> dict:
    m = exact_metrics(y, p_bad)
    return {"auc": m["auc"], "ks": m["ks"], "brier": m["brier"]}


def lr_metrics(data: Split, names: Sequence[str]) -> dict:
    x_train = np.column_stack([data.train[p] for p in names])
    x_test = np.column_stack([data.test[p] for p in names])
    model = LogisticRegression(max_iter=5000).fit(x_train, data.y_train)
    return _metrics(data.y_test, model.predict_proba(x_test)[:, 1])


def sigma_for(epsilon: float, reserve: float) -> float:
    return calibrate_noise([], budget=epsilon - reserve, delta=DELTA, sample_rate=1.0, steps=1)


def summary(runs: list[dict]) -> dict:
    """AUC mean ± sd over runs; KS and Brier means."""
    aucs = [r["auc"] for r in runs]
    return {"mean": statistics.fmean(aucs), "sd": statistics.stdev(aucs) if len(aucs) > 1 else 0.0,
            "runs": len(aucs), "ks_mean": statistics.fmean(r["ks"] for r in runs),
            "brier_mean": statistics.fmean(r["brier"] for r in runs)}


def evaluate(dataset: str, splits: list[Split], names: Sequence[str], *, c: float, ridge: float,
             sigmas: dict[float, float], seeds: int, replace_one_at: float | None) -> dict:
    rng = np.random.default_rng(12345)
    out = {"dataset": dataset, "rows_train": len(splits[0].y_train), "rows_test": len(splits[0].y_test),
           "splits": len(splits), "c": c, "ridge": ridge,
           "features": {p: int(splits[0].train[p].shape[1]) for p in names},
           "row_bound_columns": dict(splits[0].columns),
           "centralised_lr": summary([lr_metrics(s, names) for s in splits]),
           "label_holder_alone_lr": summary([lr_metrics(s, names[:1]) for s in splits]),
           "vertical_no_dp": summary([vertical_fit(s, names, c=c, ridge=ridge, sigma=None, rng=rng) for s in splits]),
           "dp": []}
    for eps, sigma in sigmas.items():
        aucs = [vertical_fit(s, names, c=c, ridge=ridge, sigma=sigma, rng=rng) for s in splits for _ in range(seeds)]
        out["dp"].append({"epsilon": eps, "sigma": sigma, "relation": "add/remove", "auc": summary(aucs)})
        if replace_one_at is not None and math.isclose(eps, replace_one_at):
            aucs = [vertical_fit(s, names, c=c, ridge=ridge, sigma=sigma, rng=rng, replace_one=True)
                    for s in splits for _ in range(seeds)]
            out["dp"].append({"epsilon": eps, "sigma": sigma, "relation": "replace-one", "auc": summary(aucs)})
    return out


def tune(dataset: str, splits: list[Split], names: Sequence[str], sigmas: dict[float, float], seeds: int) -> list:
    rows = []
    rng = np.random.default_rng(777)
    for c in (0.5, 0.75, 1.0, 1.25):
        for ridge in (1e-4, 1e-3, 1e-2):
            for rule in (True,):
                row = {"dataset": dataset, "c": c, "ridge": ridge, "noise_rule": rule,
                       "no_dp": statistics.fmean(vertical_fit(s, names, c=c, ridge=ridge, sigma=None, rng=rng)["auc"]
                                                 for s in splits)}
                for eps, sigma in sigmas.items():
                    row[f"eps{eps:g}"] = statistics.fmean(
                        vertical_fit(s, names, c=c, ridge=ridge, sigma=sigma, rng=rng, noise_rule=rule)["auc"]
                        for s in splits for _ in range(seeds))
                rows.append(row)
                print("  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                      flush=True)
    return rows


def time_product(n: int = 25_000, a: int = 30, b: int = 20) -> dict:
    rng = np.random.default_rng(0)
    left, right = (gram.clip_rows(rng.normal(size=(n, k)), 8.0) for k in (a, b))
    t0 = time.perf_counter()
    seed_left, seed_right = sp.new_seed(), sp.new_seed()
    c1, c2 = sp.dealer_shares(seed_left, seed_right, n, a, b)
    t1 = time.perf_counter()
    E, F = sp.masked(sp.encode(left), seed_left), sp.masked(sp.encode(right), seed_right)
    t2 = time.perf_counter()
    share_left = sp.left_share(seed_left, F, c1)
    share_right = sp.right_share(E, F, seed_right, c2)
    t3 = time.perf_counter()
    product = sp.reconstruct(share_left, share_right)
    t4 = time.perf_counter()
    return {"n": n, "a": a, "b": b, "dealer_s": t1 - t0, "masking_s": t2 - t1, "shares_s": t3 - t2,
            "reconstruct_s": t4 - t3, "total_s": t4 - t0, "max_abs_error": float(np.max(np.abs(product - left.T @ right))),
            "bytes_masked_matrices": int(E.nbytes + F.nbytes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--reserve", type=float, default=0.3, help="epsilon left for the transform statistics")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--overlap", type=float, default=0.85)
    parser.add_argument("--german-splits", type=int, default=5)
    parser.add_argument("--taiwan-splits", type=int, default=1, help="train/test splits (seeds 0, 1, ...)")
    parser.add_argument("--c", type=float, default=gram.ROW_BOUND_PER_COLUMN)
    parser.add_argument("--ridge", type=float, default=DEFAULT_RIDGE)
    parser.add_argument("--tune", action="store_true")
    args = parser.parse_args()

    sigmas = {eps: sigma_for(eps, args.reserve) for eps in args.epsilons}
    print("σ per party for one Gaussian release: " + ", ".join(
        f"ε {e:g} (spends {e - args.reserve:g}) → {s:.3f}" for e, s in sigmas.items()), flush=True)
    report: dict = {"delta": DELTA, "reserve_epsilon": args.reserve, "overlap": args.overlap, "seeds": args.seeds,
                    "sigmas": {f"{e:g}": s for e, s in sigmas.items()}, "datasets": [], "tuning": []}
    report["secure_product"] = time_product()
    print("secure product n=25,000 a=30 b=20: " + ", ".join(
        f"{k} {v:.3f}" for k, v in report["secure_product"].items() if k.endswith("_s")) +
        f", max error {report['secure_product']['max_abs_error']:.2e}", flush=True)
    for dataset, n_splits, overlap in (("taiwan", args.taiwan_splits, args.overlap), ("german", args.german_splits, 1.0)):
        features, label, label_name, parties = load(dataset)
        names = [p.name for p in parties]
        splits = [split(features, label, label_name, parties, overlap=overlap, seed=s) for s in range(n_splits)]
        if args.tune:
            report["tuning"] += tune(dataset, splits, names, sigmas, args.seeds)
        report["datasets"].append(evaluate(dataset, splits, names, c=args.c, ridge=args.ridge, sigmas=sigmas,
                                           seeds=args.seeds, replace_one_at=max(args.epsilons)))
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "vertical_lr.json", report)
    print(f"\nrow bound c = {args.c:g}·sqrt(columns), ridge {args.ridge:g} (+ the noise rule), δ = {DELTA:g}, "
          f"reserve ε {args.reserve:g} for the transform statistics")
    print(f"{'dataset':<8} {'train':>6} {'cen. LR':>8} {'holder':>8} {'vert.':>8} {'Δ vs LR':>8}  DP (mean ± sd AUC)")
    for d in report["datasets"]:
        cen, alone, vert = d["centralised_lr"]["mean"], d["label_holder_alone_lr"]["mean"], d["vertical_no_dp"]["mean"]
        dp = "  ".join(f"ε{x['epsilon']:g}{'' if x['relation'] == 'add/remove' else '(repl.)'} "
                       f"{x['auc']['mean']:.4f}±{x['auc']['sd']:.4f} (Δ {x['auc']['mean'] - vert:+.4f})"
                       for x in d["dp"])
        print(f"{d['dataset']:<8} {d['rows_train']:>6} {cen:>8.4f} {alone:>8.4f} {vert:>8.4f} {vert - cen:>+8.4f}  {dp}")
    print("KS / Brier (means): " + "; ".join(
        f"{d['dataset']} cen. {d['centralised_lr']['ks_mean']:.3f}/{d['centralised_lr']['brier_mean']:.4f}, "
        f"vert. {d['vertical_no_dp']['ks_mean']:.3f}/{d['vertical_no_dp']['brier_mean']:.4f}, " + ", ".join(
            f"ε{x['epsilon']:g}{'' if x['relation'] == 'add/remove' else '(repl.)'} "
            f"{x['auc']['ks_mean']:.3f}/{x['auc']['brier_mean']:.4f}" for x in d["dp"]) for d in report["datasets"]))
    print(f"written: {RESULTS / 'vertical_lr.json'}")


if __name__ == "__main__":
    main()
