"""Which partners a round asks to train (`[federation] fraction_train`).

A consortium of hundreds of partners need not hear from every one each round: like Flower's
`fraction_train`, a round asks a share of the partners still training, but drawn here from the
partners' names with the scenario's seed and the round number, so a rerun asks the same partners
(node ids change from run to run). A partner that is not asked receives nothing, trains nothing
and releases nothing: its ledger charges only the rounds it trained, so the accounting stays exact
(no amplification by this sampling is claimed: the coordinator knows whom it asked).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def round_sample(partners: Mapping[int, str], fraction: float, *, seed: int, server_round: int,
                 minimum: int = 1) -> list[int]:
    """Node ids of the partners asked in `server_round`: ceil(`fraction` × n) of the n given
    (node id → partner name), at least `minimum`, all when `fraction` is 1; sorted by name."""
    ordered = sorted(partners, key=lambda node: partners[node])
    want = min(len(ordered), max(minimum, math.ceil(fraction * len(ordered) - 1e-9)))
    if want >= len(ordered):
        return ordered
    rng = np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, server_round, 0xF5A3]))
    chosen = set(rng.choice(len(ordered), size=want, replace=False).tolist())
    return [node for i, node in enumerate(ordered) if i in chosen]
