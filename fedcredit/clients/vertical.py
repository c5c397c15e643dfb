"""A party's side of one vertical training, phase by phase (one Flower message each).

The coordinator relays; every party-to-party payload is sealed end to end (`protection.channel`), so the
coordinator, which also deals the secure products' correlated randomness, sees only ciphertext.

    hello        every party: its channel key, its key-set fingerprint, the alignments it has cached, the role
                 and columns its own config declares (checked against the coordinator's scenario)
    psi-blind    every party: its keys hashed and blinded under its PSI secret (shuffled)
    psi-reblind  a passive party re-blinds the label holder's set; the label holder re-blinds each other's
    psi-align    label holder: the joint intersection, its order; each passive party's positions (sealed)
    gram-1       every party: the aligned rows, the held-out split, its own transform (fitted from its own
                 noised statistics under DP, never sent), its rows clipped; masked input per secure product
    gram-2       every party: its noised share of each product and its own noised Gram block → label holder
    solve        label holder: the joint Gram matrix → the logistic model; each party's weights (sealed)
    score        passive party: keeps its model part; its partial scores of the held-out rows → label holder
    evaluate     label holder: the held-out metrics histogram (noised and charged under DP)

A phase returns (outputs: name → bytes, info: JSON-able dict, report). What the party must remember until its
next message is in its `PartyState` file; rows and customer keys never are.

Differential privacy, per party, against every other party and the coordinator: the neighbouring datasets differ
in ONE customer's values (the PSI already tells the label holder which customers are shared, so membership is not
what the noise hides). Each mechanism's noise is scaled to its replace-one sensitivity — the Gram release's
2·C_p·C (`privacy.gram.gram_sensitivity`), a histogram's √2 × the add/remove one of the horizontal releases — and
the ledger records noise ÷ sensitivity as the noise multiplier, so the accountant's epsilon is for that relation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fedcredit.clients.partner import charge, privacy_folder, privacy_statement
from fedcredit.clients.vertical_party import (
    REPLACE_ONE,
    AlignmentCache,
    PartyData,
    PartyState,
    party_gate,
    statistics_refusal,
)
from fedcredit.credit.atomic import atomic_write_json
from fedcredit.credit.customer_keys import key_shape
from fedcredit.credit.errors import InputError
from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.metrics import ScoreHistogram
from fedcredit.credit.party_table import key_fractions
from fedcredit.credit.protocol import PartnerReport, TaskConfig
from fedcredit.credit.statistics import PRIVATE_PER_DECADE, RangeStats
from fedcredit.privacy.accountant import Charge, Release
from fedcredit.privacy.gram import (
    block_bound,
    block_noise,
    clip_rows,
    gram_sensitivity,
    norm_columns,
    row_bound,
    symmetric_noise,
    vertical_run_shape,
)
from fedcredit.protection.channel import ChannelKey, open_sealed, pack_array, seal, unpack_array
from fedcredit.protection.psi import PsiParty, hub_alignment
from fedcredit.protection.secure_product import add_noise, encode, left_share, masked, right_share

PART_FORMAT = "fedcredit-vertical-part/1"
Outputs = dict[str, bytes]
Result = tuple[Outputs, dict[str, Any], PartnerReport]


class VerticalParty:
    """One party in one phase: its data, the task, its state file and the phase's inputs."""

    def __init__(self, data: PartyData, task: TaskConfig, info: Mapping[str, Any], inputs: Mapping[str, bytes]):
        self.data, self.task, self.info, self.inputs = data, task, dict(info), dict(inputs)
        self.name = data.partner.name
        self.state = PartyState(data.partner, task)

    # -- helpers ---------------------------------------------------------------------------
    def _report(self, **fields: Any) -> PartnerReport:
        return PartnerReport(self.name, self.data.partner.kind, **fields)

    def _channel(self) -> ChannelKey:
        return ChannelKey.from_bytes(self.state.get_bytes("channel"))

    def _peer(self, name: str) -> bytes:
        return bytes.fromhex(self.state.get("channels")[name])

    def _context(self, sender: str, receiver: str, what: str) -> bytes:
        return f"{self.task.run}|{what}|{sender}>{receiver}".encode()

    def _seal_to(self, receiver: str, what: str, payload: bytes) -> bytes:
        return seal(self._channel(), self._peer(receiver), payload, context=self._context(self.name, receiver, what))

    def _open_from(self, sender: str, what: str, sealed: bytes) -> bytes:
        return open_sealed(self._channel(), self._peer(sender), sealed, context=self._context(sender, self.name, what))

    def _input(self, name: str) -> bytes:
        if name not in self.inputs:
            raise InputError(f"the coordinator's message lacks '{name}'", source=f"partner '{self.name}'")
        return self.inputs[name]

    # -- alignment -------------------------------------------------------------------------
    def hello(self) -> Result:
        f = self.task.federation.test_fraction
        rows = int(len(self.data.table.keys) * (1 - f))
        gate = party_gate(self.data, self.task, rows=rows, readonly=True)   # its policy fits, before any PSI
        if gate is not None:
            gate.check_policy(vertical_run_shape(rows, label_holder=self.data.holds_label, test_fraction=f))
            why = statistics_refusal(self.data, rows)
            if why:
                raise InputError(why, source=f"partner '{self.name}' privacy", field="stats_noise_multiplier")
        self.state.sweep()          # a run that failed or was stopped mid-way left its state: gone now
        key = ChannelKey.generate()
        self.state.update(channel=key.to_bytes())
        spec = self.data.partner.spec      # the role its own config declares (the coordinator checks it)
        info = {"channel": key.public_bytes().hex(), "keys_fingerprint": self.data.keys_fingerprint,
                "cached": AlignmentCache(self.data, self.task).ids(), "label_holder": self.data.holds_label,
                "declared_label": spec.label, "declared_columns": sorted(spec.features),
                "keys": len(self.data.table.keys), "key_shape": key_shape(self.data.table.keys)}
        return {}, info, self._report()

    def psi_blind(self) -> Result:
        psi = PsiParty.create(self.data.table.keys)
        self.state.update(psi=psi.to_bytes(), channels=self.info["channels"], alignment=self.info["alignment"])
        return {"blinded": psi.blinded()}, {}, self._report()

    def psi_reblind(self) -> Result:
        psi = PsiParty.from_bytes(self.state.get_bytes("psi"))
        if not self.data.holds_label:
            return {"reblinded": psi.reblind(self._input("hub"))}, {}, self._report()
        theirs = {name[len("party."):]: psi.reblind(blob) for name, blob in self.inputs.items()
                  if name.startswith("party.")}
        self.state.update(**{f"theirs.{p}": blob for p, blob in theirs.items()})
        return {}, {}, self._report()

    def psi_align(self) -> Result:
        psi = PsiParty.from_bytes(self.state.get_bytes("psi"))
        parties = [n for n in self.state.get("channels") if n != self.name]
        mine = {p: self._input(f"reblinded.{p}") for p in parties}
        theirs = {p: self.state.get_bytes(f"theirs.{p}") for p in parties}
        own, positions = hub_alignment(mine, theirs)
        AlignmentCache(self.data, self.task).put(self.state.get("alignment"), psi.rows(own))
        out = {f"positions.{p}": self._seal_to(p, "positions", pack_array(np.asarray(pos, dtype=np.int64)))
               for p, pos in positions.items()}
        return out, {"intersection": int(len(own))}, self._report()

    def _aligned_rows(self) -> np.ndarray:
        cache = AlignmentCache(self.data, self.task)
        ident = self.info["alignment"]
        if "positions" in self.inputs:      # a passive party after a fresh PSI
            label_holder = self.info["label_holder"]
            positions = unpack_array(self._open_from(label_holder, "positions", self._input("positions")))
            rows = PsiParty.from_bytes(self.state.get_bytes("psi")).rows(positions)
            cache.put(ident, rows)
            return rows
        rows = cache.get(ident)
        if rows is None:
            raise InputError("holds no cached alignment the coordinator names: run the alignment again",
                             source=f"partner '{self.name}'")
        return rows

    # -- the joint Gram matrix -------------------------------------------------------------
    def _split(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(training rows, held-out rows), each in the agreed order."""
        keys = self.data.table.keys
        held_out = key_fractions([keys[r] for r in rows]) < self.task.federation.test_fraction
        return rows[~held_out], rows[held_out]

    def _cells(self) -> tuple[tuple[float, float], tuple[float, float]]:
        f = self.task.federation.test_fraction
        return (f, 1.0), (0.0, f)

    def _fit_transform(self, train: np.ndarray, gate: Any, stats_noise: float) -> tuple[FeatureTransform, float]:
        """The party's own transform from its own training rows: exact without DP; under DP from its own
        noised statistics (the horizontal method with one contributor), charged though never sent: the
        Gram release it shapes is only private if the transform is."""
        spec = self.data.partner.spec
        features = self.data.table.features.iloc[train].reset_index(drop=True)
        if gate is None:
            return FeatureTransform.fit_rows(features, spec), 0.0
        from fedcredit.privacy.statistics import noisy_bins, noisy_range

        stats = RangeStats.from_frame(features, np.zeros(len(features)), spec, per_decade=PRIVATE_PER_DECADE,
                                      extremes=False)
        private, _, sd = noisy_range(stats, stats_noise * REPLACE_ONE, public_levels=frozenset(spec.levels))
        plan = ColumnPlan.fit(private, spec, noise_sd=sd)
        bins, _, sd2 = noisy_bins(plan.bin_stats(features), stats_noise * REPLACE_ONE)
        return FeatureTransform.fit(plan, bins, spec, noise_sd=sd2), sd2

    def _design(self, rows: np.ndarray, transform: FeatureTransform) -> np.ndarray:
        """Z for `rows`: the transformed, row-clipped own columns; the label holder's block is
        [1, features, label] (its bound counts the constant and the label: `privacy.gram.block_bound`)."""
        x = clip_rows(transform.transform(self.data.table.features.iloc[rows].reset_index(drop=True)).astype(np.float64),
                      row_bound(norm_columns(transform)))
        if not self.data.holds_label:
            return x
        y = self.data.table.label[rows].astype(np.float64)
        return np.column_stack([np.ones(len(rows)), x, y])

    def gram_1(self) -> Result:
        self.state.update(channels=self.info["channels"], alignment=self.info["alignment"])
        rows = self._aligned_rows()
        train, test = self._split(rows)
        train_cell, test_cell = self._cells()
        gate = party_gate(self.data, self.task, rows=len(train))
        planned: dict[str, Any] = {}
        if gate is not None and (why := statistics_refusal(self.data, len(train))):
            return {}, {"declined": why}, self._report(declined=why)
        if gate is not None:
            plan = gate.plan_run(vertical_run_shape(len(train), label_holder=self.data.holds_label,
                                                    test_fraction=self.task.federation.test_fraction))
            if not plan.train:
                return {}, {"declined": plan.reason}, self._report(
                    declined=plan.reason, privacy=privacy_statement(gate, self.data, status="declined", history=True))
            planned = {"gram": plan.train_noise, "evaluation": plan.eval_noise, "statistics": plan.stats_noise}
            stats_release = Release(plan.stats_noise, 1.0, 1)
            after, reason = gate.admit([Charge(stats_release, train_cell)] * 2)
            if after is None:
                return {}, {"declined": reason}, self._report(declined=reason)
            for _ in range(2):   # the range and bins statistics of its own transform (kept, never sent)
                charge(gate, self.data, self.task, stats_release, mechanism="gaussian-statistics", round=0,
                       rows=train_cell, epsilon=after.epsilon)
        transform, _ = self._fit_transform(train, gate, planned.get("statistics", 0.0))
        if norm_columns(transform) == 0:
            why = (f"no column of party '{self.name}' is usable: its transform dropped "
                   + "; ".join(f"{c} ({w})" for c, w in transform.dropped.items())
                   + (": add rows, or lower stats_noise_multiplier" if gate is not None else ""))
            return {}, {"declined": why}, self._report(declined=why)
        bound = block_bound(norm_columns(transform), label_holder=self.data.holds_label)
        z = encode(self._design(train, transform))
        out = {}
        for pair in self.info["pairs"]:
            seed = self._input(f"seed.{pair['id']}")
            out[f"masked.{pair['id']}"] = self._seal_to(pair["other"], f"masked.{pair['id']}", pack_array(masked(z, seed)))
        self.state.update(transform=transform.to_dict(), planned=planned, train=[int(r) for r in train],
                          test=[int(r) for r in test])
        info = {"rows": int(len(train)), "columns": int(z.shape[1]), "bound": bound,
                "features": transform.feature_names, "test_rows": int(len(test)), "dropped": dict(transform.dropped)}
        return out, info, self._report(rows_train=int(len(train)))

    def _noise_sd(self, gate: Any) -> float:
        if gate is None:
            return 0.0
        bounds = {n: float(b) for n, b in self.info["bounds"].items()}
        return float(self.state.get("planned")["gram"]) * gram_sensitivity(bounds[self.name], list(bounds.values()),
                                                                            replace_one=True)

    def gram_2(self) -> Result:
        transform = FeatureTransform.from_dict(self.state.get("transform"))
        train = np.asarray(self.state.get("train"), dtype=np.int64)
        gate = party_gate(self.data, self.task, rows=len(train))
        train_cell, _ = self._cells()
        sd = self._noise_sd(gate)
        if gate is not None:   # one Gaussian release of every block involving its columns: charged before it leaves
            release = Release(float(self.state.get("planned")["gram"]), 1.0, 1)
            after, reason = gate.admit(Charge(release, train_cell))
            if after is None:
                return {}, {"declined": reason}, self._report(declined=reason)
            charge(gate, self.data, self.task, release, mechanism="gaussian-gram", round=1, rows=train_cell,
                   epsilon=after.epsilon)
        rng = np.random.default_rng()
        z_float = self._design(train, transform)
        own = z_float.T @ z_float + (symmetric_noise(z_float.shape[1], sd, rng) if sd else 0.0)
        z = encode(z_float)
        shares: dict[str, np.ndarray] = {}
        for pair in self.info["pairs"]:
            pid, seed = pair["id"], self._input(f"seed.{pair['id']}")
            theirs = unpack_array(self._open_from(pair["other"], f"masked.{pid}", self._input(f"masked.{pid}")))
            c = unpack_array(self._input(f"share.{pid}"))
            share = left_share(seed, theirs, c) if pair["role"] == "left" else right_share(theirs, masked(z, seed), seed, c)
            if sd:
                share = add_noise(share, block_noise(*share.shape, sd, rng))
            shares[pid] = share
        blob = _pack_many({"own": own, **{f"share.{k}": v for k, v in shares.items()}})
        info = {"noise_sd": sd}
        if self.data.holds_label:
            self.state.update(gram=blob)
            return {}, info, self._report()
        return {"gram": self._seal_to(self.info["label_holder"], "gram", blob)}, info, self._report()

    # -- the model ------------------------------------------------------------------------
    def solve(self) -> Result:
        from fedcredit.credit.gram_logistic import GramLogistic, assemble_gram
        from fedcredit.protection.secure_product import reconstruct

        layout = self.info["layout"]        # {"order": [party...], "pairs": [{id, left, right}], "noise_sd": sd}
        blocks = {self.name: _unpack_many(self.state.get_bytes("gram"))}
        for p in layout["order"]:
            if p != self.name:
                blocks[p] = _unpack_many(self._open_from(p, "gram", self._input(f"gram.{p}")))
        cross = {(q["left"], q["right"]): reconstruct(blocks[q["left"]][f"share.{q['id']}"],
                                                       blocks[q["right"]][f"share.{q['id']}"])
                 for q in layout["pairs"]}
        gram, gram_layout = assemble_gram({p: blocks[p]["own"] for p in layout["order"]}, cross, self.name)
        model = GramLogistic().fit(gram, gram_layout, noise_sd=float(layout.get("noise_sd", 0.0)))
        out = {}
        for p in layout["order"]:
            if p != self.name:
                out[f"weights.{p}"] = self._seal_to(p, "weights", pack_array(np.asarray(model.coef_by_party[p])))
        self._save_part(np.asarray(model.coef_by_party[self.name]), intercept=float(model.intercept_))
        return out, {}, self._report()

    def _save_part(self, weights: np.ndarray, *, intercept: float | None = None) -> Path:
        transform = FeatureTransform.from_dict(self.state.get("transform"))
        part = {"format": PART_FORMAT, "party": self.name, "run": self.task.run, "label_holder": self.data.holds_label,
                "id": self.data.partner.id, "spec": self.data.partner.spec.to_dict(), "transform": transform.to_dict(),
                "bound": row_bound(norm_columns(transform)), "weights": [float(w) for w in weights],
                "intercept": intercept}
        return atomic_write_json(part_path(self.data.partner, self.task), part)

    def _partial_scores(self, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        transform = FeatureTransform.from_dict(self.state.get("transform"))
        x = clip_rows(transform.transform(self.data.table.features.iloc[rows].reset_index(drop=True)).astype(np.float64),
                      row_bound(norm_columns(transform)))
        return x @ weights

    def score(self) -> Result:
        weights = unpack_array(self._open_from(self.info["label_holder"], "weights", self._input("weights")))
        self._save_part(weights)
        test = np.asarray(self.state.get("test"), dtype=np.int64)
        scores = self._partial_scores(test, weights)
        gate = party_gate(self.data, self.task, rows=len(self.state.get("train")), readonly=True)
        out = {"scores": self._seal_to(self.info["label_holder"], "scores", pack_array(scores))}
        self.state.remove()
        return out, {}, self._report(privacy=privacy_statement(gate, self.data, history=True))

    def evaluate(self) -> Result:
        part = json.loads(part_path(self.data.partner, self.task).read_text())
        test = np.asarray(self.state.get("test"), dtype=np.int64)
        logit = part["intercept"] + self._partial_scores(test, np.asarray(part["weights"]))
        for name, blob in self.inputs.items():
            if name.startswith("scores."):
                logit = logit + unpack_array(self._open_from(name[len("scores."):], "scores", blob))
        p_bad = 1.0 / (1.0 + np.exp(-np.clip(logit, -40, 40)))
        exact = ScoreHistogram.from_scores(self.data.table.label[test], p_bad)
        gate = party_gate(self.data, self.task, rows=len(self.state.get("train")))
        self.state.remove()
        if gate is None:
            return {}, {}, self._report(evaluation=exact, rows_test=int(len(test)),
                                        privacy=privacy_statement(None, self.data))
        from fedcredit.privacy.evaluation import noisy_evaluation

        noise = float(self.state.get("planned", {}).get("evaluation") or 0.0) or None
        if noise is None:
            return {}, {}, self._report(declined="no evaluation fits the budget",
                                        privacy=privacy_statement(gate, self.data, history=True))
        private, _, _ = noisy_evaluation(exact, noise * REPLACE_ONE)
        release = Release(noise, 1.0, 1)
        _, test_cell = self._cells()
        after, reason = gate.admit(Charge(release, test_cell))
        if after is None:
            return {}, {}, self._report(declined=reason, privacy=privacy_statement(gate, self.data, history=True))
        charge(gate, self.data, self.task, release, mechanism="gaussian-evaluation", round=1, rows=test_cell,
               epsilon=after.epsilon)
        return {}, {}, self._report(evaluation=private, privacy=privacy_statement(gate, self.data, history=True))


PHASES = {"hello": VerticalParty.hello, "psi-blind": VerticalParty.psi_blind,
          "psi-reblind": VerticalParty.psi_reblind, "psi-align": VerticalParty.psi_align,
          "gram-1": VerticalParty.gram_1, "gram-2": VerticalParty.gram_2, "solve": VerticalParty.solve,
          "score": VerticalParty.score, "evaluate": VerticalParty.evaluate}


def run_phase(phase: str, data: PartyData, task: TaskConfig, info: Mapping[str, Any],
              inputs: Mapping[str, bytes]) -> Result:
    """Carry out one phase for this party (InputError for an unknown phase)."""
    if phase not in PHASES:
        raise InputError(f"unknown vertical phase {phase!r}; known: {sorted(PHASES)}", source="coordinator message")
    return PHASES[phase](VerticalParty(data, task, info, inputs))


def part_path(partner: Any, task: TaskConfig) -> Path:
    """Where a party keeps its model part: the run directory's `parties/` in a simulation, else its privacy
    folder's `vertical/` (never the coordinator's)."""
    if task.run_dir:
        return Path(task.run_dir) / "parties" / f"{partner.name}.json"
    return privacy_folder(partner, task) / "vertical" / f"{partner.name}.{task.run}.model.json"


def _pack_many(arrays: Mapping[str, np.ndarray]) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def _unpack_many(raw: bytes) -> dict[str, np.ndarray]:
    import io

    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
