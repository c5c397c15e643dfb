"""What the coordinator and a partner tell each other, as plain JSON-able data.

The Flower adapters (`server/`, `clients/`) carry these in ConfigRecords; keeping the
payloads here means both sides agree on them without importing each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fedcredit.credit import strict_json
from fedcredit.credit.fairness import FairnessTask, GroupScores
from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.histograms import BinPlan
from fedcredit.credit.metrics import ScoreHistogram
from fedcredit.credit.scenario import FederationSettings, Partner
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.statistics import BinStats, RangeStats
from fedcredit.credit.trees import TreeSettings

STATS_ACTION = "stats"          # message type "query.stats": round 0, column statistics
TASK_KEY = "task"               # ConfigRecord entry with the TaskConfig JSON
REPORT_KEY = "report"           # reply ConfigRecord holding the PartnerReport JSON
PHASE_KEY = "stats-phase"       # "range" (release 1) or "bins" (release 2) in a stats message
EVALUATE_KEY = "evaluate"       # a train message: also evaluate the received model (a release under DP)
VALIDATE_KEY = "validate"       # train/evaluate message: hold validation rows out of training, score the model on them
FAIRNESS_KEY = "fairness"       # evaluate message: release the model's score histograms by protected group instead
RANGE, BINS = "range", "bins"
HISTOGRAMS_ACTION = "histograms"   # message type "query.histograms": one tree level's gradient histograms (gbdt)
TREES_KEY = "trees"             # ConfigRecord entry: the tree ensemble JSON (fedcredit.credit.trees)
GROWING_KEY = "growing"         # query.histograms: JSON {"tree": t, "level": d, "nodes": [...], "partial": tree}


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
    plan: ColumnPlan | None = None                 # round 0, release 2: where to bin each numeric column
    evaluations: int = 0                           # how many evaluations the run plans (a DP partner budgets them)
    fairness: FairnessTask | None = None           # the fairness release's groups and cutoff (its message only)
    trees: TreeSettings | None = None              # model "gbdt": the [gbdt] settings (a DP partner budgets its levels)
    bins: BinPlan | None = None                    # model "gbdt", after round 0: each column's histogram bins

    def to_json(self) -> str:
        return strict_json.dumps({
            "spec": self.spec.to_dict(),
            "federation": self.federation.to_dict(),
            "transform": self.transform.to_dict() if self.transform else None,
            "roster": [p.to_dict() for p in self.roster],
            "run": self.run, "run_dir": self.run_dir, "weights": self.weights,
            "plan": self.plan.to_dict() if self.plan else None, "evaluations": self.evaluations,
            **({"fairness": self.fairness.to_dict()} if self.fairness else {}),
            **({"trees": self.trees.to_dict()} if self.trees else {}),
            **({"bins": self.bins.to_dict()} if self.bins else {}),
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
            plan=ColumnPlan.from_dict(raw["plan"]) if raw.get("plan") else None,
            evaluations=int(raw.get("evaluations", 0)),
            fairness=FairnessTask.from_dict(raw["fairness"]) if raw.get("fairness") else None,
            trees=TreeSettings.from_dict(raw["trees"]) if raw.get("trees") else None,
            bins=BinPlan.from_dict(raw["bins"]) if raw.get("bins") else None,
        )


@dataclass(frozen=True)
class PartnerReport:
    """What a partner reports besides its model update: who it is, sizes, statistics, scores."""

    partner: str
    kind: str
    rows_train: int | None = None     # public: the noised count under DP; None if nothing was released
    rows_test: int | None = None      # public: the noised evaluation total under DP; None if not evaluated
    stats: RangeStats | BinStats | None = None   # stats round only (release 1 or 2)
    evaluation: ScoreHistogram | None = None  # the received global model on the partner's test rows
    train_loss: float | None = None   # withheld (None) under DP
    steps: int = 0
    stats_noise_sd: float = 0.0       # std of the noise on each released count (0: exact)
    privacy: dict[str, Any] | None = None   # the partner's privacy statement after this message
    declined: str = ""                # why the partner did not train this round
    warnings: tuple[str, ...] = ()    # for the coordinator's console (budget warnings)
    validation_loss: float | None = None   # the received model's mean log loss on the validation rows (no DP only)
    rows_validation: int | None = None   # how many validation rows that loss is over (no DP only)
    fairness: GroupScores | None = None   # the final model's held-out score histograms by protected group

    def to_dict(self) -> dict[str, Any]:
        stats = None
        if self.stats is not None:
            stats = {"kind": RANGE if isinstance(self.stats, RangeStats) else BINS, **self.stats.to_dict()}
        return {
            "partner": self.partner, "kind": self.kind,
            "rows_train": self.rows_train, "rows_test": self.rows_test,
            "stats": stats,
            "evaluation": self.evaluation.to_dict() if self.evaluation else None,
            "train_loss": self.train_loss, "steps": self.steps, "stats_noise_sd": self.stats_noise_sd,
            "privacy": self.privacy, "declined": self.declined, "warnings": list(self.warnings),
            "validation_loss": self.validation_loss, "rows_validation": self.rows_validation,
            **({"fairness": self.fairness.to_dict()} if self.fairness is not None else {}),
        }

    def to_json(self) -> str:
        return strict_json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> PartnerReport:
        raw: dict[str, Any] = json.loads(text)
        stats = raw["stats"]
        if stats is not None:
            stats = (RangeStats if stats.pop("kind") == RANGE else BinStats).from_dict(stats)
        return cls(
            partner=raw["partner"], kind=raw["kind"],
            rows_train=None if raw["rows_train"] is None else int(raw["rows_train"]),
            rows_test=None if raw["rows_test"] is None else int(raw["rows_test"]),
            stats=stats,
            evaluation=ScoreHistogram.from_dict(raw["evaluation"]) if raw["evaluation"] else None,
            train_loss=raw["train_loss"], steps=int(raw["steps"]),
            stats_noise_sd=float(raw["stats_noise_sd"]), privacy=raw["privacy"], declined=raw["declined"],
            warnings=tuple(raw.get("warnings", ())),
            validation_loss=raw.get("validation_loss"),
            rows_validation=None if raw.get("rows_validation") is None else int(raw["rows_validation"]),
            fairness=GroupScores.from_dict(raw["fairness"]) if raw.get("fairness") else None,
        )
