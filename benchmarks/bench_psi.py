"""Benchmark: aligning two parties' customers with ECDH-PSI (issue 11: 100,000 × 100,000 keys, 60 % overlap, ≤ 30 s).

One process does, one after the other, the work of both parties as the protocol runs it
(`fedcredit.protection.psi`): normalise and check both key columns, each party hashes and blinds
its keys, the passive party re-blinds the hub's points, the hub re-blinds the passive party's,
the hub matches them, keeps its rows and seals the positions to the passive party
(`fedcredit.protection.channel`), which opens them and maps them to its rows. Message transport
is not timed (the deployment benchmark measures a Flower phase). The keys are strings like
"CUST-00012345"; the passive party spells them in upper case with stray spaces and holds them in
another order. Correctness: every aligned pair is the same customer and the pairs are exactly the
common customers. Prints a table and writes benchmarks/results/psi.json.

    .venv/bin/python benchmarks/bench_psi.py [--rows 100000] [--overlap 0.6] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from pathlib import Path

import cryptography
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fedcredit.credit.atomic import atomic_write_json  # noqa: E402
from fedcredit.credit.customer_keys import key_set_fingerprint, read_keys  # noqa: E402
from fedcredit.protection.channel import ChannelKey, open_sealed, pack_array, seal, unpack_array  # noqa: E402
from fedcredit.protection.psi import PsiParty, hub_alignment  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_S = 30.0


def key_columns(rows: int, overlap: float, seed: int) -> tuple[list[str], list[str], int]:
    """Hub and passive raw key columns (rows each, `overlap` of them shared), in unrelated orders."""
    rng = random.Random(seed)
    shared = round(rows * overlap)
    ids = rng.sample(range(10 ** 8), 2 * rows - shared)
    hub = [f"CUST-{i:08d}" for i in ids[:rows]]
    passive = [f" cust-{i:08d}  " if k % 3 == 0 else f"CUST-{i:08d}" for k, i in enumerate(ids[rows - shared:])]
    rng.shuffle(hub)
    rng.shuffle(passive)
    return hub, passive, shared


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="keys per party")
    parser.add_argument("--overlap", type=float, default=0.6, help="share of each party's keys held by both")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    hub_raw, passive_raw, shared = key_columns(args.rows, args.overlap, args.seed)
    steps: dict[str, float] = {}

    def step(name: str, fn):
        start = time.perf_counter()
        result = fn()
        steps[name] = time.perf_counter() - start
        return result

    wall = time.perf_counter()
    hub_keys, passive_keys = step("both: normalise and check keys", lambda: (
        read_keys(hub_raw, source="hub.csv", partner="hub", field="customer_id"),
        read_keys(passive_raw, source="passive.csv", partner="passive", field="customer_id")))
    step("both: key-set fingerprints (cache)", lambda: (key_set_fingerprint(hub_keys),
                                                        key_set_fingerprint(passive_keys)))
    hub = step("hub: hash + blind own keys", lambda: PsiParty.create(hub_keys))
    passive = step("passive: hash + blind own keys", lambda: PsiParty.create(passive_keys))
    hub_points, passive_points = hub.blinded(), passive.blinded()
    mine_double = step("passive: re-blind hub's points", lambda: passive.reblind(hub_points))
    theirs_double = step("hub: re-blind passive's points", lambda: hub.reblind(passive_points))
    joint, positions = step("hub: match (hub_alignment)", lambda: hub_alignment(
        {"passive": mine_double}, {"passive": theirs_double}))
    hub_key, passive_key = ChannelKey.generate(), ChannelKey.generate()

    def send_positions():
        hub_rows = hub.rows(joint)
        sealed = seal(hub_key, passive_key.public_bytes(), pack_array(positions["passive"]), context=b"psi/bench")
        return hub_rows, sealed

    hub_rows, sealed = step("hub: own rows + seal positions", send_positions)
    passive_rows = step("passive: open positions + own rows", lambda: passive.rows(unpack_array(
        open_sealed(passive_key, hub_key.public_bytes(), sealed, context=b"psi/bench"))))
    total = time.perf_counter() - wall

    pairs_match = all(hub_keys[i] == passive_keys[j] for i, j in zip(hub_rows.tolist(), passive_rows.tolist()))
    expected = set(hub_keys) & set(passive_keys)
    correct = bool(pairs_match and len(hub_rows) == len(expected) == shared
                   and {hub_keys[i] for i in hub_rows.tolist()} == expected)
    operations = 2 * args.rows + 2 * args.rows
    x25519 = sum(v for k, v in steps.items() if "blind" in k)
    results = {
        "rows_per_party": args.rows, "overlap": args.overlap, "intersection": int(len(hub_rows)),
        "expected_intersection": shared, "correct": correct,
        "steps_s": {k: round(v, 3) for k, v in steps.items()}, "total_s": round(total, 3),
        "target_s": TARGET_S, "target_met": bool(correct and total <= TARGET_S),
        "x25519_operations": operations, "x25519_s": round(x25519, 3),
        "x25519_us_per_operation": round(1e6 * x25519 / operations, 2),
        "message_bytes": {"hub_blinded": len(hub_points), "passive_blinded": len(passive_points),
                          "passive_reblinded_hub": len(mine_double), "sealed_positions": len(sealed)},
        "processes": 1, "statistic": "one run, the four steps of both parties sequential in one process",
        "load_average_1min": round(os.getloadavg()[0], 2),
        "machine": {"python": platform.python_version(), "cryptography": cryptography.__version__,
                    "numpy": np.__version__, "cpus": os.cpu_count(), "platform": platform.platform()},
    }

    width = max(len(k) for k in steps) + 2
    print(f"{'step':<{width}}{'seconds':>10}")
    for name, seconds in steps.items():
        print(f"{name:<{width}}{seconds:>10.3f}")
    print(f"{'total (measured)':<{width}}{total:>10.3f}   target ≤ {TARGET_S:.0f} s: "
          f"{'ok' if results['target_met'] else 'MISSED'}")
    print(f"\n{args.rows:,} × {args.rows:,} keys, intersection {len(hub_rows):,} (expected {shared:,}): "
          f"{'correct' if correct else 'WRONG'}; {operations:,} X25519 operations in {x25519:.2f} s "
          f"({results['x25519_us_per_operation']} µs each); load average {results['load_average_1min']}")
    path = atomic_write_json(RESULTS / "psi.json", results)
    print(f"written: {path}")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
