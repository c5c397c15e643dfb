"""Scenario file (TOML) → validated dataclasses. The only place that reads a scenario."""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from fedcredit.credit.errors import InputError
from fedcredit.credit.reading import DECIMALS, SEPARATORS
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.strict_json import first_nonfinite

PARTNER_KINDS = ("bank", "insurer", "platform")
MODELS = ("logistic", "mlp")
STRATEGIES = ("fedavg", "fedprox", "fedadam")
OPTIMIZERS = ("sgd", "adam")
PRIVACY_MODES = ("sample", "client", "off")
RUN_SHARE = 0.25   # default per-run cap: this share of the lifetime budget
# What a partner's data may be opened for. A simulation also checks tables before the run
# ("check") and trains the yardsticks ("yardstick"); a deployed partner allows only the first three.
DEPLOYMENT_PURPOSES = ("stats", "train", "evaluate")
SIMULATION_PURPOSES = (*DEPLOYMENT_PURPOSES, "check", "yardstick")
_TOP_LEVEL = {"dataset", "partners", "federation", "synthetic", "privacy", "coordinator"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
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

    mode: str = "off"
    epsilon: float = 1.0
    delta: float = 1e-6
    max_grad_norm: float = 1.0
    noise_multiplier: float | None = None
    stats_noise_multiplier: float = 20.0
    run_epsilon: float | None = None
    eval_noise_multiplier: float | None = None
    ledger_dir: str | None = None
    client_noise_multiplier: float = 1.0
    client_clipping_norm: float = 1.0

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
        known = set(cls.__dataclass_fields__)
        unknown = set(raw) - known
        if unknown:
            raise InputError(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(known)}", source=source)
        values = dict(raw)
        if base is None and "mode" not in values:
            values["mode"] = "sample"  # a [privacy] table means DP unless it says otherwise
        ledger = values.get("ledger_dir")
        if isinstance(ledger, str) and ledger not in ("", "run") and base_dir is not None:
            values["ledger_dir"] = str((base_dir / ledger).resolve())
        policy = replace(base, **values) if base else cls(**values)
        policy.validate(source=source)
        return policy

    def validate(self, *, source: str) -> None:
        def check(ok: bool, key: str, what: str) -> None:
            if not ok:
                raise InputError(f"{what} (got {getattr(self, key)!r})", source=source, field=key)

        def positive(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v)

        check(self.mode in PRIVACY_MODES, "mode", f"choose one of {list(PRIVACY_MODES)}")
        check(positive(self.epsilon), "epsilon", "the lifetime budget must be a number > 0")
        check(positive(self.delta) and self.delta < 1e-2, "delta", "must be > 0 and well below 1/rows")
        check(positive(self.max_grad_norm), "max_grad_norm", "must be > 0")
        check(self.noise_multiplier is None or positive(self.noise_multiplier), "noise_multiplier",
              "must be > 0, or left out to calibrate it to the budget")
        check(positive(self.stats_noise_multiplier), "stats_noise_multiplier", "must be > 0")
        check(self.run_epsilon is None or (positive(self.run_epsilon) and self.run_epsilon <= self.epsilon),
              "run_epsilon", "the per-run cap must be > 0 and at most the lifetime budget epsilon")
        check(self.eval_noise_multiplier is None or positive(self.eval_noise_multiplier), "eval_noise_multiplier",
              "must be > 0, or left out to calibrate it to the budget")
        check(self.ledger_dir is None or isinstance(self.ledger_dir, str), "ledger_dir", "must be a path")
        check(positive(self.client_noise_multiplier), "client_noise_multiplier", "must be > 0")
        check(positive(self.client_clipping_norm), "client_clipping_norm", "must be > 0")

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

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "data": str(self.data) if self.data else None,
                "privacy": self.privacy.to_dict(),
                "key": self.key, "purposes": list(self.purposes), "sep": self.sep, "decimal": self.decimal}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Partner:
        return cls(raw["name"], raw["kind"], Path(raw["data"]) if raw.get("data") else None,
                   PrivacyPolicy(**raw["privacy"]) if raw.get("privacy") else PrivacyPolicy(), raw.get("key"),
                   tuple(raw.get("purposes", SIMULATION_PURPOSES)), raw.get("sep"), raw.get("decimal"))


