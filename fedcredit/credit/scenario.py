"""Scenario file (TOML) → validated dataclasses. The only place that reads a scenario."""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.dataclasses import dataclass as schema_dataclass

from fedcredit.credit.errors import InputError
from fedcredit.credit.fairness import FairnessSettings
from fedcredit.credit.reading import DECIMALS, SEPARATORS
from fedcredit.credit.schema import DatasetSpec, DatasetTable, is_code
from fedcredit.credit.scorecard import ScorecardSettings
from fedcredit.credit.strict_json import first_nonfinite
from fedcredit.credit.trees import TREE_MODELS, TreeSettings
from fedcredit.credit.validation import STRICT, Flag, Number, Rule, Schema, Text, Whole, rule, validated
from fedcredit.credit.vertical_config import (
    COLUMN_KEYS,
    check_vertical,
    party_spec,
    refuse_party_keys,
    spec_from_dict,
)

PARTNER_KINDS = ("bank", "insurer", "platform", "bureau")
PARTITIONINGS = ("horizontal", "vertical")   # same columns, other customers | same customers, other columns
MODELS = ("logistic", "mlp", "scorecard", "gbdt", "random_forest")   # trees: fedcredit.credit.trees ([gbdt])
STRATEGIES = ("fedavg", "fedprox", "fedadam")
OPTIMIZERS = ("sgd", "adam")
PRIVACY_MODES = ("sample", "client", "off")
STOP_RULES = ("converged", "rounds")
RUN_SHARE = 0.25   # default per-run cap: this share of the lifetime budget
# What a partner's data may be opened for. A simulation also checks tables before the run
# ("check") and trains the yardsticks ("yardstick"); a deployed partner allows only the first three.
DEPLOYMENT_PURPOSES = ("stats", "train", "evaluate")
SIMULATION_PURPOSES = (*DEPLOYMENT_PURPOSES, "check", "yardstick")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
Positive = Annotated[Number, Field(gt=0)]
_POSITIVE = "must be > 0"
_CALIBRATED = "must be > 0, or left out to calibrate it to the budget"


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join('"\\t"' if v == "\t" else f'"{v}"' for v in values)


