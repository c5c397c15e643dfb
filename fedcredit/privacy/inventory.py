"""Everything a partner sends, and how each item is protected under a record-level DP policy.

The inventory is data: one entry per field of a partner's replies (by path, `*` standing
for a column, level or bin name). Each field is either NOISED and charged to the partner's
ledger by a named mechanism, on named rows, or PUBLIC with the reason it reveals nothing
about any customer row beyond what the noised releases already do. A test walks every
message type a DP partner sends and checks each field against this list; the privacy
report prints it.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

NOISED, PUBLIC, SEALED = "noised", "public", "sealed"   # sealed: end-to-end encrypted to one other party


@dataclass(frozen=True)
class Item:
    path: str              # where it appears in a reply, e.g. "report.stats.magnitudes.*.counts"
    messages: tuple[str, ...]
    protection: str        # NOISED, PUBLIC, or SEALED (the coordinator relays ciphertext; `how` says what
                           # the receiving party learns and how that is protected)
    how: str               # mechanism and rows (noised), or why it is public


STATS, TRAIN, EVALUATE = "query.stats", "train", "evaluate"
HISTOGRAMS = "query.histograms"     # model "gbdt": one tree level's gradient histograms
VERTICAL = "query.vertical"         # a vertical federation's phases (fedcredit.clients.vertical)
ALL = (STATS, TRAIN, EVALUATE, HISTOGRAMS, VERTICAL)

_STATEMENT = ("the partner's privacy statement: computed from the ledger's release parameters (noise, sample "
              "rate, steps, delta) and the policy, not from rows")
_SHAPE = "a fixed shape of the release (grid size, bin positions): the same for every dataset"

INVENTORY: tuple[Item, ...] = (
    # identity and protocol
    Item("report.partner", ALL, PUBLIC, "the partner's name, from its configuration"),
    Item("report.kind", ALL, PUBLIC, "the partner's kind (bank, insurer, platform), from its configuration"),
    Item("report.declined", ALL, PUBLIC, "why the partner declines: budget figures from its ledger and policy"),
    Item("report.warnings", ALL, PUBLIC, "budget warnings from the ledger and the policy"),
    Item("report.stats_noise_sd", ALL, PUBLIC, "the noise standard deviation: noise multiplier × sensitivity "
                                                    "(sensitivity is set by the column list)"),
    Item("report.privacy.*", ALL, PUBLIC, _STATEMENT),
    Item("report.privacy.warnings.*", ALL, PUBLIC, _STATEMENT),
    # counts
    Item("metrics.num-examples", ALL, PUBLIC, "the FedAvg weight: the noised training row count of release 1 "
                                              "(post-processing), or 1"),
    Item("report.rows_train", ALL, PUBLIC, "the noised training row count of release 1 (post-processing); "
                                           "absent when the partner declines before release 1"),
    Item("report.rows_test", (TRAIN, EVALUATE), PUBLIC, "the total of the noised evaluation histogram "
                                                         "(post-processing); absent when nothing was evaluated"),
    Item("report.stats.kind", (STATS,), PUBLIC, "which of the two statistics releases this is"),
    # round 0, release 1 (range statistics)
    Item("report.stats.rows", (STATS,), NOISED, "gaussian-statistics, release 1, training rows"),
    Item("report.stats.bad", (STATS,), NOISED, "gaussian-statistics, release 1, training rows"),
    Item("report.stats.missing.*", (STATS,), NOISED, "gaussian-statistics, release 1, training rows"),
    Item("report.stats.magnitudes.*.counts", (STATS,), NOISED, "gaussian-statistics, release 1, training rows"),
    Item("report.stats.magnitudes.*.bins", (STATS,), PUBLIC, "which bins are sent: every bin of the grid (the "
                                                            "noise makes them all non-zero)"),
    Item("report.stats.magnitudes.*.size", (STATS,), PUBLIC, _SHAPE),
    Item("report.stats.levels.*", (STATS,), NOISED, "gaussian-statistics, release 1, training rows; a level "
                                                    "whose noisy count is under 3 noise sd is not sent"),
    Item("report.stats.label_values.*", (STATS,), PUBLIC, "the label's two codes (e.g. 0 and 1): the file's coding, "
                                                          "required to hold both values, not a fact about a row"),
    Item("report.stats.per_decade", (STATS,), PUBLIC, _SHAPE),
    # round 0, release 2 (bins on the coordinator's windows)
    Item("report.stats.histograms.*.counts", (STATS,), NOISED, "gaussian-statistics, release 2, training rows"),
    Item("report.stats.histograms.*.bins", (STATS,), PUBLIC, "every bin of the coordinator's grid"),
    Item("report.stats.sums.*", (STATS,), NOISED, "gaussian-statistics, release 2, training rows: the sums of the "
                                                  "values and their squares in the window's units (each ≤ 1 a row); in a scorecard "
                                                  "run computed from the noised cells (post-processing)"),
    Item("report.stats.histograms.*.size", (STATS,), PUBLIC, _SHAPE),
    Item("report.stats.by_label.*", (STATS,), NOISED, "gaussian-statistics, release 2, training rows (a scorecard "
                                                      "run: the good and bad counts per cell; its histograms are "
                                                      "their sums)"),
    # training
    Item("arrays.*", (TRAIN,), NOISED, "dp-sgd (Opacus: Poisson sampling, per-row clipping, Gaussian noise), "
                                       "training rows"),
    Item("metrics.steps", (TRAIN,), PUBLIC, "optimizer steps: batches per epoch (from the noised row count) × "
                                            "epochs"),
    Item("report.steps", ALL, PUBLIC, "optimizer steps: batches per epoch (from the noised row count) × epochs; "
                                      "0 in a reply that trained nothing"),
    # boosted trees (model "gbdt"): one tree level's histograms
    Item("histograms.grad", (HISTOGRAMS,), NOISED, "gaussian-histogram, training rows: per open node, column and "
                                                   "bin, the sum of the rows' loss gradients, each clipped to [-1, 1]"),
    Item("histograms.hess", (HISTOGRAMS,), NOISED, "gaussian-histogram, training rows: per open node, column and "
                                                   "bin, the sum of the rows' hessians, each clipped to [0, 1/4]"),
    # evaluation of the received model on held-out rows
    Item("report.evaluation.bad", (TRAIN, EVALUATE, VERTICAL), NOISED, "gaussian-evaluation, held-out rows"),
    Item("report.evaluation.good", (TRAIN, EVALUATE, VERTICAL), NOISED, "gaussian-evaluation, held-out rows"),
    Item("report.evaluation.bins", (TRAIN, EVALUATE, VERTICAL), PUBLIC, "every bin of the coarse score grid"),
    Item("report.evaluation.edges", (TRAIN, EVALUATE, VERTICAL), PUBLIC, _SHAPE),
    Item("report.evaluation.noise_sd", (TRAIN, EVALUATE, VERTICAL), PUBLIC,
         "the noise multiplier of the evaluation release"),
    # fairness: the final model's held-out scores by protected group (an evaluate message that asks for it)
    Item("report.fairness.columns.*.bad", (EVALUATE,), NOISED, "gaussian-fairness, held-out rows (a row adds one "
                                                               "count per protected column: sensitivity √columns)"),
    Item("report.fairness.columns.*.good", (EVALUATE,), NOISED, "gaussian-fairness, held-out rows (a row adds one "
                                                                "count per protected column: sensitivity √columns)"),
    Item("report.fairness.edges", (EVALUATE,), PUBLIC, "the coarse score grid plus the coordinator's cutoff"),
    Item("report.fairness.cutoff", (EVALUATE,), PUBLIC, "the coordinator's cutoff (from the scenario's cutoff_score)"),
    Item("report.fairness.noise_sd", (EVALUATE,), PUBLIC, "the noise multiplier × √(protected columns)"),
    # vertical federation (same customers, other columns): alignment, the joint Gram matrix, the model parts
    Item("vinfo.channel", (VERTICAL,), PUBLIC, "an X25519 public key made for this run (end-to-end sealing)"),
    Item("vinfo.keys_fingerprint", (VERTICAL,), PUBLIC, "SHA-256 of the party's whole normalised key set (to "
                                                        "reuse an alignment): confirms only a guess of the whole set"),
    Item("vinfo.cached*", (VERTICAL,), PUBLIC, "ids of alignments the party cached: hashes of parties' names and "
                                                 "key-set fingerprints"),
    Item("vinfo.label_holder", (VERTICAL,), PUBLIC, "whether the party holds the label: its configuration"),
    Item("vinfo.declared_label", (VERTICAL,), PUBLIC, "the label column its configuration names (\"\" at a passive "
                                                      "party), checked against the coordinator's scenario"),
    Item("vinfo.declared_columns*", (VERTICAL,), PUBLIC, "the feature columns its configuration declares, checked "
                                                         "against the coordinator's scenario"),
    Item("vinfo.key_shape.*", (VERTICAL,), PUBLIC, "the key column's format: shares of digit-only keys and of "
                                                   "leading zeros (rounded to a tenth) and the median length; no key "
                                                   "(for a hint when the parties' keys do not meet)"),
    Item("vinfo.keys", (VERTICAL,), PUBLIC, "how many customers the party's file holds: its set size, which the "
                                            "length of its blinded set shows anyway"),
    Item("vinfo.intersection", (VERTICAL,), PUBLIC, "how many customers every party holds: the output of the "
                                                    "private set intersection, revealed by design"),
    Item("vinfo.rows", (VERTICAL,), PUBLIC, "the shared customers outside the held-out split (a hash of each key "
                                            "decides; the dealer needs the count): follows from the intersection"),
    Item("vinfo.test_rows", (VERTICAL,), PUBLIC, "the shared customers in the held-out split"),
    Item("vinfo.columns", (VERTICAL,), PUBLIC, "the width of the party's block of the joint Gram matrix"),
    Item("vinfo.bound", (VERTICAL,), PUBLIC, "the row-norm bound of the party's block: a function of its width"),
    Item("vinfo.features*", (VERTICAL,), PUBLIC, "the names of the party's model inputs: its configured columns "
                                                  "and the levels its transform keeps (under DP fitted from its "
                                                  "own noised statistics: post-processing)"),
    Item("vinfo.dropped.*", (VERTICAL,), PUBLIC, "the columns the party's transform does not use, and why (under "
                                                 "DP decided from its own noised statistics: post-processing)"),
    Item("vinfo.noise_sd", (VERTICAL,), PUBLIC, "the Gram release's noise sd: noise multiplier × sensitivity"),
    Item("vinfo.declined", (VERTICAL,), PUBLIC, "why the party declines: budget figures from its ledger and policy"),
    Item("vout.blinded", (VERTICAL,), SEALED, "each normalised key hashed to the curve and raised to the party's "
                                              "secret (ECDH-PSI, X25519), in a random order: without the secret "
                                              "no key can be recovered or tested (DDH); the label holder and the "
                                              "coordinator see it"),
    Item("vout.reblinded", (VERTICAL,), SEALED, "the label holder's blinded keys raised to this party's secret too, "
                                                "in the order received: lets the label holder find shared customers "
                                                "only"),
    Item("vout.positions.*", (VERTICAL,), SEALED, "to one passive party: which of its blinded keys are shared, in "
                                                  "the agreed order (AES-GCM): the intersection it needs to take part"),
    Item("vout.masked.*", (VERTICAL,), SEALED, "to the other party of one secure product: the party's block minus a "
                                               "mask from the dealer (uniformly random in Z_2^64); the dealer "
                                               "holds the mask but never sees this"),
    Item("vout.gram", (VERTICAL,), SEALED, "to the label holder: the party's Gram block and secure-product shares, "
                                           "each noised (gaussian-gram, training rows)"),
    Item("vout.weights.*", (VERTICAL,), SEALED, "to one passive party: its model weights, solved from the noised "
                                                "joint Gram matrix (post-processing)"),
    Item("vout.scores", (VERTICAL,), SEALED, "to the label holder: the party's partial scores of the held-out "
                                             "customers (not noised: the model's own output, as scoring an "
                                             "applicant sends it; never of a training row)"),
)

# Under a DP policy these are never sent (the reply carries null or omits them).
WITHHELD = ("report.train_loss", "metrics.train-loss", "report.stats.extremes.*",
            "report.evaluation.brier_sum", "report.evaluation.logloss_sum", "report.validation_loss",
            "report.rows_validation", "report.fairness.columns.*.sums.*")


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, leaf) pairs of nested dicts/lists; None leaves are skipped (nothing is sent)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, (list, tuple)) and value and isinstance(value[0], (Mapping, list, tuple)):
        for i, v in enumerate(value):
            yield from flatten(v, f"{prefix}.{i}")
    elif isinstance(value, (list, tuple)) and prefix.endswith(("label_values", "warnings")):
        for i, v in enumerate(value):
            yield f"{prefix}.{i}", v
    elif value is not None:
        yield prefix, value


def classify(path: str, message: str) -> Item | None:
    """The inventory item that covers `path` in a reply to `message`, if any."""
    for item in INVENTORY:
        if message in item.messages and fnmatch.fnmatchcase(path, item.path):
            return item
    return None


def reply_paths(content: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Every leaf a reply carries: `content` maps record names to dicts (the report as parsed JSON)."""
    out: list[tuple[str, Any]] = []
    for name, record in content.items():
        if name == "report" and isinstance(record, str):
            record = json.loads(record)
        out.extend(flatten(record, name))
    return out


def as_table() -> list[dict[str, str]]:
    """The inventory as rows for the privacy report."""
    return [{"field": i.path, "messages": ", ".join(i.messages), "protection": i.protection, "how": i.how}
            for i in INVENTORY] + [{"field": w, "messages": "", "protection": "withheld",
                                    "how": "not sent under a record-level DP policy"} for w in WITHHELD]