@dataclass(frozen=True)
class FederationSettings:
    """How the federation trains. Every field has a validated default."""

    rounds: int = 20
    model: str = "logistic"
    strategy: str = "fedavg"
    local_epochs: int = 1
    batch_size: int = 256
    optimizer: str = "adam"
    learning_rate: float = 0.01
    weight_decay: float = 0.0
    hidden: tuple[int, ...] = (32, 16)
    proximal_mu: float = 0.01
    server_learning_rate: float = 0.1
    test_fraction: float = 0.25
    min_rows: int = 200
    min_bad: int = 20
    min_available_nodes: int = 0  # 0 = every partner in the scenario
    round_timeout: float = 600.0
    seed: int = 0
    evaluate_every: int | None = None   # rounds between evaluations; None: every round, or only the last under DP
    secure_aggregation: bool | None = None   # SecAgg+; None = on in deployment, off in simulation

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str) -> FederationSettings:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise InputError(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(known)}",
                             source=source)
        values = dict(raw)
        if "hidden" in values:
            values["hidden"] = tuple(values["hidden"]) if isinstance(values["hidden"], list) else values["hidden"]
        settings = cls(**values)
        settings.validate(source=source)
        return settings

    def validate(self, *, source: str = "[federation]") -> None:
        def check(ok: bool, key: str, what: str) -> None:
            if not ok:
                raise InputError(f"{what} (got {getattr(self, key)!r})", source=source, field=key)

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        check(is_int(self.rounds) and self.rounds >= 1, "rounds", "must be a whole number ≥ 1")
        check(self.model in MODELS, "model", f"unknown model; choose one of {list(MODELS)}")
        check(self.strategy in STRATEGIES, "strategy", f"unknown strategy; choose one of {list(STRATEGIES)}")
        check(self.optimizer in OPTIMIZERS, "optimizer", f"choose one of {list(OPTIMIZERS)}")
        check(is_int(self.local_epochs) and self.local_epochs >= 1, "local_epochs", "must be ≥ 1")
        check(is_int(self.batch_size) and self.batch_size >= 1, "batch_size", "must be ≥ 1")
        check(is_num(self.learning_rate) and self.learning_rate > 0, "learning_rate", "must be > 0")
        check(is_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "must be ≥ 0")
        check(isinstance(self.hidden, tuple) and len(self.hidden) >= 1
              and all(is_int(h) and h >= 1 for h in self.hidden), "hidden",
              "must be a list of layer widths ≥ 1")
        check(is_num(self.proximal_mu) and self.proximal_mu >= 0, "proximal_mu", "must be ≥ 0")
        check(is_num(self.server_learning_rate) and self.server_learning_rate > 0,
              "server_learning_rate", "must be > 0")
        check(is_num(self.test_fraction) and 0.05 <= self.test_fraction <= 0.5, "test_fraction",
              "must be between 0.05 and 0.5")
        check(is_int(self.min_rows) and self.min_rows >= 20, "min_rows", "must be ≥ 20")
        check(is_int(self.min_bad) and self.min_bad >= 2, "min_bad", "must be ≥ 2")
        check(is_int(self.min_available_nodes) and self.min_available_nodes >= 0,
              "min_available_nodes", "must be ≥ 0")
        check(is_num(self.round_timeout) and self.round_timeout > 0, "round_timeout", "must be > 0")
        check(is_int(self.seed), "seed", "must be a whole number")
        check(self.evaluate_every is None or (is_int(self.evaluate_every) and self.evaluate_every >= 0),
              "evaluate_every", "must be a whole number ≥ 0 (0: only the final model)")
        check(self.secure_aggregation in (None, True, False), "secure_aggregation", "must be true or false")
        check(not (self.secure_aggregation and self.strategy == "fedadam"), "secure_aggregation",
              "secure aggregation averages updates: use strategy 'fedavg' or 'fedprox'")

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
    """A validated scenario: the dataset contract, the partners and the federation settings."""

    name: str
    dataset: DatasetSpec
    partners: tuple[Partner, ...]
    federation: FederationSettings = field(default_factory=FederationSettings)
    source: Path | None = None

    @property
    def client_dp(self) -> PrivacyPolicy | None:
        """The shared policy when the federation uses partner-level DP (mode "client")."""
        return self.partners[0].privacy if self.partners[0].privacy.mode == "client" else None

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
        fed = replace(self.federation, **changes)
        fed.validate(source="command line")
        return replace(self, federation=fed)

    def to_dict(self) -> dict[str, Any]:
        """The resolved scenario (absolute paths), as written to a run directory."""
        return {
            "name": self.name,
            "source": str(self.source) if self.source else None,
            "dataset": self.dataset.to_dict(),
            "partners": [p.to_dict() for p in self.partners],
            "federation": self.federation.to_dict(),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, base_dir: Path, name: str,
                  source: Path | None = None) -> Scenario:
        where = str(source) if source else "scenario"
        unknown = set(raw) - _TOP_LEVEL
        if unknown:
            raise InputError(f"unknown table(s) {sorted(unknown)}; allowed: {sorted(_TOP_LEVEL)}",
                             source=where)
        if "dataset" not in raw:
            raise InputError("missing the [dataset] table", source=where)
        dataset = DatasetSpec.from_dict(raw["dataset"], source=f"{where} [dataset]")
        default_policy = (PrivacyPolicy.from_dict(raw["privacy"], base_dir=base_dir, source=f"{where} [privacy]")
                          if "privacy" in raw else PrivacyPolicy())
        partners_raw = raw.get("partners")
        if not isinstance(partners_raw, list) or not partners_raw:
            raise InputError("needs at least one [[partners]] entry", source=where)
        partners: list[Partner] = []
        for i, entry in enumerate(partners_raw):
            partner = parse_partner(entry, default_policy, base_dir=base_dir, at=f"{where} [[partners]] #{i + 1}",
                                    where=where)
            if any(p.name == partner.name for p in partners):
                raise InputError("appears twice", source=f"{where} partner '{partner.name}'", field="name")
            partners.append(partner)
        federation = FederationSettings.from_dict(raw.get("federation", {}), source=f"{where} [federation]")
        modes = {p.privacy.mode for p in partners}
        if "client" in modes and len(modes) > 1:
            raise InputError("partner-level DP (mode 'client') is federation-wide: set it in [privacy] for every "
                             "partner, not for some", source=where, field="mode")
        if "client" in modes and federation.secure_aggregation:
            raise InputError("partner-level DP (mode 'client') adds its noise after a plain aggregation: turn "
                             "secure_aggregation off, or use mode 'sample'", source=where, field="secure_aggregation")
        if "client" in modes and federation.strategy == "fedadam":
            raise InputError("partner-level DP accounting needs strategy 'fedavg' or 'fedprox'",
                             source=where, field="strategy")
        scenario = cls(name, dataset, tuple(partners), federation, source)
        if scenario.min_available_nodes > len(partners):
            raise InputError(f"asks for {scenario.min_available_nodes} nodes but lists only "
                             f"{len(partners)} partners", source=where, field="min_available_nodes")
        return scenario