@schema_dataclass(frozen=True, config=STRICT)
class PrivacyPolicy:
    """A partner's own privacy policy; the partner's policy wins over any server proposal.

    mode "sample": record-level DP (each customer row is the unit) with a lifetime budget
    of `epsilon` at `delta` for the dataset, charged to the partner's ledger; every run may
    spend at most `run_epsilon` (default: a quarter of `epsilon`). "client": Flower's
    partner-level DP (fixed clipping of the update, noise added by the server); "off": no
    formal guarantee. `noise_multiplier` (DP-SGD) and `eval_noise_multiplier` (the noisy
    evaluation histograms) None are calibrated so the planned run fits both the per-run cap
    and the remaining lifetime budget. `stats_noise_multiplier` is the noise of each of the
    two statistics releases of round 0. `ledger_dir` None keeps the ledger beside the
    partner's data; "run" keeps it in the run directory — the dataset's machine anchor still
    counts every release, so this never restarts the budget.
    """

    mode: Literal[PRIVACY_MODES] = rule(f"choose one of {list(PRIVACY_MODES)}", "off")
    epsilon: Positive = rule("the lifetime budget must be a number > 0", 1.0)
    delta: Annotated[Number, Field(gt=0, lt=1e-2)] = rule("must be > 0 and well below 1/rows", 1e-6)
    max_grad_norm: Positive = rule(_POSITIVE, 1.0)
    noise_multiplier: Positive | None = rule(_CALIBRATED, None)
    stats_noise_multiplier: Positive = rule(_POSITIVE, 20.0)
    run_epsilon: Positive | None = rule("the per-run cap must be > 0 and at most the lifetime budget epsilon", None)
    eval_noise_multiplier: Positive | None = rule(_CALIBRATED, None)
    ledger_dir: Annotated[str, Field(strict=True)] | None = rule("must be a path", None)
    client_noise_multiplier: Positive = rule(_POSITIVE, 1.0)
    client_clipping_norm: Positive = rule(_POSITIVE, 1.0)

    @model_validator(mode="after")
    def _run_cap_within_budget(self) -> PrivacyPolicy:
        if self.run_epsilon is not None and self.run_epsilon > self.epsilon:
            raise Rule("the per-run cap must be > 0 and at most the lifetime budget epsilon "
                       f"(got {self.run_epsilon!r})", "run_epsilon")
        return self

    @property
    def enabled(self) -> bool:
        return self.mode == "sample"

    @property
    def run_cap(self) -> float:
        """The most one run may spend (epsilon at `delta`)."""
        return self.run_epsilon if self.run_epsilon is not None else self.epsilon * RUN_SHARE

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, base: PrivacyPolicy | None = None,
                  base_dir: Path | None = None, source: str) -> PrivacyPolicy:
        """A [privacy] table; `base` is the policy it overrides key by key (a partner's own table
        over the scenario's). A table without `mode` means record-level DP ("sample")."""
        values = dict(raw) if isinstance(raw, Mapping) else raw
        if isinstance(values, dict):
            if base is None and "mode" not in values:
                values["mode"] = "sample"
            ledger = values.get("ledger_dir")
            if isinstance(ledger, str) and ledger not in ("", "run") and base_dir is not None:
                values["ledger_dir"] = str((base_dir / ledger).resolve())
        build = (lambda **kw: replace(base, **kw)) if base else cls
        return validated(build, values, locate=source, schema=cls)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Partner:
    """One member of the consortium, where its table lives (absolute path), its policy."""

    name: str
    kind: str
    data: Path | None          # None on a coordinator's scenario: the data stays with the partner
    privacy: PrivacyPolicy = field(default_factory=PrivacyPolicy)
    key: str | None = None      # vault key: a key file path, "env:NAME" or "passphrase-env:NAME"
    purposes: tuple[str, ...] = SIMULATION_PURPOSES
    sep: str | None = None      # CSV column separator; None = sniffed from the file
    decimal: str | None = None  # CSV decimal mark; None = "." (or "," sniffed in a ';' file)
    # vertical scenarios only: the column its customers are aligned on, and its own column contract
    # (its label and `bad` for the label holder; label "" for a passive party)
    id: str | None = None
    spec: DatasetSpec | None = None

    @property
    def holds_label(self) -> bool:
        """True for a vertical federation's label holder."""
        return self.spec is not None and bool(self.spec.label)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "kind": self.kind, "data": str(self.data) if self.data else None,
               "privacy": self.privacy.to_dict(),
               "key": self.key, "purposes": list(self.purposes), "sep": self.sep, "decimal": self.decimal}
        if self.id is not None:      # only when set: a horizontal partner keeps its old form
            out["id"] = self.id
        if self.spec is not None:
            out["spec"] = self.spec.to_dict()
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Partner:
        return cls(raw["name"], raw["kind"], Path(raw["data"]) if raw.get("data") else None,
                   PrivacyPolicy(**raw["privacy"]) if raw.get("privacy") else PrivacyPolicy(), raw.get("key"),
                   tuple(raw.get("purposes", SIMULATION_PURPOSES)), raw.get("sep"), raw.get("decimal"),
                   raw.get("id"), spec_from_dict(raw["spec"]) if raw.get("spec") else None)


_AT_LEAST_1 = Annotated[Whole, Field(ge=1)]
_NAMES = "must be a list of column names"
_CODES = "must be a table of column = [codes]"


