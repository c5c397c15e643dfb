"""What the coordinator and a partner tell each other, as plain JSON-able data.

The Flower adapters (`server/`, `clients/`) carry these in ConfigRecords; keeping the
payloads here means both sides agree on them without importing each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

    def to_json(self) -> str:
        return json.dumps({
            "spec": self.spec.to_dict(),
            "federation": self.federation.to_dict(),
            "transform": self.transform.to_dict() if self.transform else None,
            "roster": [{"name": p.name, "kind": p.kind, "data": str(p.data)} for p in self.roster],
        })

    @classmethod
    def from_json(cls, text: str) -> TaskConfig:
        raw = json.loads(text)
        return cls(
            spec=DatasetSpec.from_dict(raw["spec"]),
            federation=FederationSettings.from_dict(raw["federation"], source="task config"),
            transform=FeatureTransform.from_dict(raw["transform"]) if raw["transform"] else None,
            roster=tuple(Partner(p["name"], p["kind"], Path(p["data"])) for p in raw["roster"]),
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

    def to_json(self) -> str:
        return json.dumps({
            "partner": self.partner, "kind": self.kind,
            "rows_train": self.rows_train, "rows_test": self.rows_test,
            "stats": self.stats.to_dict() if self.stats else None,
            "evaluation": self.evaluation.to_dict() if self.evaluation else None,
            "train_loss": self.train_loss, "steps": self.steps,
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
        )
