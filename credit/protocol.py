"""What the coordinator and a partner tell each other, as plain JSON-able data.

The Flower adapters (`server/`, `clients/`) carry these in ConfigRecords; keeping the
payloads here means both sides agree on them without importing each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from credit import strict_json
from credit.features import ColumnStats, FeatureTransform
from credit.metrics import ScoreHistogram
from credit.scenario import FederationSettings, Partner
from credit.schema import DatasetSpec

STATS_ACTION = "stats"          # message type "query.stats": round 0, column statistics
TASK_KEY = "task"               # ConfigRecord entry with the TaskConfig JSON
REPORT_KEY = "report"           # reply ConfigRecord holding the PartnerReport JSON


@dataclass(frozen=True)
class TaskConfig:
    """The coordinator's instructions for one message: schema, settings, fitted transform.

    `roster` maps simulation partition ids to partners; in deployment it is empty and
    each partner names itself through its node config.
    """

    spec: DatasetSpec
    federation: FederationSettings
    transform: FeatureTransform | None = None
    roster: tuple[Partner, ...] = ()
    run: str = ""                                  # run id, recorded in ledgers and audit trails
    run_dir: str = ""                              # simulation only: where "run"-scoped ledgers live
    weights: dict[str, int] = field(default_factory=dict)  # public (noised) example counts per partner

    def to_json(self) -> str:
        return strict_json.dumps({
            "spec": self.spec.to_dict(),
            "federation": self.federation.to_dict(),
            "transform": self.transform.to_dict() if self.transform else None,
            "roster": [p.to_dict() for p in self.roster],
            "run": self.run, "run_dir": self.run_dir, "weights": self.weights,
        })

    @classmethod
    def from_json(cls, text: str) -> TaskConfig:
        raw = json.loads(text)
        return cls(
            spec=DatasetSpec.from_dict(raw["spec"]),
            federation=FederationSettings.from_dict(raw["federation"], source="task config"),
            transform=FeatureTransform.from_dict(raw["transform"]) if raw["transform"] else None,
            roster=tuple(Partner.from_dict(p) for p in raw["roster"]),
            run=raw["run"], run_dir=raw["run_dir"], weights=dict(raw["weights"]),
        )


@dataclass(frozen=True)
class PartnerReport:
    """What a partner reports besides its model update: who it is, sizes, statistics, scores."""

    partner: str
    kind: str
    rows_train: int
    rows_test: int
    stats: ColumnStats | None = None          # stats round only
    evaluation: ScoreHistogram | None = None  # the received global model on the partner's test rows
    train_loss: float | None = None
    steps: int = 0
    stats_noise_sd: float = 0.0       # std of the noise on each released count (0: exact)
    privacy: dict[str, Any] | None = None   # the partner's privacy statement after this message
    declined: str = ""                # why the partner did not train this round

    def to_json(self) -> str:
        return strict_json.dumps({
            "partner": self.partner, "kind": self.kind,
            "rows_train": self.rows_train, "rows_test": self.rows_test,
            "stats": self.stats.to_dict() if self.stats else None,
            "evaluation": self.evaluation.to_dict() if self.evaluation else None,
            "train_loss": self.train_loss, "steps": self.steps, "stats_noise_sd": self.stats_noise_sd,
            "privacy": self.privacy, "declined": self.declined,
        })

    @classmethod
    def from_json(cls, text: str) -> PartnerReport:
        raw: dict[str, Any] = json.loads(text)
        return cls(
            partner=raw["partner"], kind=raw["kind"],
            rows_train=int(raw["rows_train"]), rows_test=int(raw["rows_test"]),
            stats=ColumnStats.from_dict(raw["stats"]) if raw["stats"] else None,
            evaluation=ScoreHistogram.from_dict(raw["evaluation"]) if raw["evaluation"] else None,
            train_loss=raw["train_loss"], steps=int(raw["steps"]),
            stats_noise_sd=float(raw["stats_noise_sd"]), privacy=raw["privacy"], declined=raw["declined"],
        )