@schema_dataclass(frozen=True, config=STRICT)
class FederationSettings:
    """How the federation trains (the [federation] table). Every field has a validated default.

    `rounds` is the most rounds a run trains (the cap). `stop = "converged"` (default) ends the run
    earlier when the pooled validation loss has not improved by more than `min_delta` for `patience`
    evaluated models, and keeps the best model; the partners then hold `validation_fraction` of their
    training rows out of local training to score each model on (without record-level DP only: under
    DP the run trains to the cap, see `fedcredit.server.stopping`). `stop = "rounds"` trains exactly
    `rounds` rounds on every training row and keeps the last model. Without record-level DP a partner
    trains at least `min_local_steps` optimizer steps a round (more epochs on a small partner; 0: exactly
    `local_epochs`).
    """

    rounds: _AT_LEAST_1 = rule("must be a whole number ≥ 1 (the most rounds a run trains)", 20)
    model: Literal[MODELS] = rule(f"unknown model; choose one of {list(MODELS)}", "logistic")
    strategy: Literal[STRATEGIES] = rule(f"unknown strategy; choose one of {list(STRATEGIES)}", "fedavg")
    local_epochs: _AT_LEAST_1 = rule("must be ≥ 1", 1)
    batch_size: _AT_LEAST_1 = rule("must be ≥ 1", 256)
    optimizer: Literal[OPTIMIZERS] = rule(f"choose one of {list(OPTIMIZERS)}", "adam")
    learning_rate: Positive = rule(_POSITIVE, 0.01)
    weight_decay: Annotated[Number, Field(ge=0)] = rule("must be ≥ 0", 0.0)
    hidden: tuple[_AT_LEAST_1, ...] = rule("must be a list of layer widths ≥ 1", (32, 16), min_length=1)
    proximal_mu: Annotated[Number, Field(ge=0)] = rule("must be ≥ 0", 0.01)
    server_learning_rate: Positive = rule(_POSITIVE, 0.1)
    test_fraction: Annotated[Number, Field(ge=0.05, le=0.5)] = rule("must be between 0.05 and 0.5", 0.25)
    min_rows: Annotated[Whole, Field(ge=20)] = rule("must be ≥ 20", 200)
    min_bad: Annotated[Whole, Field(ge=2)] = rule("must be ≥ 2", 20)
    min_available_nodes: Annotated[Whole, Field(ge=0)] = rule("must be ≥ 0", 0)   # 0 = every partner in the scenario
    round_timeout: Positive = rule(_POSITIVE, 600.0)
    seed: Whole = rule("must be a whole number", 0)
    # rounds between evaluations; None: every round, or only the last under DP
    evaluate_every: Annotated[Whole, Field(ge=0)] | None = rule(
        "must be a whole number ≥ 0 (0: only the final model)", None)
    # SecAgg+; None = on in deployment, off in simulation
    secure_aggregation: Flag | None = rule("must be true or false", None)
    # share of the partners still training that a round asks (seeded sample; at least 1, 2 under SecAgg+)
    fraction_train: Annotated[Number, Field(gt=0, le=1)] = rule("must be a share in (0, 1]", 1.0)
    stop: Literal[STOP_RULES] = rule(f"choose one of {list(STOP_RULES)} (\"rounds\": train exactly `rounds` rounds)",
                                     "converged")
    patience: _AT_LEAST_1 = rule("must be a whole number ≥ 1 (evaluated models without improvement)", 5)
    min_delta: Annotated[Number, Field(ge=0, lt=1)] = rule("must be ≥ 0 and < 1 (a drop of the log loss)", 1e-4)
    validation_fraction: Annotated[Number, Field(ge=0.05, le=0.5)] = rule(
        "must be between 0.05 and 0.5 (the share of each partner's training rows held out)", 0.15)
    min_local_steps: Annotated[Whole, Field(ge=0)] = rule("must be a whole number ≥ 0 (0: exactly local_epochs)", 10)
    # set by `fedcredit cv` for each of its trainings (fedcredit.credit.folds): the partners train on their
    # training rows outside fold `cv_fold` (0-based) of `cv_folds` and evaluate on that fold; 0: no folds
    cv_folds: Annotated[Whole, Field(ge=0)] = rule("must be a whole number ≥ 0 (set by `fedcredit cv`)", 0)
    cv_fold: Annotated[Whole, Field(ge=0)] = rule("must be a whole number ≥ 0 (set by `fedcredit cv`)", 0)
    # "vertical": the parties hold other columns about the same customers (fedcredit.credit.vertical_config)
    partitioning: Literal[PARTITIONINGS] = rule(f"choose one of {list(PARTITIONINGS)}", "horizontal")

    @model_validator(mode="after")
    def _secure_aggregation_averages(self) -> FederationSettings:
        if self.secure_aggregation and self.strategy == "fedadam":
            raise Rule("secure aggregation averages updates: use strategy 'fedavg' or 'fedprox' "
                       f"(got {self.secure_aggregation!r})", "secure_aggregation")
        if self.cv_folds == 1 or self.cv_fold >= max(self.cv_folds, 1):
            raise Rule(f"cv_folds must be 0 or ≥ 2 and cv_fold below it (got {self.cv_folds}, {self.cv_fold})",
                       "cv_fold")
        return self

    def local_epochs_for(self, rows: int) -> int:
        """Epochs a round for a partner training on `rows` rows without record-level DP: `local_epochs`,
        or more so that it takes at least `min_local_steps` optimizer steps (batches of `batch_size`)."""
        batches = max(math.ceil(rows / self.batch_size), 1)
        return max(self.local_epochs, math.ceil(self.min_local_steps / batches))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str) -> FederationSettings:
        return validated(cls, raw, locate=source)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out

    def evaluation_rounds(self, private: bool) -> list[int]:
        """The models that are evaluated, by the round that produced them (0 = the initial
        model). The final model is always evaluated; under DP each evaluation is a release."""
        every = self.evaluate_every if self.evaluate_every is not None else (0 if private else 1)
        if every == 0:
            return [self.rounds]
        return sorted({*range(0 if every == 1 else every, self.rounds, every), self.rounds})


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: the dataset contract, the partners and the federation settings.

    In a vertical scenario `dataset` is the joint contract of the joined rows (`check_vertical`); each
    party's own is its `Partner.spec`."""

    name: str
    dataset: DatasetSpec
    partners: tuple[Partner, ...]
    federation: FederationSettings = field(default_factory=FederationSettings)
    source: Path | None = None
    scorecard: ScorecardSettings = field(default_factory=ScorecardSettings)
    fairness: FairnessSettings = field(default_factory=FairnessSettings)
    gbdt: TreeSettings = field(default_factory=TreeSettings)

    @property
    def planned_evaluations(self) -> int:
        """The releases on held-out rows a DP partner budgets for a run: the scheduled evaluations, and
        the fairness release of the final model when the dataset declares protected columns."""
        return len(self.federation.evaluation_rounds(private=True)) + (1 if self.dataset.protected else 0)

    @property
    def trees(self) -> TreeSettings | None:
        """The [gbdt] settings a tree model uses (`TreeSettings.resolved`), else None."""
        return self.gbdt.resolved(self.federation.model) if self.federation.model in TREE_MODELS else None

    @property
    def client_dp(self) -> PrivacyPolicy | None:
        """The shared policy when the federation uses partner-level DP (mode "client")."""
        return self.partners[0].privacy if self.partners[0].privacy.mode == "client" else None

    @property
    def vertical(self) -> bool:
        """True when the parties hold other columns about the same customers."""
        return self.federation.partitioning == "vertical"

    @property
    def label_holder(self) -> Partner:
        """The vertical federation's one party holding the label (InputError for a horizontal scenario)."""
        holders = [p for p in self.partners if p.holds_label]
        if not self.vertical or len(holders) != 1:
            raise InputError("has no label holder: it is not a vertical scenario", source=str(self.source))
        return holders[0]

    @property
    def min_available_nodes(self) -> int:
        return self.federation.min_available_nodes or len(self.partners)

    def partner(self, name: str) -> Partner:
        for p in self.partners:
            if p.name == name:
                return p
        raise InputError(f"no partner named '{name}'; the scenario has "
                         f"{[p.name for p in self.partners]}", source=str(self.source))

    def with_federation(self, **changes: Any) -> Scenario:
        fed = validated(lambda **kw: replace(self.federation, **kw), changes, locate="command line",
                        schema=FederationSettings)
        return replace(self, federation=fed)

    def to_dict(self) -> dict[str, Any]:
        """The resolved scenario (absolute paths), as written to a run directory."""
        return {
            "name": self.name,
            "source": str(self.source) if self.source else None,
            "dataset": self.dataset.to_dict(),
            "partners": [p.to_dict() for p in self.partners],
            "federation": self.federation.to_dict(),
            "scorecard": self.scorecard.to_dict(),
            "fairness": self.fairness.to_dict(),
            "gbdt": self.gbdt.to_dict(),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, base_dir: Path, name: str,
                  source: Path | None = None) -> Scenario:
        where = str(source) if source else "scenario"
        return cls.from_file(validated(ScenarioFile, raw, locate=file_locator(where, raw)), base_dir=base_dir,
                             name=name, source=source)

    @classmethod
    def from_file(cls, file: ScenarioFile, *, base_dir: Path, name: str, source: Path | None = None) -> Scenario:
        """A validated scenario file → Scenario (paths resolved against `base_dir`)."""
        where = str(source) if source else "scenario"
        vertical = file.federation.partitioning == "vertical"
        if not vertical:
            if file.dataset is None:
                raise InputError("missing the [dataset] table", source=where, field="dataset")
            refuse_party_keys(file.partners, where)
        default_policy = (PrivacyPolicy.from_dict(file.privacy, base_dir=base_dir, source=f"{where} [privacy]")
                          if file.privacy is not None else PrivacyPolicy())
        partners: list[Partner] = []
        for entry in file.partners:
            partner = entry.partner(default_policy, base_dir=base_dir, where=where)
            if any(p.name == partner.name for p in partners):
                raise InputError("appears twice", source=f"{where} partner '{partner.name}'", field="name")
            partners.append(partner)
        federation = file.federation
        if vertical:
            joint = check_vertical(file, partners, where)
            return cls(name, joint, tuple(partners), federation, source, file.scorecard, file.fairness,
                       file.gbdt)._nodes_checked(where)
        modes = {p.privacy.mode for p in partners}
        if "client" in modes and len(modes) > 1:
            raise InputError("partner-level DP (mode 'client') is federation-wide: set it in [privacy] for every "
                             "partner, not for some", source=where, field="mode")
        if "client" in modes and federation.secure_aggregation:
            raise InputError("partner-level DP (mode 'client') adds its noise after a plain aggregation: turn "
                             "secure_aggregation off, or use mode 'sample'", source=where, field="secure_aggregation")
        if "client" in modes and federation.fraction_train < 1:
            raise InputError("partner-level DP (mode 'client') accounts for every partner in every round: "
                             "use fraction_train = 1, or mode 'sample'", source=where, field="fraction_train")
        if "client" in modes and federation.strategy == "fedadam":
            raise InputError("partner-level DP accounting needs strategy 'fedavg' or 'fedprox'",
                             source=where, field="strategy")
        spec = file.dataset.spec()
        _check_scorecard(file.scorecard, spec, where)
        spec = _check_fairness(file.fairness, spec, private=any(p.privacy.enabled for p in partners), where=where,
                               given="fairness" in file.model_fields_set)
        _check_trees(file.gbdt, federation, partners, where)
        if federation.model in TREE_MODELS and spec.protected:
            raise InputError(f"fair-lending checks (protected columns {list(spec.protected)}) are not yet available "
                             f"for model '{federation.model}': use a logistic, mlp or scorecard model, or remove "
                             "[dataset] protected", source=where, field="model")
        scenario = cls(name, spec, tuple(partners), federation, source, file.scorecard, file.fairness, file.gbdt)
        return scenario._nodes_checked(where)

    def _nodes_checked(self, where: str) -> Scenario:
        if self.min_available_nodes > len(self.partners):
            raise InputError(f"asks for {self.min_available_nodes} nodes but lists only "
                             f"{len(self.partners)} partners", source=where, field="min_available_nodes")
        return self


