"""Scenario file (TOML) → validated dataclasses. The only place that reads a scenario."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from credit.errors import InputError
from credit.schema import DatasetSpec

PARTNER_KINDS = ("bank", "insurer", "platform")
MODELS = ("logistic", "mlp")
STRATEGIES = ("fedavg", "fedprox", "fedadam")
OPTIMIZERS = ("sgd", "adam")
_TOP_LEVEL = {"dataset", "partners", "federation", "synthetic"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Partner:
    """One member of the consortium and where its table lives (absolute path)."""

    name: str
    kind: str
    data: Path


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
            return isinstance(v, (int, float)) and not isinstance(v, bool)

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

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: the dataset contract, the partners and the federation settings."""

    name: str
    dataset: DatasetSpec
    partners: tuple[Partner, ...]
    federation: FederationSettings = field(default_factory=FederationSettings)
    source: Path | None = None

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
            "partners": [{"name": p.name, "kind": p.kind, "data": str(p.data)} for p in self.partners],
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
        partners_raw = raw.get("partners")
        if not isinstance(partners_raw, list) or not partners_raw:
            raise InputError("needs at least one [[partners]] entry", source=where)
        partners: list[Partner] = []
        for i, entry in enumerate(partners_raw):
            at = f"{where} [[partners]] #{i + 1}"
            if not isinstance(entry, Mapping):
                raise InputError("must be a table", source=at)
            extra = set(entry) - {"name", "kind", "data"}
            if extra:
                raise InputError(f"unknown key(s) {sorted(extra)}", source=at)
            pname = entry.get("name")
            if not isinstance(pname, str) or not _NAME.match(pname):
                raise InputError("needs a name of letters, digits, '-', '_' or '.'", source=at, field="name")
            at = f"{where} partner '{pname}'"
            if any(p.name == pname for p in partners):
                raise InputError("appears twice", source=at, field="name")
            kind = entry.get("kind")
            if kind not in PARTNER_KINDS:
                raise InputError(f"must be one of {list(PARTNER_KINDS)} (got {kind!r})", source=at, field="kind")
            data = entry.get("data")
            if not isinstance(data, str) or not data:
                raise InputError("must give the path of the partner's table", source=at, field="data")
            partners.append(Partner(pname, kind, (base_dir / data).resolve()))
        federation = FederationSettings.from_dict(raw.get("federation", {}), source=f"{where} [federation]")
        scenario = cls(name, dataset, tuple(partners), federation, source)
        if scenario.min_available_nodes > len(partners):
            raise InputError(f"asks for {scenario.min_available_nodes} nodes but lists only "
                             f"{len(partners)} partners", source=where, field="min_available_nodes")
        return scenario


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; data paths are resolved relative to it."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise InputError("scenario file not found: check the path", source=str(path))
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"is not valid TOML: {exc}", source=str(path)) from exc
    name = path.stem if path.stem != "scenario" else path.parent.name
    return Scenario.from_dict(raw, base_dir=path.parent, name=name, source=path)
