"""The work a partner does on its own rows: statistics, one training round, evaluation.

No Flower here: `clients.app` translates messages into these calls, so the same code serves
simulation and deployment. Privacy is a gate on this one path: with a "sample" policy the
statistics are noised and every DP-SGD round is planned against, and charged to, the
partner's lifetime ledger before anything leaves.
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

from credit.errors import InputError
from credit.features import ColumnStats
from credit.loading import (
    PartnerTable,
    load_table,
    partner_seed,
    prepare_table,
    read_table_bytes,
    split_train_test,
)
from credit.metrics import ScoreHistogram
from credit.model import (
    build_model,
    make_loader,
    make_optimizer,
    predict_proba,
    train_epochs,
)
from credit.protocol import PartnerReport, TaskConfig
from credit.scenario import FederationSettings, Partner
from privacy.access import AccessPolicy, open_vault
from privacy.accountant import PrivacySpent, Release
from privacy.audit import AuditLog
from privacy.gate import PrivacyGate
from privacy.keys import load_key
from privacy.ledger import PrivacyLedger, ledger_path
from privacy.vault import is_vault


@dataclass(frozen=True)
class PartnerData:
    """A partner's checked rows, split locally into train and test, and the data's fingerprint."""

    partner: Partner
    train: PartnerTable
    test: PartnerTable
    fingerprint: str


_CACHE: dict[tuple, PartnerData] = {}  # plain files only; a simulation actor serves many messages


def file_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    train, test = split_train_test(table, test_fraction=federation.test_fraction,
                                   seed=partner_seed(federation.seed, partner.name))
    return PartnerData(partner, train, test, fingerprint)


def open_partner_data(partner: Partner, task: TaskConfig, *, purpose: str, round: int | None = None) -> PartnerData:
    """Load, check and split a partner's table for `purpose`.

    A vault is decrypted in memory only, for a purpose the partner allows, leaving an audit
    event each time (never cached); a plain file is cached while it is unchanged.
    """
    spec, federation = task.spec, task.federation
    source = f"partner '{partner.name}'"
    if partner.data is None:
        raise InputError("has no data path: give `data` in its [[partners]] entry or partner config", source=source)
    path = Path(partner.data)
    if path.is_file() and is_vault(path):
        plaintext = open_vault(path, load_key(partner.key) if partner.key else None, purpose=purpose,
                               policy=AccessPolicy(frozenset(partner.purposes)), audit=audit_log(partner, task),
                               partner=partner.name, run=task.run, round=round)
        frame = read_table_bytes(plaintext, source=f"{source} ({path})", sep=partner.sep, decimal=partner.decimal)
        table = prepare_table(frame, spec, source=f"{source} ({path})", min_rows=federation.min_rows,
                              min_bad=federation.min_bad)
        return _split(partner, table, federation, hashlib.sha256(plaintext).hexdigest())
    stat = path.stat() if path.exists() else None
    key = (partner, json.dumps(spec.to_dict(), sort_keys=True), federation.test_fraction, federation.seed,
           federation.min_rows, federation.min_bad, stat and (stat.st_mtime_ns, stat.st_size))
    if key not in _CACHE:
        table = load_table(path, spec, source=source, min_rows=federation.min_rows, min_bad=federation.min_bad,
                           sep=partner.sep, decimal=partner.decimal)
        if len(_CACHE) >= 8:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _split(partner, table, federation, file_fingerprint(path))
    return _CACHE[key]


def privacy_gate(data: PartnerData, task: TaskConfig, *, check_policy: bool = False) -> PrivacyGate | None:
    """The partner's gate when its policy asks for record-level DP, else None. `check_policy`
    also refuses a fixed noise that cannot fit one round (done once: before the run, round 0)."""
    policy = data.partner.privacy
    if not policy.enabled:
        return None
    ledger = PrivacyLedger.open(ledger_path(privacy_folder(data.partner, task), data.partner.name),
                                data.fingerprint, data.partner.name)
    gate = PrivacyGate(policy, ledger, rows=len(data.train), source=f"partner '{data.partner.name}' privacy")
    if check_policy:
        gate.check_policy(task.federation.batch_size, task.federation.local_epochs)
    return gate


def charge(gate: PrivacyGate, data: PartnerData, task: TaskConfig, release: Release, *, mechanism: str,
           round: int, epsilon: float | None) -> None:
    """Record spend in the ledger and the audit trail — before anything leaves the partner."""
    gate.charge(release, mechanism=mechanism, run=task.run, round=round)
    audit_log(data.partner, task).append({
        "event": "privacy-release", "partner": data.partner.name, "purpose": mechanism, "dataset": data.fingerprint,
        "run": task.run, "round": round, "epsilon": epsilon, "noise_multiplier": release.noise_multiplier,
        "sample_rate": release.sample_rate, "steps": release.steps})


def privacy_statement(gate: PrivacyGate | None, data: PartnerData, *, spent: PrivacySpent | None = None,
               release: Release | None = None, status: str = "ok") -> dict[str, Any]:
    """The partner's privacy statement: lifetime epsilon, budget, and what was released."""
    policy = data.partner.privacy
    if gate is None:  # no record-level guarantee: no epsilon to state
        return {"mode": policy.mode, "epsilon": None, "delta": None, "budget": None, "status": "off"}
    spent = spent or gate.statement()
    out = {"mode": policy.mode, "epsilon": spent.epsilon, "epsilon_prv": spent.epsilon_prv,
           "epsilon_rdp": spent.epsilon_rdp, "accountant": spent.accountant, "note": spent.note,
           "delta": policy.delta, "budget": policy.epsilon, "remaining": max(policy.epsilon - spent.epsilon, 0.0),
           "max_grad_norm": policy.max_grad_norm, "status": status}
    if release is not None:
        out.update(noise_multiplier=release.noise_multiplier, sample_rate=release.sample_rate, steps=release.steps)
    return out