def _check_scorecard(card: ScorecardSettings, spec: DatasetSpec, where: str) -> None:
    """[scorecard] names only the dataset's features; a monotonic trend only numeric ones."""
    at = f"{where} [scorecard]"
    for col in card.monotonic:
        if col in spec.categorical:
            raise InputError(f"'{col}' is categorical: a monotonic trend needs an ordered (numeric) column; remove it "
                             f"from monotonic (categorical levels are grouped by WOE)", source=at, field="monotonic")
        if col not in spec.numeric:
            raise InputError(f"'{col}' is not a numeric feature of the dataset (numeric: {list(spec.numeric)})",
                             source=at, field="monotonic")
    for col in card.reasons:
        if col not in spec.features:
            raise InputError(f"'{col}' is not a feature of the dataset (features: {list(spec.features)})",
                             source=at, field="reasons")


def _check_fairness(fair: FairnessSettings, spec: DatasetSpec, *, private: bool, where: str,
                    given: bool) -> DatasetSpec:
    """[fairness] against [dataset] protected; returns the spec with its numeric protected columns."""
    at = f"{where} [fairness]"
    if not spec.protected:
        if given:
            raise InputError("there is nothing to check: declare the protected columns in [dataset] protected "
                             "(e.g. protected = [\"sex\", \"age\"]), or remove the [fairness] table", source=at)
        return spec
    if fair.cutoff_score is None:
        raise InputError("is required with [dataset] protected: the score in points (on the [scorecard] scale: "
                         "base_score at base_odds, pdo) at or above which an applicant is approved",
                         source=at, field="cutoff_score")
    for key in ("groups", "reference"):
        stray = [c for c in getattr(fair, key) if c not in spec.protected]
        if stray:
            raise InputError(f"{stray} are not protected columns (protected: {list(spec.protected)}): list them "
                             "in [dataset] protected, or remove them here", source=at, field=key)
    numeric = fair.numeric()
    for col in numeric:
        if col in spec.levels:
            raise InputError(f"'{col}' has cut points in [fairness] groups, so it is read as numbers: remove its "
                             "[dataset] levels, or give its groups as code lists", source=f"{where} [dataset]",
                             field="levels")
    spec = replace(spec, protected_numeric=numeric)
    for groups in fair.column_groups(spec):
        col = groups.column
        if private and groups.names is None:
            raise InputError(f"'{col}' is a categorical protected column without public groups: under record-level "
                             "DP a group's name must not come from the rows; declare its codes in [dataset] levels "
                             f"(levels = {{{col} = [...]}}) or group them in [fairness] groups "
                             f"({col} = {{name = [codes]}}), or give cut points if it is numeric", source=at,
                             field="groups")
        if col in fair.reference:
            value = fair.reference[col]
            if groups.reference_group(value) is None and groups.names is not None:
                offered = [n for n in groups.names if n not in ("missing", "other")]
                raise InputError(f"{value!r} is no group of '{col}' (its groups: {offered}"
                                 f"{'; or any number, for its band' if groups.numeric else ''})",
                                 source=at, field="reference")
    return spec


