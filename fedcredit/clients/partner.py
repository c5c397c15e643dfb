"""The work a partner does on its own rows: statistics, one training round, evaluation.

No Flower here: `fedcredit.clients.app` translates messages into these calls, so the same code serves
simulation and deployment. Privacy is a gate on this one path: with a "sample" policy every
release (the two statistics releases, each DP-SGD round, each evaluation) is planned
against, admitted by and charged to the partner's lifetime ledger before anything leaves,
and nothing derived from rows leaves unless `fedcredit.privacy.inventory` lists it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fedcredit.credit.errors import InputError
from fedcredit.credit.fairness import GroupScores
from fedcredit.credit.folds import assign_folds, fold_interval, training_position
from fedcredit.credit.loading import (
    PartnerTable,
    load_table,
    partner_seed,
    prepare_table,
    read_table_bytes,
    split_train_test,
)
from fedcredit.credit.metrics import ScoreHistogram
from fedcredit.credit.model import Rows, build_model, make_loader, make_optimizer, predict_proba, train_epochs
from fedcredit.credit.protocol import BINS, RANGE, PartnerReport, TaskConfig
from fedcredit.credit.scenario import FederationSettings, Partner
from fedcredit.credit.statistics import EXACT_PER_DECADE, PRIVATE_PER_DECADE, RangeStats
from fedcredit.credit.trees import TreeEnsemble, TreeModule
from fedcredit.privacy.accountant import Charge, PrivacySpent, Release
from fedcredit.privacy.anchor import DatasetAnchor
from fedcredit.privacy.gate import PrivacyGate, RunShape
from fedcredit.privacy.ledger import HELD_OUT_MECHANISMS, PrivacyLedger, ledger_path
from fedcredit.protection.access import AccessPolicy, open_vault, reuse_vault
from fedcredit.protection.audit import AuditLog
from fedcredit.protection.keys import load_key
from fedcredit.protection.vault import is_vault


@dataclass(frozen=True)
class PartnerData:
    """A partner's checked rows, split locally into train and test, and the data's fingerprint."""

    partner: Partner
    train: PartnerTable
    test: PartnerTable
    fingerprint: str
    test_fraction: float
    fold: tuple[float, float] | None = None   # a `fedcredit cv` training: the held-out fold's row fractions

    @property
    def train_rows(self) -> tuple[float, float]:
        """The row fractions of the training rows (see `fedcredit.credit.loading.split_train_test`)."""
        return (self.test_fraction, 1.0)

    @property
    def train_parts(self) -> tuple[tuple[float, float], ...]:
        """The intervals of the rows this run trains on: `train_rows`, or in a `fedcredit cv` training the
        parts of it outside the held-out fold (one or two); each training release is charged to each."""
        if self.fold is None:
            return (self.train_rows,)
        (lo, hi), (a, b) = self.train_rows, self.fold
        return tuple(part for part in ((lo, a), (b, hi)) if part[0] < part[1])

    @property
    def test_rows(self) -> tuple[float, float]:
        """The rows evaluated: the test rows, or in a `fedcredit cv` training the held-out fold."""
        return self.fold or (0.0, self.test_fraction)

    @property
    def label_values(self) -> tuple[str, ...]:
        return self.train.label_values

    def validation_split(self, share: float) -> tuple[PartnerTable, PartnerTable]:
        """(rows to fit, validation rows) of the training rows: the validation rows are those whose
        content-keyed fraction lies in [test_fraction, test_fraction + share × (1 − test_fraction)), so
        they are the same in every run on the same data and never test rows."""
        train = self.train
        fractions = train.fractions if train.fractions is not None else np.linspace(
            self.test_fraction, 1, len(train), endpoint=False)
        if self.fold is not None:   # a cv training: the share of the rows outside the held-out fold
            held = training_position(fractions, self.test_fraction, self.fold) < share
        else:
            held = fractions < self.test_fraction + share * (1 - self.test_fraction)
        return train.take(np.flatnonzero(~held)), train.take(np.flatnonzero(held))


_CACHE: dict[tuple, PartnerData] = {}  # a simulation actor serves many messages; keyed by file state


def file_fingerprint(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def privacy_folder(partner: Partner, task: TaskConfig) -> Path:
    """Where the partner keeps its ledger and audit trail (beside its data by default)."""
    where = partner.privacy.ledger_dir
    if where == "run":
        return Path(task.run_dir) / "ledgers"
    return Path(where) if where else Path(partner.data).parent


def audit_log(partner: Partner, task: TaskConfig) -> AuditLog:
    return AuditLog(privacy_folder(partner, task) / f"{partner.name}.audit.jsonl")


def _split(partner: Partner, table: PartnerTable, federation: FederationSettings,
           fingerprint: str) -> PartnerData:
    train, test = split_train_test(table, test_fraction=federation.test_fraction)
    return PartnerData(partner, train, test, fingerprint, federation.test_fraction)


def open_partner_data(partner: Partner, task: TaskConfig, *, purpose: str, round: int | None = None) -> PartnerData:
    """Load, check and split a partner's table for `purpose`.

    A vault is decrypted in memory only, for a purpose the partner allows, and every access
    leaves an audit event (the policy check and the event also when this process already holds
    the table). Tables are kept in this process's memory while their file is unchanged. In a
    `fedcredit cv` training ([federation] cv_folds) the training rows are split once more: the
    held-out fold becomes the rows evaluated (`hold_out_fold`).
    """
    return hold_out_fold(_open_partner_data(partner, task, purpose=purpose, round=round), task.federation)


def hold_out_fold(data: PartnerData, federation: FederationSettings) -> PartnerData:
    """`data` with fold `cv_fold` of `cv_folds` of its training rows as its evaluated rows and the
    other folds as its training rows (`fedcredit.credit.folds`); unchanged without folds."""
    if not federation.cv_folds:
        return data
    train = data.train
    fractions = train.fractions if train.fractions is not None else np.linspace(
        data.test_fraction, 1, len(train), endpoint=False)
    in_fold = assign_folds(fractions, data.test_fraction, federation.cv_folds) == federation.cv_fold
    return PartnerData(data.partner, train.take(np.flatnonzero(~in_fold)), train.take(np.flatnonzero(in_fold)),
                       data.fingerprint, data.test_fraction,
                       fold_interval(data.test_fraction, federation.cv_folds, federation.cv_fold))


def _open_partner_data(partner: Partner, task: TaskConfig, *, purpose: str, round: int | None = None) -> PartnerData:
    spec, federation = task.spec, task.federation
    source = f"partner '{partner.name}'"
    if partner.data is None:
        raise InputError("has no data path: give `data` in its [[partners]] entry or partner config", source=source)
    path = Path(partner.data)
    stat = path.stat() if path.exists() else None
    key = (partner, json.dumps(spec.to_dict(), sort_keys=True), federation.test_fraction,
           federation.min_rows, federation.min_bad, stat and (stat.st_mtime_ns, stat.st_size))
    vault = stat is not None and path.is_file() and is_vault(path)
    if vault:
        access = vault_access(partner, task, round=round)
        if key in _CACHE:
            reuse_vault(path, purpose=purpose, **access)
            return _CACHE[key]
        plaintext = open_vault(path, load_key(partner.key) if partner.key else None, purpose=purpose, **access)
        frame = read_table_bytes(plaintext, source=f"{source} ({path})", sep=partner.sep, decimal=partner.decimal)
        table = prepare_table(frame, spec, source=f"{source} ({path})", min_rows=federation.min_rows,
                              min_bad=federation.min_bad)
        data = _split(partner, table, federation, hashlib.sha256(plaintext).hexdigest())
    elif key in _CACHE:
        return _CACHE[key]
    else:
        table = load_table(path, spec, source=source, min_rows=federation.min_rows, min_bad=federation.min_bad,
                           sep=partner.sep, decimal=partner.decimal)
        data = _split(partner, table, federation, file_fingerprint(path))
    if len(_CACHE) >= 8:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = data
    return data


def vault_access(partner: Partner, task: TaskConfig, *, round: int | None) -> dict[str, Any]:
    """The access arguments of `open_vault`/`reuse_vault` for this partner: its allowed purposes, its audit
    trail, the run and round the access is for."""
    return dict(policy=AccessPolicy(frozenset(partner.purposes)), audit=audit_log(partner, task),
                partner=partner.name, run=task.run, round=round)


def privacy_gate(data: Any, task: TaskConfig, *, readonly: bool = False, rows: int | None = None
                 ) -> PrivacyGate | None:
    """The partner's gate when its policy asks for record-level DP, else None. Opening it
    reconciles the ledger with the dataset's anchor and the partner's audit trail
    (`readonly`: for planning; nothing is written). `data`: a `PartnerData`, or a vertical party's data
    (anything with `partner` and `fingerprint`) with its training `rows` given."""
    policy = data.partner.privacy
    if not policy.enabled:
        return None
    folder = privacy_folder(data.partner, task)
    ledger = PrivacyLedger.open(ledger_path(folder, data.partner.name), data.fingerprint, data.partner.name,
                                anchor=DatasetAnchor(data.fingerprint), audit=audit_log(data.partner, task).path,
                                readonly=readonly)
    return PrivacyGate(policy, ledger, rows=max(len(data.train) if rows is None else rows, 1),
                       source=f"partner '{data.partner.name}' privacy", run=task.run)


def run_shape(data: PartnerData, task: TaskConfig, *, rows: int | None = None) -> RunShape:
    """The releases a run plans, with the public row count (release 1's, once drawn)."""
    fed = task.federation
    rows = rows if rows is not None else int(task.weights.get(data.partner.name, len(data.train)))
    if task.trees is not None:   # model "gbdt": trees × levels of gradient histograms
        from fedcredit.privacy.histograms import tree_run_shape

        return tree_run_shape(task.trees, rows=rows, evaluations=task.evaluations, train_rows=data.train_rows,
                              test_rows=data.test_rows, train_parts=data.train_parts if data.fold else ())
    return RunShape(fed.rounds, fed.batch_size, fed.local_epochs, max(rows, 1), task.evaluations, data.train_rows,
                    data.test_rows, train_parts=data.train_parts if data.fold else ())


def charge(gate: PrivacyGate, data: PartnerData, task: TaskConfig, release: Release, *, mechanism: str,
           round: int, rows: tuple[float, float], epsilon: float | None) -> None:
    """Record spend in the anchor, the ledger and the audit trail — before anything leaves the partner."""
    entry = gate.charge(release, mechanism=mechanism, round=round, rows=rows)
    audit_log(data.partner, task).append({
        "event": "privacy-release", "partner": data.partner.name, "purpose": mechanism, "dataset": data.fingerprint,
        "run": task.run, "round": round, "id": entry.id, "rows": list(rows), "epsilon": epsilon,
        "noise_multiplier": release.noise_multiplier, "sample_rate": release.sample_rate, "steps": release.steps,
        "delta": gate.policy.delta})


def privacy_statement(gate: PrivacyGate | None, data: PartnerData, *, spent: PrivacySpent | None = None,
                      release: Release | None = None, status: str = "ok", history: bool = False) -> dict[str, Any]:
    """The partner's privacy statement: lifetime epsilon, budget, this run's spend, what was released.

    `history` adds every release of the ledger (parameters only), so a report can recompute
    the lifetime epsilon with an independent accountant."""
    policy = data.partner.privacy
    if gate is None:  # no record-level guarantee: no epsilon to state
        return {"mode": policy.mode, "epsilon": None, "delta": None, "budget": None, "status": "off"}
    spent = spent or gate.statement()
    out = {"mode": policy.mode, "epsilon": spent.epsilon, "epsilon_prv": spent.epsilon_prv,
           "epsilon_rdp": spent.epsilon_rdp, "accountant": spent.accountant, "note": spent.note,
           "delta": policy.delta, "budget": policy.epsilon, "remaining": max(policy.epsilon - spent.epsilon, 0.0),
           "run_epsilon": gate.run_spent().epsilon, "run_cap": policy.run_cap,
           "max_grad_norm": policy.max_grad_norm, "status": status, "notes": list(gate.ledger.notes)}
    if release is not None:
        out.update(noise_multiplier=release.noise_multiplier, sample_rate=release.sample_rate, steps=release.steps)
    if history:
        out["releases"] = [{"id": e.id, "run": e.run, "round": e.round, "mechanism": e.mechanism,
                            "rows": list(e.rows), "noise_multiplier": e.release.noise_multiplier,
                            "sample_rate": e.release.sample_rate, "steps": e.release.steps, "delta": e.delta,
                            **({"recovered": e.recovered} if e.recovered else {})} for e in gate.ledger.entries()]
    return out


def report(data: PartnerData, task: TaskConfig, gate: PrivacyGate | None, **fields: Any) -> PartnerReport:
    """A reply: exact sizes without DP; under DP only the public (noised) training count."""
    name = data.partner.name
    if gate is None:
        rows = {"rows_train": task.weights.get(name, len(data.train)), "rows_test": len(data.test)}
    else:
        rows = {"rows_train": task.weights.get(name), "rows_test": None}
    return PartnerReport(name, data.partner.kind, **{**rows, **fields})


def column_statistics(data: PartnerData, task: TaskConfig, phase: str) -> PartnerReport:
    """Round 0: release 1 (`RANGE`) or 2 (`BINS`) of the statistics of the training rows
    (noised and charged under a DP policy; a DP partner first checks the whole run fits)."""
    from fedcredit.privacy.statistics import noisy_bins, noisy_range

    gate = privacy_gate(data, task)
    train = data.train
    if phase == RANGE:
        stats = RangeStats.from_frame(train.features, train.label, task.spec, label_values=data.label_values,
                                      per_decade=PRIVATE_PER_DECADE if gate else EXACT_PER_DECADE,
                                      extremes=gate is None)
    elif phase == BINS and task.plan is not None and task.federation.model == "scorecard":
        from fedcredit.credit.binning import labelled_bin_stats  # split by label: same sensitivity (noisy_bins)

        stats = labelled_bin_stats(task.plan, train.features, train.label)
    elif phase == BINS and task.plan is not None:
        stats = task.plan.bin_stats(train.features)
    else:
        raise InputError(f"unknown statistics phase {phase!r} (or no column plan)", source="coordinator message")
    if gate is None:
        return report(data, task, None, stats=stats, privacy=privacy_statement(None, data),
                      **({"rows_train": int(stats.rows)} if phase == RANGE else {}))
    warnings: tuple[str, ...] = ()
    planned: dict[str, Any] = {}
    if phase == RANGE:
        gate.check_policy(run_shape(data, task))
        # drawn first (released only if admitted), so the run is planned on the public row count it will use
        private, release, sd = noisy_range(stats, data.partner.privacy.stats_noise_multiplier,
                                           public_levels=frozenset(task.spec.levels))
        plan = gate.plan_run(run_shape(data, task, rows=int(private.rows)))
        if not plan.train:
            return report(data, task, gate, declined=plan.reason,
                          privacy=privacy_statement(gate, data, status="declined", history=True))
        warnings = tuple(plan.warnings)
        planned = {"statistics": plan.stats_noise, "dp-sgd": plan.train_noise, "evaluation": plan.eval_noise,
                   "sample_rate": plan.sample_rate, "epsilon_run": plan.epsilon_run}
    else:
        private, release, sd = noisy_bins(stats, data.partner.privacy.stats_noise_multiplier)
    after, reason = gate.admit([Charge(release, rows) for rows in data.train_parts])
    if after is None:
        return report(data, task, gate, declined=reason, privacy=privacy_statement(gate, data, status="declined", history=True))
    for rows in data.train_parts:
        charge(gate, data, task, release, mechanism="gaussian-statistics", round=0, rows=rows, epsilon=after.epsilon)
    rows = {"rows_train": int(private.rows)} if phase == RANGE else {}
    statement = privacy_statement(gate, data, spent=after, release=release)
    if planned:
        statement["planned"] = planned   # the run's noise, chosen once (the partner keeps it for the run)
    return report(data, task, gate, stats=private, stats_noise_sd=sd, warnings=warnings, privacy=statement, **rows)


def evaluate_model(data: PartnerData, task: TaskConfig, state: Mapping[str, torch.Tensor], *,
                   gate: PrivacyGate | None = None, round: int = 0, noise: float | None = None
                   ) -> tuple[ScoreHistogram | None, str]:
    """Score the partner's test rows with a model; only a histogram leaves — under DP a coarse,
    noised one, charged to the held-out rows. (histogram, "") or (None, why not)."""
    model = _model(task, state)
    exact = ScoreHistogram.from_scores(data.test.label, predict_proba(model, task.transform.transform(data.test.features)))
    if gate is None:
        return exact, ""
    from fedcredit.privacy.evaluation import noisy_evaluation

    noise, reason = _held_out_noise(gate, data, task, noise)
    if noise is None:
        return None, reason
    private, release, _ = noisy_evaluation(exact, noise)
    reason = _charge_held_out(gate, data, task, release, mechanism="gaussian-evaluation", round=round)
    return (None, reason) if reason else (private, "")


def _charge_held_out(gate: PrivacyGate, data: PartnerData, task: TaskConfig, release: Release, *, mechanism: str,
                     round: int) -> str:
    """Admit and charge a release on the held-out rows before it leaves: "" or why it may not leave."""
    after, reason = gate.admit(Charge(release, data.test_rows))
    if after is None:
        return reason
    charge(gate, data, task, release, mechanism=mechanism, round=round, rows=data.test_rows, epsilon=after.epsilon)
    return ""


def _held_out_noise(gate: PrivacyGate, data: PartnerData, task: TaskConfig, noise: float | None
                    ) -> tuple[float | None, str]:
    """The noise of a release on the held-out rows: the one planned at round 0, else (e.g. the partner joined
    late) what lets the run's remaining held-out releases fit; (None, why not) when none can."""
    if noise is not None:
        return noise, ""
    spent = [e for e in gate.ledger.entries() if e.run == task.run and e.mechanism in HELD_OUT_MECHANISMS]
    return gate.eval_noise(run_shape(data, task), remaining=max(task.evaluations - len(spent), 1))


def fairness_scores(data: PartnerData, task: TaskConfig, state: Mapping[str, torch.Tensor], *,
                    gate: PrivacyGate | None = None, round: int = 0, noise: float | None = None
                    ) -> tuple[GroupScores | None, str]:
    """Score the partner's held-out rows with the model (in float64, as the model artefact scores) and
    count them by protected group, label and score bin (`fedcredit.credit.fairness`); under DP every count
    is noised and the release charged to the held-out rows. (release, "") or (None, why not)."""
    if task.fairness is None or data.test.protected is None:
        return None, "the coordinator asked for no fairness release, or the dataset declares no protected column"
    model = _model(task, state).double()
    p_bad = predict_proba(model, task.transform.transform(data.test.features))
    exact = task.fairness.release(task.spec, data.test.label, p_bad, data.test.protected)
    if gate is None:
        return exact, ""
    from fedcredit.privacy.evaluation import noisy_group_scores

    private_names = [g.column for g in task.fairness.settings.column_groups(task.spec) if g.names is None]
    if private_names:   # the coordinator's scenario did not know this partner's policy
        return None, (f"declined: protected column(s) {private_names} have no public groups (declared levels or "
                      "[fairness] groups), and under record-level DP a group's name must not come from the rows")
    noise, reason = _held_out_noise(gate, data, task, noise)
    if noise is None:
        return None, reason
    private, release, _ = noisy_group_scores(exact, noise)
    reason = _charge_held_out(gate, data, task, release, mechanism="gaussian-fairness", round=round)
    return (None, reason) if reason else (private, "")


def fairness_report(data: PartnerData, task: TaskConfig, state: Mapping[str, torch.Tensor], *, round: int,
                    planned: Mapping[str, float | None] | None = None) -> PartnerReport:
    """The reply to an evaluate message that asks for the fairness release: the model's held-out score
    histograms by protected group (or why none) and the privacy statement."""
    gate = privacy_gate(data, task)
    scores, reason = fairness_scores(data, task, state, gate=gate, round=round,
                                     noise=(planned or {}).get("evaluation"))
    return report(data, task, gate, fairness=scores, declined=reason,
                  privacy=privacy_statement(gate, data, status="declined" if reason else "ok", history=True))


def validation_loss(data: PartnerData, task: TaskConfig, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The report fields of the received model's mean log loss on the partner's validation rows
    (no record-level DP only: the caller never asks a DP partner; empty when there is no such row)."""
    from sklearn.metrics import log_loss

    _, held = data.validation_split(task.federation.validation_fraction)
    if not len(held):
        return {}
    p = predict_proba(_model(task, state), task.transform.transform(held.features))
    if not np.isfinite(p).all():
        return {}
    return {"validation_loss": float(log_loss(held.label, p, labels=[0, 1])), "rows_validation": len(held)}


def _public_test_rows(histogram: ScoreHistogram | None, gate: PrivacyGate | None) -> dict[str, int]:
    """Under DP the held-out count a reply states is the noised histogram's total (post-processing)."""
    if histogram is None or gate is None:
        return {}
    return {"rows_test": max(int(round(histogram.total)), 0)}


def evaluation_report(data: PartnerData, task: TaskConfig, state: Mapping[str, torch.Tensor], *,
                      round: int, planned: Mapping[str, float | None] | None = None,
                      validate: bool = False) -> PartnerReport:
    """The reply to an evaluate message: the histogram (or why none) and the privacy statement;
    `validate` (ignored under record-level DP): also the model's loss on the validation rows."""
    gate = privacy_gate(data, task)
    histogram, reason = evaluate_model(data, task, state, gate=gate, round=round,
                                       noise=(planned or {}).get("evaluation"))
    validation = validation_loss(data, task, state) if validate and gate is None else {}
    return report(data, task, gate, evaluation=histogram, declined=reason, **_public_test_rows(histogram, gate),
                  privacy=privacy_statement(gate, data, status="declined" if reason else "ok", history=True),
                  **validation)


def train_round(data: PartnerData, task: TaskConfig, state: Mapping[str, torch.Tensor], *, server_round: int,
                proximal_mu: float = 0.0, planned: Mapping[str, float | None] | None = None, evaluate: bool = True,
                validate: bool = False) -> tuple[dict[str, torch.Tensor] | None, PartnerReport]:
    """Evaluate the received global model (if asked), then train it locally — through the privacy gate.

    `planned`: the noise the partner chose for this run at round 0 ("dp-sgd", "evaluation").
    `validate` (the coordinator's stopping rule; ignored under record-level DP): hold the validation
    rows out of training and report the received model's loss on them. Without DP a small partner
    trains more epochs, at least `min_local_steps` steps (`FederationSettings.local_epochs_for`).
    Returns (new state, report); the state is None when the partner declines the round.
    """
    planned = planned or {}
    from fedcredit.privacy.dpsgd import make_private

    fed = task.federation
    gate = privacy_gate(data, task)
    evaluation, _ = (evaluate_model(data, task, state, gate=gate, round=server_round, noise=planned.get("evaluation"))
                     if evaluate else (None, ""))
    evaluated = _public_test_rows(evaluation, gate)
    fit, validation = data.train, {}
    if validate and gate is None:
        fit = data.validation_split(fed.validation_fraction)[0]
        validation = validation_loss(data, task, state)
    model = _model(task, state)
    x_train = task.transform.transform(fit.features)
    y_train = fit.label.astype(np.float32)
    seed = partner_seed(fed.seed + server_round, data.partner.name)
    optimizer = make_optimizer(model, fed.optimizer, lr=fed.learning_rate, weight_decay=fed.weight_decay)
    if gate is None:
        loader = make_loader(x_train, y_train, batch_size=fed.batch_size, seed=seed)
        result = train_epochs(model, loader, optimizer, epochs=fed.local_epochs_for(len(y_train)),
                              proximal_mu=proximal_mu, anchor=state)
        privacy, loss = privacy_statement(None, data), result.loss
    else:
        shape = run_shape(data, task)
        # the noise planned at round 0 holds while the sample rate from the public row count is the planned one
        same_rate = planned.get("sample_rate") == shape.sample_rate
        plan = gate.round_plan(shape, server_round=server_round, noise=planned.get("dp-sgd") if same_rate else None)
        if not plan.train:
            return None, report(data, task, gate, evaluation=evaluation, declined=plan.reason, **evaluated,
                                privacy=privacy_statement(gate, data, status="declined", history=True))
        dataset = Rows(x_train, y_train)
        private = make_private(model, optimizer, dataset, noise_multiplier=plan.noise_multiplier,
                               max_grad_norm=data.partner.privacy.max_grad_norm, public_rows=shape.rows,
                               batch_size=fed.batch_size, seed=seed)
        # FedProx's proximal term does not pass through per-sample clipping, so it is not used here
        result = train_epochs(private.model, private.loader, private.optimizer, epochs=fed.local_epochs)
        release = Release(plan.noise_multiplier, private.sample_rate, result.steps)
        spent = plan.after if result.steps == plan.steps else None
        for rows in data.train_parts:   # before the update leaves
            charge(gate, data, task, release, mechanism="dp-sgd", round=server_round, rows=rows,
                   epsilon=spent.epsilon if spent else None)
        privacy, loss = privacy_statement(gate, data, spent=spent, release=release), None   # the loss is withheld
    new_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return new_state, report(data, task, gate, evaluation=evaluation, train_loss=loss, steps=result.steps,
                             privacy=privacy, **evaluated, **validation)


def _model(task: TaskConfig, state: Mapping[str, torch.Tensor] | TreeEnsemble) -> torch.nn.Module:
    if isinstance(state, TreeEnsemble):   # model "gbdt": the ensemble itself travels (fedcredit.credit.trees)
        return TreeModule(state)
    fed = task.federation
    model = build_model(fed.model, task.transform.n_features, hidden=fed.hidden, seed=fed.seed)
    model.load_state_dict(dict(state))
    return model