def parse_partner(entry: Any, default_policy: PrivacyPolicy, *, base_dir: Path, at: str, where: str,
                  purposes: tuple[str, ...] = SIMULATION_PURPOSES) -> Partner:
    """One partner entry (scenario [[partners]] or partner.toml [partner]) → Partner."""
    if not isinstance(entry, Mapping):
        raise InputError("must be a table", source=at)
    extra = set(entry) - {"name", "kind", "data", "privacy", "key", "purposes", "public_key", "sep", "decimal"}
    if extra:
        raise InputError(f"unknown key(s) {sorted(extra)}", source=at)
    pname = entry.get("name")
    if not isinstance(pname, str) or not _NAME.match(pname):
        raise InputError("needs a name of letters, digits, '-', '_' or '.'", source=at, field="name")
    at = f"{where} partner '{pname}'"
    kind = entry.get("kind")
    if kind not in PARTNER_KINDS:
        raise InputError(f"must be one of {list(PARTNER_KINDS)} (got {kind!r})", source=at, field="kind")
    data = entry.get("data")
    if data is not None and (not isinstance(data, str) or not data):
        raise InputError("must give the path of the partner's table", source=at, field="data")
    policy = default_policy
    if "privacy" in entry:
        if not isinstance(entry["privacy"], Mapping):
            raise InputError("must be a table", source=at, field="privacy")
        policy = PrivacyPolicy.from_dict(entry["privacy"], base=default_policy, base_dir=base_dir,
                                         source=f"{at} [partners.privacy]")
    key = entry.get("key")
    if key is not None:
        if not isinstance(key, str) or not key:
            raise InputError("must name a key file, env:NAME or passphrase-env:NAME", source=at, field="key")
        if not key.startswith(("env:", "passphrase-env:")):
            key = str((base_dir / key).resolve())
    chosen = entry.get("purposes", list(purposes))
    if not isinstance(chosen, list) or not chosen or not all(isinstance(x, str) and x for x in chosen):
        raise InputError('must be a list of purposes, e.g. ["stats", "train", "evaluate"]', source=at,
                         field="purposes")
    sep, decimal = _csv_key(entry, "sep", SEPARATORS, at), _csv_key(entry, "decimal", DECIMALS, at)
    return Partner(pname, kind, (base_dir / data).resolve() if data else None, policy, key, tuple(chosen),
                   sep, decimal)