def _check_trees(trees: TreeSettings, federation: FederationSettings, partners: list[Partner], where: str) -> None:
    """Under record-level DP the shared transform's numeric columns have PRIVATE_BINS bins: no more
    value bins can be cut from them (exact statistics have EXACT_BINS)."""
    from fedcredit.credit.features import PRIVATE_BINS

    private = [p.name for p in partners if p.privacy.enabled]
    if federation.model in TREE_MODELS and private and trees.max_bins is not None and trees.max_bins > PRIVATE_BINS:
        raise InputError(f"max_bins {trees.max_bins} is more than the {PRIVATE_BINS} bins a numeric column has in "
                         f"the private statistics of partner(s) {private} (record-level DP): use max_bins ≤ "
                         f"{PRIVATE_BINS}, or leave it out", source=f"{where} [gbdt]", field="max_bins")


# ---- the files' schemas ------------------------------------------------------------------------


class PartnerEntry(Schema):
    """One partner: a scenario's [[partners]] entry, or the [partner] table of a partner.toml."""

    name: Annotated[Text, Field(pattern=NAME_PATTERN)] = rule("needs a name of letters, digits, '-', '_' or '.'")
    kind: Literal[PARTNER_KINDS] = rule(f"must be one of {list(PARTNER_KINDS)}")
    data: Text | None = rule("must give the path of the partner's table", None)
    privacy: dict[str, Any] | None = rule("must be a table", None)
    key: Text | None = rule("must name a key file, env:NAME or passphrase-env:NAME", None)
    purposes: tuple[Text, ...] | None = rule('must be a list of purposes, e.g. ["stats", "train", "evaluate"]',
                                             None, min_length=1)
    # the coordinator's copy only: this partner's node public key file(s), read by the deployment
    public_key: Any = None
    sep: Literal[SEPARATORS] | None = rule(f"must be one of {_choices(SEPARATORS)}", None)
    decimal: Literal[DECIMALS] | None = rule(f"must be one of {_choices(DECIMALS)}", None)
    # a vertical scenario's party: its key column and its own columns (the [dataset] keys' meaning)
    id: Text | None = rule("must name the party's customer key column (e.g. \"customer_id\")", None)
    label: Text | None = rule("must name the label column as a string (label holder only)", None)
    bad: Any = rule('must be a number or a non-empty string (e.g. 1 or "Y")', None)
    numeric: tuple[Text, ...] | None = rule(_NAMES, None)
    categorical: tuple[Text, ...] | None = rule(_NAMES, None)
    drop: tuple[Text, ...] | None = rule(_NAMES, None)
    log: tuple[Text, ...] | None = rule(_NAMES, None)
    levels: dict[str, Any] | None = rule(_CODES, None)
    missing: dict[str, Any] | None = rule(_CODES, None)

    @field_validator("bad")
    @classmethod
    def _bad_is_a_code(cls, value: Any) -> Any:
        if value is not None and not is_code(value):
            raise ValueError("not a code")
        return value

    def partner(self, default_policy: PrivacyPolicy, *, base_dir: Path, where: str,
                purposes: tuple[str, ...] = SIMULATION_PURPOSES) -> Partner:
        """→ Partner: paths resolved against `base_dir`, its [privacy] over `default_policy`."""
        at = f"{where} partner '{self.name}'"
        policy = default_policy
        if self.privacy is not None:
            policy = PrivacyPolicy.from_dict(self.privacy, base=default_policy, base_dir=base_dir,
                                             source=f"{at} [partners.privacy]")
        key = self.key
        if key is not None and not key.startswith(("env:", "passphrase-env:")):
            key = str((base_dir / key).resolve())
        columns = {k: getattr(self, k) for k in COLUMN_KEYS if getattr(self, k) is not None}
        return Partner(self.name, self.kind, (base_dir / self.data).resolve() if self.data else None, policy, key,
                       self.purposes or purposes, self.sep, self.decimal, self.id,
                       party_spec(columns, at=at) if columns else None)


