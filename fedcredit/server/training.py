"""The coordinator's round loop on a Flower Grid.

Round 0 (`statistics_round.StatisticsRound`, mixed in) asks every partner for column statistics
and fits the shared transform. Rounds 1..R send the global model
for local training; a reply also evaluates the model it received when the schedule asks
(every round without DP; under DP each evaluation is a charged release, so by default
only the final model is evaluated). The strategy object (FedAvg/FedProx/FedAdam,
possibly wrapped for client-level DP) chooses nodes and aggregates; this loop keeps the
records. A partner may decline a round (its privacy budget): the others go on, and the
run ends cleanly when no partner can train. R is a cap: `fedcredit.server.stopping` ends the run
when the pooled validation loss the partners report beside their updates stops improving (never
under record-level DP), and the best model is the one saved; `sampling` picks the partners a round
asks; a scorecard's points are made once training ends (`scorecard`).

About 430 lines, a little over the ~400 guideline: the plain and the SecAgg+ rounds, the stopping
rule and the final evaluation share one state (nodes, partners, who stopped, records); what the model
artefact says about itself is in `model_record`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from logging import INFO, WARNING
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.errors import FederationError
from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.metrics import UNDEFINED, ScoreHistogram, undefined_names
from fedcredit.credit.model import build_model
from fedcredit.credit.protocol import (
    EVALUATE_KEY,
    REPORT_KEY,
    TASK_KEY,
    VALIDATE_KEY,
    PartnerReport,
    TaskConfig,
)
from fedcredit.credit.rundir import MODEL, RunDirectory
from fedcredit.credit.scenario import Scenario
from fedcredit.credit.scorecard import Scorecard
from fedcredit.credit.statistics import BinStats, RangeStats
from fedcredit.privacy.report import write_privacy_report
from fedcredit.reports.model_report import pooled_calibration, released_evaluations, write_model_report
from fedcredit.server.fairness import FairnessRound
from fedcredit.server.model_record import model_metadata
from fedcredit.server.progress import PROGRESS, Exchange, exchange_line, progress_extra, start_line, statistics_line
from fedcredit.server.sampling import round_sample
from fedcredit.server.scorecard import SCORECARD
from fedcredit.server.statistics_round import StatisticsRound
from fedcredit.server.stopping import StoppingRule, pooled_validation_loss
from fedcredit.server.strategy import partner_level_dp_statement


def mean_train_loss(reports: Iterable[PartnerReport]) -> float | None:
    """Row-weighted mean train loss of the partners that report one; None if none does."""
    known = [r for r in reports if r.train_loss is not None and math.isfinite(r.train_loss)]
    weight = sum(max(r.rows_train or 1, 1) for r in known)
    return sum(r.train_loss * max(r.rows_train or 1, 1) for r in known) / weight if known else None


class FederatedTraining(StatisticsRound, FairnessRound):
    """Runs one federated training of `scenario` and writes its run directory."""

    def __init__(self, grid: Grid, scenario: Scenario, run_dir: RunDirectory, strategy: Strategy,
                 *, simulation: bool, context: Context | None = None, secure: bool = False,
                 registered: Mapping[int, str] | None = None):
        self.grid, self.scenario, self.run_dir, self.strategy = grid, scenario, run_dir, strategy
        self.fed = scenario.federation
        self.context, self.secure = context, secure
        self.registered = dict(registered or {})           # node id → the partner its key was registered for
        self.dropped: dict[str, int] = {}                  # partner → round in which it stopped answering
        self._aggregator = None                             # SecAgg+ state, built after round 0
        # In simulation each node learns its partner from the roster; in deployment it names itself.
        # A DP partner plans (and budgets) the evaluations of the private schedule.
        self.task = TaskConfig(scenario.dataset, self.fed, roster=scenario.partners if simulation else (),
                               run=run_dir.run_id, run_dir=str(run_dir.path) if simulation else "",
                               evaluations=scenario.planned_evaluations, trees=scenario.trees)
        self.evaluated: set[int] = set(self.fed.evaluation_rounds(private=False))   # set after round 0
        self.notices: list[str] = []                      # what the coordinator warned about (also in the summary)
        self.refused: list[str] = []                      # nodes refused for their identity (also in the summary)
        self.halted = ""                                   # why a secure round could not complete
        self.partners: dict[str, PartnerReport] = {}
        self.node_partner: dict[int, str] = {}
        self.stopped: dict[str, dict[str, Any]] = {}      # partner → {round, reason}
        self.privacy_rounds: list[dict[str, Any]] = []
        self.releases: dict[str, list[dict[str, Any]]] = {}   # partner → its lifetime releases (parameters)
        self._told: set[tuple[str, str]] = set()           # (partner, reason) already warned about
        self.asked = 0                                     # partners sent the latest round's message
        self.waited = 0.0                                  # seconds round 0 waited for the partner nodes
        self.statistics_from: tuple[int, list[str], list[str]] = (0, [], [])   # round 0: asked, used, declined
        self.released_stats: tuple[ColumnPlan | None, RangeStats | None, BinStats | None] = (None, None, None)
        self.stats_contributors = 0
        self.asked_to_train: list[int] = []                # node ids the current round asks ([federation] fraction_train)
        self.sampled: dict[int, list[str]] = {}            # round → partners asked, when fraction_train < 1
        self.rounds_trained: dict[str, int] = {}           # partner → rounds its update was applied in
        self.validate = False                              # partners hold validation rows out (the stopping rule)
        self.iv: dict[str, float] = {}                     # scorecard: information value per characteristic

    # -- messaging -----------------------------------------------------------------------
    def _config(self, **extra: Any) -> ConfigRecord:
        return ConfigRecord({TASK_KEY: self.task.to_json(), **extra})

    def _exchange(self, messages: Iterable[Message]) -> tuple[list[Message], list[str]]:
        messages = list(messages)
        replies = list(self.grid.send_and_receive(messages, timeout=self.fed.round_timeout))
        ok = [r for r in replies if not r.has_error()]
        failures = [f"{self._who(r.metadata.src_node_id)}: {r.error.reason}" for r in replies if r.has_error()]
        missing = len(messages) - len(replies)
        if missing:
            failures.append(f"{missing} node(s) did not reply within {self.fed.round_timeout:g} s "
                            "([federation] round_timeout)")
        for failure in failures:
            log(WARNING, "partner failure: %s", failure)
        return ok, failures

    def _final_exchange(self, messages: list[Message]) -> tuple[list[Message], list[str]]:
        """The final evaluation's exchange (`asked` counts its messages); a notice when nobody answers it."""
        self.asked = len(messages)
        replies, failures = self._exchange(messages)
        if not messages:
            self._notice("final evaluation: no partner left to ask (every partner dropped out or was declined)")
        elif not replies:
            self._notice("final evaluation: no partner replied: " + "; ".join(failures))
        return replies, failures

    def _who(self, node_id: int) -> str:
        return f"partner '{self.node_partner[node_id]}'" if node_id in self.node_partner else f"node {node_id}"

    @staticmethod
    def _report(reply: Message) -> PartnerReport:
        return PartnerReport.from_json(str(reply.content["report"][REPORT_KEY]))

    # -- the run -------------------------------------------------------------------------
    def _notice(self, text: str) -> None:
        self.notices.append(text)
        log(WARNING, "%s", text, extra=PROGRESS)

    def _privacy_record(self, rnd: int, reports: list[PartnerReport]) -> None:
        for r in reports:
            if r.privacy and "releases" in r.privacy:
                self.releases[r.partner] = r.privacy.pop("releases")
        self.privacy_rounds.append({"round": rnd, "partners": {r.partner: r.privacy for r in reports
                                                               if r.privacy and r.privacy.get("mode") == "sample"}})

    def _record(self, rnd: int, reports: list[PartnerReport], started: float, failures: list[str],
                train_loss: float | None = None, train_steps: int = 0) -> dict[str, Any]:
        evaluated = [r for r in reports if r.evaluation is not None]
        per_partner = {r.partner: r.evaluation.metrics() for r in evaluated}
        pooled = ScoreHistogram.combine(r.evaluation for r in evaluated).metrics() if evaluated else None
        record = {"round": rnd, "pooled": pooled, "partners": per_partner, "train_loss": train_loss,
                  "train_steps": train_steps, "seconds": round(time.monotonic() - started, 3),
                  "failures": failures}
        if rnd in self.sampled:
            record["asked_to_train"] = self.sampled[rnd]
        if not evaluated:
            record["not_evaluated"] = ("under record-level DP each evaluation is a charged release: only the "
                                       "scheduled models are evaluated ([federation] evaluate_every)")
        self.run_dir.append_round(record)
        self._warn_undefined(per_partner)
        return record

    def _log_exchange(self, record: dict[str, Any], reports: list[PartnerReport], *, trained_round: int | None,
                      contributed: int, train_loss: float | None, done: int, notes: tuple[str, ...] = ()) -> None:
        """Log the progress line of the exchange whose replies `record` holds (`trained_round` None: the
        final evaluation, always asked for); `done` rounds are trained."""
        line = exchange_line(Exchange(
            total=self.fed.rounds, trained_round=trained_round, evaluated_round=record["round"], asked=self.asked,
            trained=contributed, declined=tuple(r.partner for r in reports if r.declined),
            failed=max(self.asked - len(reports), 0), train_loss=train_loss, pooled=record["pooled"],
            evaluated_by=len(record["partners"]), scheduled=trained_round is None or record["round"] in self.evaluated,
            seconds=record["seconds"], notes=notes))
        # the final line completes the bar also when the run stopped before its last planned round
        log(INFO, "%s", line, extra=progress_extra(done, done if trained_round is None and done else self.fed.rounds))

    def _warn_undefined(self, per_partner: dict[str, dict[str, Any]]) -> None:
        """Tell once per partner (and reason) why some of its metrics are undefined."""
        for name, metrics in per_partner.items():
            reason = metrics.get(UNDEFINED)
            if reason and (name, reason) not in self._told:
                self._told.add((name, reason))
                log(WARNING, "partner '%s': %s; its %s are undefined and shown as n/a (null in the JSON outputs)",
                    name, reason, undefined_names(metrics), extra=PROGRESS)

    def _active(self, node_id: int) -> bool:
        name = self.node_partner.get(node_id)
        return name is not None and name not in self.stopped and name not in self.dropped

    def _note_dropouts(self, rnd: int, asked: list[int], answered: set[int]) -> None:
        for nid in asked:
            if nid not in answered and nid in self.node_partner:
                self.dropped[self.node_partner[nid]] = rnd
                log(WARNING, "partner '%s' dropped out in round %d (no reply)", self.node_partner[nid], rnd,
                    extra=PROGRESS)

    def _train_messages(self, rnd: int, arrays: ArrayRecord) -> list[Message]:
        config = self._config(**{EVALUATE_KEY: (rnd - 1) in self.evaluated, VALIDATE_KEY: self.validate})
        messages = self.strategy.configure_train(rnd, arrays, config, self.grid)
        return [m for m in messages if m.metadata.dst_node_id in self.asked_to_train]

    def _plain_round(self, rnd: int, arrays: ArrayRecord
                     ) -> tuple[ArrayRecord | None, list[PartnerReport], list[str], float | None]:
        """One round through the strategy: (aggregate or None, reports, failures, train loss)."""
        messages = self._train_messages(rnd, arrays)
        self.asked = len(messages)
        replies, failures = self._exchange(messages)
        self._note_dropouts(rnd, [m.metadata.dst_node_id for m in messages], {r.metadata.src_node_id for r in replies})
        reports = [self._report(r) for r in replies]
        updates = [r for r, rep in zip(replies, reports) if not rep.declined]
        if not updates:
            return None, reports, failures, None
        new_arrays, _ = self.strategy.aggregate_train(rnd, updates)
        if new_arrays is None:
            raise FederationError(f"round {rnd}: aggregation failed")
        return new_arrays, reports, failures, mean_train_loss(rep for rep in reports if not rep.declined)

    def _secure_round(self, rnd: int, arrays: ArrayRecord
                      ) -> tuple[ArrayRecord | None, list[PartnerReport], list[str], float | None]:
        """One SecAgg+ round: the coordinator sees only the weighted sum of the updates."""
        from fedcredit.server.secure import SecureAggregator

        if self._aggregator is None:
            self._aggregator = SecureAggregator(self.grid, self.context, timeout=self.fed.round_timeout,
                                                max_weight=max(max(self.task.weights.values(), default=1), 1))
        nodes = list(self.asked_to_train)
        self.asked = len(nodes)
        config: dict[str, Any] = {TASK_KEY: self.task.to_json(), "server-round": rnd,
                                  EVALUATE_KEY: (rnd - 1) in self.evaluated, VALIDATE_KEY: self.validate}
        if self.fed.strategy == "fedprox":
            config["proximal-mu"] = self.fed.proximal_mu
        try:
            result = self._aggregator.round(rnd, arrays, config, nodes)
        except Exception as exc:  # the legacy workflow raises on e.g. an all-zero total weight
            raise FederationError(f"round {rnd}: secure aggregation failed: {exc}") from exc
        if result.halted:
            # Only the nodes that stopped answering are gone; the others are alive, and their reports
            # (sent in clear beside the masked vectors) say whether they trained or declined.
            self._note_dropouts(rnd, nodes, set(result.alive))
            self.halted = (f"secure aggregation halted in round {rnd} at the '{result.halted}' stage: "
                           f"{len(result.alive)} of {len(nodes)} partner(s) still answering, too few to hide any "
                           "one update; the model of the last completed round is kept")
            reports = [PartnerReport.from_json(str(f.metrics[REPORT_KEY])) for f in result.reports]
            failures = [f"{self._who(n)}: stopped answering" for n in nodes if n not in result.alive]
            return None, reports, [*failures, self.halted], None
        answered = {nid for nid, _ in result.results}
        self._note_dropouts(rnd, nodes, set(result.alive))
        failures = [f"{self._who(n)}: no masked update" for n in nodes if n not in answered]
        failures += [f"{self._who(n)}: stopped answering after its masked update (it is in this round's sum)"
                     for n in answered - result.alive]
        reports = [PartnerReport.from_json(str(fitres.metrics[REPORT_KEY])) for _, fitres in result.results]
        trained = [r for r in reports if not r.declined]
        if result.arrays is None or not trained:
            return None, reports, failures, None
        return result.arrays, reports, failures, mean_train_loss(trained)

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        total = self.scenario.trees.trees if self.scenario.trees else self.fed.rounds   # gbdt: a tree a round
        log(INFO, "%s", start_line(self.scenario.name, len(self.scenario.partners), self.fed.model,
                                   self.fed.strategy, total), extra=progress_extra(0, total))
        transform = self.fit_transform()
        stats_seconds = time.monotonic() - started
        asked, used, declined = self.statistics_from
        log(INFO, "%s", statistics_line(total, asked=asked, contributed=len(used), declined=declined,
                                        features=transform.n_features, seconds=stats_seconds, waited=self.waited),
            extra=progress_extra(0, total))
        if self.scenario.trees is not None:   # model "gbdt": trees grown from the partners' histograms
            from fedcredit.server.gbdt import grow_trees

            return grow_trees(self, transform, started, stats_seconds)
        model = build_model(self.fed.model, transform.n_features, hidden=self.fed.hidden, seed=self.fed.seed)
        arrays = ArrayRecord(model.state_dict())
        last_loss, last_steps, trained_rounds, ended = None, 0, 0, ""
        # any record-level DP policy (round 0's statements): the rule reads no value and asks for none
        private = any((r.privacy or {}).get("mode") == "sample" for r in self.partners.values())
        rule = StoppingRule.from_settings(self.fed.stop, self.fed.rounds, self.fed.patience, self.fed.min_delta,
                                          private=private)
        self.validate = rule.monitors
        best: tuple[ArrayRecord, dict[str, Any], list[PartnerReport]] | None = None   # model, its test record, replies
        round_started = time.monotonic()
        for rnd in range(1, self.fed.rounds + 1):
            active = [n for n in self.node_partner if self._active(n)]
            if not active:
                ended = f"no partner can train from round {rnd}"
                break
            if self.secure and len(active) < 2:
                ended = (f"only partner '{self.node_partner[active[0]]}' is left to train from round {rnd}: a secure "
                         "sum of one update would be that update, so the run ends")
                break
            self.asked_to_train = round_sample({n: self.node_partner[n] for n in active}, self.fed.fraction_train,
                                               seed=self.fed.seed, server_round=rnd, minimum=2 if self.secure else 1)
            if self.fed.fraction_train < 1:
                self.sampled[rnd] = sorted(self.node_partner[n] for n in self.asked_to_train)
            new_arrays, reports, failures, loss = (self._secure_round if self.secure else self._plain_round)(rnd, arrays)
            # A reply evaluates (when scheduled) the model it received: the previous round's result.
            record = self._record(rnd - 1, reports, round_started, failures, last_loss, last_steps)
            contributed = sum(1 for r in reports if not r.declined) if new_arrays is not None else 0
            self._log_exchange(record, reports, trained_round=rnd, contributed=contributed, train_loss=loss,
                               done=rnd if new_arrays is not None else trained_rounds,
                               notes=("secure aggregation halted: no update applied",) if self.halted else ())
            if record["pooled"] is not None and rule.observe(rnd - 1, pooled_validation_loss(reports)[0]):
                best = (arrays, record, reports)
            if self.halted:     # what was sent before the halt was released (and charged): it is recorded
                ended = self.halted
                self._stop_declined(rnd, reports)
                self._privacy_record(rnd, reports)
                break
            if not reports:
                ended = f"round {rnd}: no partner replied: " + "; ".join(failures)
                break
            round_started = time.monotonic()
            self._stop_declined(rnd, reports)
            self._privacy_record(rnd, reports)
            if new_arrays is None:
                ended = f"no partner can train from round {rnd}"
                break
            arrays, trained_rounds, last_loss = new_arrays, rnd, loss
            for rep in reports:
                if not rep.declined:
                    self.rounds_trained[rep.partner] = self.rounds_trained.get(rep.partner, 0) + 1
            last_steps = sum(rep.steps for rep in reports)
            if rule.stop(trained_rounds):
                break
        if ended:
            log(WARNING, "%s: ending the run after %d trained round(s)", ended, trained_rounds, extra=PROGRESS)
        card, transform, arrays = self._points(transform, arrays)
        final_started = time.monotonic()
        messages = [m for m in self.strategy.configure_evaluate(trained_rounds, arrays,
                                                                self._config(**{VALIDATE_KEY: self.validate}), self.grid)
                    if m.metadata.dst_node_id in self.node_partner
                    and self.node_partner[m.metadata.dst_node_id] not in self.dropped]
        replies, failures = self._final_exchange(messages)
        final_reports = [self._report(r) for r in replies]
        final = self._record(trained_rounds, final_reports, final_started, failures, last_loss, last_steps)
        self._log_exchange(final, final_reports, trained_round=None, contributed=0, train_loss=None,
                           done=trained_rounds)
        self._privacy_record(trained_rounds, final_reports)
        observed = rule.history and rule.history[-1][0] == trained_rounds   # the loop already saw this model
        if not observed and final["pooled"] is not None and rule.observe(
                trained_rounds, pooled_validation_loss(final_reports)[0]):
            best = (arrays, final, final_reports)
        saved_round = trained_rounds
        # a scorecard's points come from the last model (its WOE weights were turned into points above)
        if best is not None and card is None and rule.best_round != trained_rounds:   # keep the best, as scored then
            arrays, final = best[0], best[1]
            final_reports = [r for r in best[2] if r.partner not in self.dropped]
            saved_round = rule.best_round
            log(INFO, "kept the model of round %d: the lowest pooled validation loss (%.4f); its metrics are "
                "those of round %d's evaluation on the test rows", saved_round, rule.best_loss, saved_round + 1,
                extra=PROGRESS)

        fairness, fairness_settings, final_reports = self.fairness(arrays, saved_round, final_reports, done=trained_rounds)
        summary = self._summary(final, final_reports, transform, trained_rounds, ended, started, stats_seconds)
        summary["fairness"], summary["fairness_settings"] = fairness, fairness_settings
        summary["stopping"] = rule.summary(saved_round=saved_round, ended=ended)
        if card is not None and rule.best_round not in (None, saved_round):
            summary["stopping"]["note"] = (f"the scorecard's points are those of the last model (round {saved_round}), "
                                           f"not of round {rule.best_round}'s lower validation loss")
        if card is not None:
            summary["scorecard"] = card.summary()
            card.write(self.run_dir.path)
        artefact = ScoringModel(self.scenario.dataset, transform, self.fed.model, self.fed.hidden,
                                arrays.to_torch_state_dict(),
                                model_metadata(summary, final_reports, transform, self.scenario, self.released_stats,
                                               self.stats_contributors, read_data=bool(self.task.roster)))
        return self.write_run(summary, artefact, final_reports)

    def write_run(self, summary: dict[str, Any], artefact: ScoringModel, reports: list[PartnerReport]
                  ) -> dict[str, Any]:
        """The run directory's outputs: the model artefact, `summary.json` (with the model id and the pooled
        calibration from the released evaluations), the privacy and model-risk reports."""
        artefact.save(self.run_dir.file(MODEL))
        summary["model_id"] = artefact.id
        evaluations = released_evaluations({r.partner: r.evaluation for r in reports})
        summary["calibration"] = pooled_calibration(evaluations)
        self.run_dir.write_summary(summary)
        write_privacy_report(self.run_dir.path, summary, self.privacy_rounds, self.releases)
        write_model_report(self.run_dir.path, summary, evaluations,
                           {n: r.stats for n, r in self.partners.items() if isinstance(r.stats, RangeStats)})
        log(INFO, "run directory: %s", self.run_dir.path, extra=PROGRESS)
        return summary

    def _points(self, transform: FeatureTransform, arrays: ArrayRecord
                ) -> tuple[Scorecard | None, FeatureTransform, ArrayRecord]:
        """A scorecard's points per bin from the trained WOE model; the final evaluation and the artefact
        score with them (card None, the rest unchanged: any other model)."""
        if self.fed.model != SCORECARD:
            return None, transform, arrays
        card = Scorecard.from_model(transform, arrays.to_torch_state_dict(), self.scenario.scorecard, self.iv)
        transform = card.scoring_transform(transform)
        self.task = replace(self.task, transform=transform)
        return card, transform, ArrayRecord(card.scoring_state())

    def _stop_declined(self, rnd: int, reports: list[PartnerReport]) -> None:
        for rep in reports:
            if rep.declined:
                self.stopped[rep.partner] = {"round": rnd, "reason": rep.declined}
                log(WARNING, "partner '%s' stopped at round %d: %s", rep.partner, rnd, rep.declined, extra=PROGRESS)

    def _rows(self, partner: str) -> int | None:
        return self.task.weights.get(partner)

    def _summary(self, final: dict[str, Any], reports: list[PartnerReport], transform: FeatureTransform,
                 trained_rounds: int, ended: str, started: float, stats_seconds: float) -> dict[str, Any]:
        order = {p.name: i for i, p in enumerate(self.scenario.partners)}
        partners = []
        for r in sorted(reports, key=lambda r: order.get(r.partner, len(order))):
            privacy = dict(r.privacy or {"mode": "off"})
            if r.partner in self.stopped:
                privacy.update(status="stopped", stopped_round=self.stopped[r.partner]["round"],
                               stopped_reason=self.stopped[r.partner]["reason"])
            partners.append({"name": r.partner, "kind": r.kind,
                             "rows_train": r.rows_train if r.rows_train is not None else self._rows(r.partner),
                             "rows_test": r.rows_test, "federated": final["partners"].get(r.partner),
                             "rounds_trained": self.rounds_trained.get(r.partner, 0), "privacy": privacy})
        for name, rnd in self.dropped.items():   # no final evaluation from a partner that is gone
            partners.append({"name": name, "kind": self.partners[name].kind, "rows_train": self.partners[name].rows_train,
                             "rows_test": self.partners[name].rows_test, "federated": None,
                             "rounds_trained": self.rounds_trained.get(name, 0),
                             "privacy": dict(self.partners[name].privacy or {"mode": "off"}), "dropped_round": rnd})
        return {
            "scenario": self.scenario.name,
            "run": self.task.run,
            "model": self.fed.model,
            "strategy": self.fed.strategy,
            "rounds": trained_rounds,
            "rounds_planned": self.fed.rounds,
            "fraction_train": self.fed.fraction_train,
            "ended_early": ended or None,
            "secure_aggregation": self.secure,
            "dropped": [{"partner": n, "round": r} for n, r in self.dropped.items()],
            "declined": [{"partner": n, "round": v["round"], "reason": v["reason"]} for n, v in self.stopped.items()],
            "federated": final["pooled"] or {
                "auc": None, "ks": None, "gini": None, "brier": None, "logloss": None, "n": 0, "bad_rate": None,
                UNDEFINED: "no partner released an evaluation of the final model (see partners[].privacy)"},
            "partners": partners,
            "client_dp": (partner_level_dp_statement(self.strategy, self.scenario.client_dp, len(reports))
                          if self.scenario.client_dp else None),
            "features": transform.feature_names,
            "features_dropped": dict(transform.dropped),
            "notices": list(self.notices),
            "refused_nodes": list(self.refused),
            "artefact": MODEL,
            "timing": {"seconds_total": round(time.monotonic() - started, 3),
                       "seconds_statistics_round": round(stats_seconds, 3)},
        }