def report(data: PartnerData, task: TaskConfig, **fields: Any) -> PartnerReport:
    rows = task.weights.get(data.partner.name, len(data.train))
    return PartnerReport(data.partner.name, data.partner.kind, rows, len(data.test), **fields)


def column_statistics(data: PartnerData, task: TaskConfig) -> PartnerReport:
    """Round 0: additive statistics of the training rows for the shared transform
    (noised and charged to the ledger under a DP policy)."""
    from privacy.statistics import noisy_statistics

    stats = ColumnStats.from_frame(data.train.features, task.spec)
    gate = privacy_gate(data, task, check_policy=True)
    if gate is None:
        return report(data, task, stats=stats, privacy=privacy_statement(None, data))
    private, release, sd = noisy_statistics(stats, data.partner.privacy.stats_noise_multiplier,
                                            public_levels=frozenset(task.spec.levels))
    after, reason = gate.admit(release)
    if after is None:
        return report(data, task, declined=reason, privacy=privacy_statement(gate, data, status="declined"))
    charge(gate, data, task, release, mechanism="gaussian-statistics", round=0, epsilon=after.epsilon)
    return PartnerReport(data.partner.name, data.partner.kind, private.rows, len(data.test), stats=private,
                         stats_noise_sd=sd, privacy=privacy_statement(gate, data, spent=after, release=release))


def evaluate_model(data: PartnerData, task: TaskConfig, state: Mapping[str, torch.Tensor]) -> ScoreHistogram:
    """Score the partner's test rows with a model; only the histogram leaves."""
    model = _model(task, state)
    return ScoreHistogram.from_scores(data.test.label, predict_proba(model, task.transform.transform(data.test.features)))


def train_round(data: PartnerData, task: TaskConfig, state: Mapping[str, torch.Tensor], *, server_round: int,
                proximal_mu: float = 0.0, calibrated: float | None = None
                ) -> tuple[dict[str, torch.Tensor] | None, PartnerReport]:
    """Evaluate the received global model, then train it locally — through the privacy gate.

    Returns (new state, report); the state is None when the partner declines the round.
    """
    from privacy.dpsgd import make_private

    fed = task.federation
    evaluation = evaluate_model(data, task, state)
    gate = privacy_gate(data, task)
    model = _model(task, state)
    x_train = task.transform.transform(data.train.features)
    loader = make_loader(x_train, data.train.label.astype(np.float32), batch_size=fed.batch_size,
                         seed=partner_seed(fed.seed + server_round, data.partner.name))
    optimizer = make_optimizer(model, fed.optimizer, lr=fed.learning_rate, weight_decay=fed.weight_decay)
    if gate is None:
        result = train_epochs(model, loader, optimizer, epochs=fed.local_epochs, proximal_mu=proximal_mu, anchor=state)
        privacy = privacy_statement(None, data)
    else:
        plan = gate.plan(batch_size=fed.batch_size, local_epochs=fed.local_epochs,
                         rounds_left=fed.rounds - server_round + 1, calibrated=calibrated)
        if not plan.train:
            return None, report(data, task, evaluation=evaluation, declined=plan.reason,
                                privacy=privacy_statement(gate, data, status="declined"))
        private = make_private(model, optimizer, loader, noise_multiplier=plan.noise_multiplier,
                               max_grad_norm=data.partner.privacy.max_grad_norm)
        # FedProx's proximal term does not pass through per-sample clipping, so it is not used here
        result = train_epochs(private.model, private.loader, private.optimizer, epochs=fed.local_epochs)
        release = Release(plan.noise_multiplier, private.sample_rate, result.steps)
        spent = plan.after if result.steps == plan.steps else None
        charge(gate, data, task, release, mechanism="dp-sgd", round=server_round,   # before the update leaves
               epsilon=spent.epsilon if spent else None)
        privacy = privacy_statement(gate, data, spent=spent, release=release)
    new_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return new_state, report(data, task, evaluation=evaluation, train_loss=result.loss, steps=result.steps,
                             privacy=privacy)


def _model(task: TaskConfig, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    fed = task.federation
    model = build_model(fed.model, task.transform.n_features, hidden=fed.hidden, seed=fed.seed)
    model.load_state_dict(dict(state))
    return model