class ScenarioFile(Schema):
    """A scenario file: the dataset contract, the partners, how they federate, their default privacy.
    (A coordinator's file is a scenario file whose [coordinator] table the deployment reads.)"""

    __file_schema__: ClassVar[bool] = True
    dataset: DatasetTable | None = rule("must be the [dataset] table", None)   # required unless vertical
    partners: tuple[PartnerEntry, ...] = rule("needs at least one [[partners]] entry", min_length=1,
                                              missing="needs at least one [[partners]] entry")
    federation: FederationSettings = rule("must be the [federation] table", default_factory=FederationSettings)
    scorecard: ScorecardSettings = rule("must be the [scorecard] table", default_factory=ScorecardSettings)
    fairness: FairnessSettings = rule("must be the [fairness] table", default_factory=FairnessSettings)
    gbdt: TreeSettings = rule("must be the [gbdt] table", default_factory=TreeSettings)
    privacy: dict[str, Any] | None = rule("must be the [privacy] table", None)
    synthetic: dict[str, Any] | None = rule("must be a table", None)
    coordinator: dict[str, Any] | None = rule("must be the [coordinator] table", None)


class PartnerFile(Schema):
    """A deployed partner's partner.toml: [partner], optional [privacy], and [node] (read by the
    deployment)."""

    __file_schema__: ClassVar[bool] = True
    partner: PartnerEntry = rule("must be the [partner] table", missing="missing the [partner] table (name, kind, data)")
    privacy: dict[str, Any] | None = rule("must be the [privacy] table", None)
    node: dict[str, Any] | None = rule("must be the [node] table", None)


