"""The coordinator's loop for `[federation] model = "gbdt"`: boosted trees from the partners' histograms.

After round 0 (the shared transform, `statistics_round`) the coordinator cuts each column's bins
from the summed statistics it already holds (`fedcredit.credit.histograms.BinPlan`: no extra
release) and starts from the pooled bad rate's log-odds (release 1's summed counts). Each tree is
grown a level at a time: ONE message phase per level ("query.histograms") asks every partner still
training for the gradient and hessian histograms of all of the level's open nodes at once; the
coordinator sums them, picks each node's split, and sets every node's value from the sums (noised
under DP). A tree of depth D costs D phases; the final model is evaluated once like any model
("evaluate", the ensemble's JSON in the config). Partners' privacy statements after each tree are
recorded like DP-SGD rounds (a tree is a round of the privacy report).

Hooked into `FederatedTraining.run` after round 0; it uses that object's messaging, records and
summary (see `fedcredit.server.training`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from logging import INFO, WARNING
from typing import TYPE_CHECKING, Any

import numpy as np
from flwr.app import Message, RecordDict
from flwr.common.logger import log

from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.errors import InputError
from fedcredit.credit.features import FeatureTransform
from fedcredit.credit.histograms import BinError, BinPlan, grow_level
from fedcredit.credit.protocol import GROWING_KEY, HISTOGRAMS_ACTION, TREES_KEY, PartnerReport
from fedcredit.credit.statistics import RangeStats
from fedcredit.credit.trees import RANDOM_FOREST, Tree, TreeEnsemble
from fedcredit.privacy.histograms import HESSIAN_SCALE
from fedcredit.privacy.statistics import summed_sd
from fedcredit.server.model_record import model_metadata
from fedcredit.server.progress import PROGRESS, progress_extra

if TYPE_CHECKING:
    from fedcredit.server.training import FederatedTraining

PRIVATE_SENTENCE = ("Gaussian noise on per-level gradient histograms, clipped per row; "
                    "fedcredit.privacy.histograms")


def bin_plan(run: FederatedTraining, transform: FeatureTransform) -> BinPlan:
    """Each column's bins from round 0's summed statistics; bad input when more are asked than they have."""
    plan, _, bins = run.released_stats
    try:
        return BinPlan.fit(transform, plan, bins, run.scenario.gbdt.max_bins)
    except BinError as exc:
        raise InputError(str(exc), source=f"scenario '{run.scenario.name}' [gbdt]", field="max_bins") from None


def base_score(ranges: RangeStats | None) -> float:
    """The pooled bad rate's log-odds from release 1's summed counts (noised under DP; kept in (1e-4, 1 − 1e-4))."""
    if ranges is None or ranges.rows <= 0:
        return 0.0
    rate = float(np.clip(ranges.bad / ranges.rows, 1e-4, 1 - 1e-4))
    return math.log(rate / (1 - rate))


class TreeGrowing:
    """Grows one federation's ensemble on a `FederatedTraining` after its round 0."""

    def __init__(self, run: FederatedTraining, transform: FeatureTransform):
        self.run, self.transform, self.settings = run, transform, run.scenario.trees
        self.bins = bin_plan(run, transform)
        run.task = replace(run.task, bins=self.bins)
        self.forest = run.fed.model == RANDOM_FOREST    # independent trees from the base score, averaged
        self.ensemble = TreeEnsemble(base_score(run.released_stats[1]), transform.feature_names, average=self.forest)
        self.start = TreeEnsemble(self.ensemble.base_score, transform.feature_names)
        if run.secure:   # SecAgg+ masks model updates; a tree needs each node's summed histograms in clear
            run._notice("secure aggregation does not cover tree histograms: each partner's histograms reach the "
                        "coordinator (noised and charged under a record-level DP policy); only the summed trees "
                        "reach the other partners")
        self.phases: list[int] = []           # message phases per tree
        self.tree_seconds: list[float] = []

    def _level(self, nodes: list[int], tree_no: int, level: int, open_nodes: list[int], tree: Tree,
               columns: list[int] | None) -> tuple[list[tuple[Message, PartnerReport]], list[str]]:
        run = self.run
        growing = json.dumps({"tree": tree_no, "level": level, "nodes": open_nodes, "partial": tree.to_dict(),
                              "columns": columns})
        gradients_at = self.start if self.forest else self.ensemble
        config = run._config(**{TREES_KEY: gradients_at.to_json(), GROWING_KEY: growing, "server-round": tree_no})
        messages = [Message(RecordDict({"config": config}), dst_node_id=n, message_type=f"query.{HISTOGRAMS_ACTION}")
                    for n in nodes]
        run.asked = len(messages)
        replies, failures = run._exchange(messages)
        run._note_dropouts(tree_no, nodes, {r.metadata.src_node_id for r in replies})
        return [(r, run._report(r)) for r in replies], failures

    def grow_tree(self, tree_no: int) -> tuple[Tree | None, dict[str, PartnerReport], list[str]]:
        """One tree, level by level: (tree, each partner's last report, failures); tree None when no
        partner contributed to its first level."""
        run, tree, open_nodes = self.run, Tree(), [0]
        columns = self.bins.sample(self.settings, np.random.default_rng([run.fed.seed, tree_no]))
        plan = self.bins.subset(columns)
        latest: dict[str, PartnerReport] = {}
        failures: list[str] = []
        phases = 0
        for level in range(self.settings.max_depth):
            if not open_nodes:
                break
            nodes = [n for n in run.node_partner if run._active(n)]
            if not nodes:
                break
            replies, failed = self._level(nodes, tree_no, level, open_nodes, tree, columns)
            phases += 1
            failures += failed
            run._stop_declined(tree_no, [rep for _, rep in replies])
            latest.update({rep.partner: rep for _, rep in replies})
            parts = [(r, rep) for r, rep in replies if not rep.declined and "histograms" in r.content]
            if not parts:
                if level == 0:
                    return None, latest, failures
                break
            arrays = [r.content["histograms"].to_torch_state_dict() for r, _ in parts]
            grad = sum(a["grad"].double().numpy() for a in arrays)
            hess = sum(a["hess"].double().numpy() for a in arrays)
            grad_sd = summed_sd([rep.stats_noise_sd for _, rep in parts])    # 0 without DP
            open_nodes = grow_level(tree, open_nodes, grad, hess, plan, self.settings, depth=level,
                                    hess_sd=grad_sd / HESSIAN_SCALE, grad_sd=grad_sd)
            for _, rep in parts:
                if level == 0:
                    run.rounds_trained[rep.partner] = run.rounds_trained.get(rep.partner, 0) + 1
        self.phases.append(phases)
        return tree, latest, failures

    def grow(self) -> tuple[int, str]:
        """Every tree the settings ask for (fewer when no partner can go on): (trees grown, why it ended early)."""
        run, total = self.run, self.settings.trees
        for tree_no in range(1, total + 1):
            started = time.monotonic()
            if not any(run._active(n) for n in run.node_partner):
                return tree_no - 1, f"no partner can train from tree {tree_no}"
            tree, latest, failures = self.grow_tree(tree_no)
            reports = list(latest.values())
            run._privacy_record(tree_no, reports)
            if tree is None:
                return tree_no - 1, f"no partner contributed to tree {tree_no}: " + "; ".join(
                    [*failures, *(f"{r.partner}: {r.declined}" for r in reports if r.declined)])
            self.ensemble.trees.append(tree)
            self.tree_seconds.append(time.monotonic() - started)
            record = {"round": tree_no, "pooled": None, "partners": {}, "train_loss": None, "train_steps": 0,
                      "seconds": round(time.monotonic() - started, 3), "failures": failures,
                      "message_phases": self.phases[-1], "nodes": len(tree.feature),
                      "not_evaluated": "a tree ensemble is evaluated once it is grown (the final model)"}
            run.run_dir.append_round(record)
            contributed = sum(1 for r in reports if not r.declined)
            declined = [r.partner for r in reports if r.declined]
            others = f" ({', '.join(declined)} declined)" if declined else ""
            log(INFO, "tree %2d/%d  grown from the histograms of %d of %d partners%s: %d nodes, %d message phase(s)"
                "  |  %.1f s", tree_no, total, contributed, run.asked, others, len(tree.feature), self.phases[-1],
                record["seconds"], extra=progress_extra(tree_no, total))
        return total, ""

    def finish(self, grown: int, ended: str, started: float, stats_seconds: float) -> dict[str, Any]:
        """The final evaluation, summary.json, the model artefact and the reports (as `FederatedTraining.run`)."""
        run = self.run
        if ended:
            log(WARNING, "%s: ending the run after %d tree(s)", ended, grown, extra=PROGRESS)
        final_started = time.monotonic()
        config = run._config(**{TREES_KEY: self.ensemble.to_json(), "server-round": grown})
        nodes = [n for n, name in run.node_partner.items() if name not in run.dropped]
        messages = [Message(RecordDict({"config": config}), dst_node_id=n, message_type="evaluate") for n in nodes]
        replies, failures = run._final_exchange(messages)
        reports = [run._report(r) for r in replies]
        final = run._record(grown, reports, final_started, failures)
        run._log_exchange(final, reports, trained_round=None, contributed=0, train_loss=None, done=grown)
        run._privacy_record(grown, reports)
        summary = run._summary(final, reports, self.transform, grown, ended, started, stats_seconds)
        summary["rounds_planned"] = self.settings.trees
        summary["stopping"] = {"rule": "trees", "reason": ended or f"tree cap: {grown} tree(s) grown",
                               "monitored": None, "best_round": None, "best_loss": None, "saved_round": grown,
                               "saved": "the ensemble of every tree grown", "cap": self.settings.trees}
        summary[run.fed.model] = {**self.settings.to_dict(), "trees_grown": grown, "message_phases": sum(self.phases),
                           "phases_per_tree": self.phases, "columns": len(self.bins.columns),
                           "bins": {c.column: c.bins for c in self.bins.columns},
                           "base_score": self.ensemble.base_score,
                           "seconds_per_tree": [round(s, 3) for s in self.tree_seconds]}
        metadata = model_metadata(summary, reports, self.transform, run.scenario, run.released_stats,
                                  run.stats_contributors, read_data=bool(run.task.roster))
        metadata["privacy"] = metadata["privacy"].replace("DP-SGD, Opacus", PRIVATE_SENTENCE)
        artefact = ScoringModel(run.scenario.dataset, self.transform, run.fed.model, (), {}, metadata,
                                trees=self.ensemble)
        return run.write_run(summary, artefact, reports)


def grow_trees(run: FederatedTraining, transform: FeatureTransform, started: float, stats_seconds: float
               ) -> dict[str, Any]:
    """Model "gbdt" after round 0: grow, evaluate, write the run directory; → summary.json's dict."""
    growing = TreeGrowing(run, transform)
    grown, ended = growing.grow()
    return growing.finish(grown, ended, started, stats_seconds)