def _csv_key(entry: Mapping[str, Any], key: str, allowed: tuple[str, ...], at: str) -> str | None:
    """An optional CSV reading key (`sep`, `decimal`), one of `allowed`."""
    value = entry.get(key)
    if value is not None and value not in allowed:
        shown = ", ".join('"\\t"' if v == "\t" else f'"{v}"' for v in allowed)
        raise InputError(f"must be one of {shown} (got {value!r})", source=at, field=key)
    return value


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
    unknown = set(raw) - {"partner", "privacy", "node"}
    if unknown:
        raise InputError(f"unknown table(s) {sorted(unknown)}; allowed: ['node', 'partner', 'privacy']",
                         source=str(path))
    if "partner" not in raw:
        raise InputError("missing the [partner] table (name, kind, data)", source=str(path))
    policy = (PrivacyPolicy.from_dict(raw["privacy"], base_dir=path.parent, source=f"{path} [privacy]")
              if "privacy" in raw else PrivacyPolicy())
    partner = parse_partner(raw["partner"], policy, base_dir=path.parent, at=f"{path} [partner]", where=str(path),
                            purposes=DEPLOYMENT_PURPOSES)
    if partner.data is None:
        raise InputError("must give the path of the partner's table", source=f"{path} [partner]", field="data")
    if partner.privacy.mode == "client" or partner.privacy.ledger_dir == "run":
        raise InputError("a deployed partner uses mode 'sample' or 'off' and keeps its ledger beside its data "
                         "or in its own ledger_dir", source=f"{path} [privacy]")
    return partner


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; data paths are resolved relative to it."""
    path = Path(path).expanduser().resolve()
    raw = read_toml(path, "scenario file")
    name = path.stem if path.stem != "scenario" else path.parent.name
    return Scenario.from_dict(raw, base_dir=path.parent, name=name, source=path)