def file_locator(where: str, raw: Any) -> Callable[[tuple[Any, ...]], str]:
    """Where an error at `loc` is, for the user: "FILE [federation]", "FILE partner 'bank-a'" (or
    "FILE [[partners]] #2" while the entry has no valid name)."""
    def locate(loc: tuple[Any, ...]) -> str:
        if not loc:
            return where
        if loc[0] in ("partners", "partner"):
            entry = raw.get("partners", [None] * (int(loc[1]) + 1))[loc[1]] if loc[0] == "partners" and \
                len(loc) > 1 else raw.get("partner") if loc[0] == "partner" else None
            name = entry.get("name") if isinstance(entry, Mapping) else None
            if isinstance(name, str) and re.match(NAME_PATTERN, name):
                return f"{where} partner '{name}'"
            return f"{where} [[partners]] #{int(loc[1]) + 1}" if loc[0] == "partners" and len(loc) > 1 else \
                f"{where} [{loc[0]}]"
        return f"{where} [{loc[0]}]"
    return locate


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A config file as a dict; a missing or malformed file is an InputError naming it."""
    if not path.is_file():
        raise InputError(f"{what} not found: check the path", source=str(path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"is not valid TOML: {exc}", source=str(path)) from exc
    odd = first_nonfinite(data)
    if odd:   # TOML allows nan and inf; no setting means them, and they cannot be written as JSON
        raise InputError("must be a finite number (nan and inf are not allowed)", source=str(path), field=odd)
    return data


def load_partner_file(path: str | Path) -> Partner:
    """A deployed partner's own config (partner.toml: [partner], optional [privacy], [node]).

    Paths are relative to the file; the access policy defaults to stats/train/evaluate.
    The [node] table is read by the deployment commands, not here.
    """
    path = Path(path).expanduser().resolve()
    raw = read_toml(path, "partner config")
    return partner_from_file(validated(PartnerFile, raw, locate=file_locator(str(path), raw)), path)


def partner_from_file(file: PartnerFile, path: Path) -> Partner:
    """A validated partner.toml (at `path`) → its Partner, with the rules of a deployed partner."""
    policy = (PrivacyPolicy.from_dict(file.privacy, base_dir=path.parent, source=f"{path} [privacy]")
              if file.privacy is not None else PrivacyPolicy())
    partner = file.partner.partner(policy, base_dir=path.parent, where=str(path), purposes=DEPLOYMENT_PURPOSES)
    if partner.data is None:
        raise InputError("must give the path of the partner's table", source=f"{path} [partner]", field="data")
    if partner.privacy.mode == "client" or partner.privacy.ledger_dir == "run":
        raise InputError("a deployed partner uses mode 'sample' or 'off' and keeps its ledger beside its data "
                         "or in its own ledger_dir", source=f"{path} [privacy]")
    return partner


def scenario_name(path: Path) -> str:
    """A scenario's name: its file's stem, or its folder's name for a file called scenario.toml."""
    return path.stem if path.stem != "scenario" else path.parent.name


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; data paths are resolved relative to it."""
    path = Path(path).expanduser().resolve()
    raw = read_toml(path, "scenario file")
    return Scenario.from_dict(raw, base_dir=path.parent, name=scenario_name(path), source=path)
