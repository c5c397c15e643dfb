"""Round 0 of a federated training: the partners' statistics releases → the shared transform.

Two releases from every partner (where each numeric column lives; then its histogram on the window
chosen from the sum — label-split per bin for a scorecard), the checks only the whole federation can
make (label codings, level spellings, bad rates, which partner a node's key was registered for,
enough rows for private statistics) and the fitted `FeatureTransform`. `StatisticsRound` is the part
of `FederatedTraining` that does it: it reads and sets that class's state (nodes, partners, who
stopped, the task sent to the partners, the privacy records), which `FederatedTraining.__init__`
declares.
"""

from __future__ import annotations

import time
from dataclasses import replace
from logging import WARNING

from flwr.app import Message, RecordDict
from flwr.common.logger import log

from fedcredit.credit.consistency import bad_rate_outliers, label_coding_conflict, level_spelling_conflicts
from fedcredit.credit.errors import FederationError, InputError
from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.protocol import BINS, PHASE_KEY, RANGE, STATS_ACTION, PartnerReport
from fedcredit.credit.statistics import BinStats, RangeStats
from fedcredit.privacy.statistics import bins_noise_sd, summed_sd, too_few_rows
from fedcredit.server.progress import PROGRESS
from fedcredit.server.scorecard import SCORECARD, check_bin_rows, transform_noise_sd, woe_characteristics


class StatisticsRound:
    """Round 0 (mixed into `FederatedTraining`; see the module docstring)."""

    def _wait_for_nodes(self) -> list[int]:
        need, start = self.scenario.min_available_nodes, time.monotonic()
        next_note = start + 10
        while len(nodes := list(self.grid.get_node_ids())) < need:
            now = time.monotonic()
            if now - start > self.fed.round_timeout:
                raise FederationError(f"only {len(nodes)} of {need} partner nodes connected within "
                                      f"{self.fed.round_timeout:.0f} s")
            if now > next_note:
                log(WARNING, "waiting for partner nodes: %d of %d connected (a simulation needs "
                    "num-supernodes=%d, e.g. flwr run . local --federation-config \"num-supernodes=%d\")",
                    len(nodes), need, need, need)
                next_note = now + 10
            time.sleep(0.2)
        self.waited = time.monotonic() - start
        return nodes

    def _stats_release(self, nodes: list[int], phase: str) -> list[tuple[Message, PartnerReport]]:
        messages = [Message(RecordDict({"config": self._config(**{PHASE_KEY: phase})}), dst_node_id=n,
                            message_type=f"query.{STATS_ACTION}") for n in nodes]
        replies, failures = self._exchange(messages)
        if failures:
            raise FederationError("the statistics round failed: " + "; ".join(failures))
        return [(r, self._report(r)) for r in replies]

    def fit_transform(self) -> FeatureTransform:
        """Round 0: two statistics releases from every partner → checks → the shared transform."""
        nodes = self._wait_for_nodes()
        replies = self._admit_identities(self._stats_release(nodes, RANGE))
        if len(replies) < self.scenario.min_available_nodes:
            raise FederationError("the statistics round failed: too few replies")
        names = [rep.partner for _, rep in replies]
        if len(set(names)) != len(names):
            raise FederationError(f"two nodes claim the same partner name: {sorted(names)}")
        self.node_partner = {r.metadata.src_node_id: rep.partner for r, rep in replies}
        self.partners = {rep.partner: rep for _, rep in replies}
        for _, rep in replies:
            if rep.declined:
                self.stopped[rep.partner] = {"round": 0, "reason": rep.declined}
                log(WARNING, "partner '%s' stopped at round 0: %s", rep.partner, rep.declined, extra=PROGRESS)
            for warning in rep.warnings:
                self._notice(f"partner '{rep.partner}': {warning}")
        active = [rep for _, rep in replies if not rep.declined]
        if not active:
            raise FederationError("no partner can release its statistics: every privacy budget is spent")
        ranges = {rep.partner: rep.stats for rep in active}
        self._check_consistency(ranges)
        private = any(rep.stats_noise_sd > 0 for rep in active)
        if private:
            self.evaluated = set(self.fed.evaluation_rounds(private=True))
        range_sd = summed_sd([rep.stats_noise_sd for rep in active])
        summed = RangeStats.combine(ranges.values())
        plan = ColumnPlan.fit(summed, self.scenario.dataset, noise_sd=range_sd)
        if private:
            self._check_private_rows(active, summed, plan)
        # Example counts the partners released (noised under DP) are the public FedAvg weights.
        self.task = replace(self.task, plan=plan, weights={r.partner: r.rows_train for r in active})
        self._privacy_record(0, active)
        bins = {r.metadata.src_node_id: rep for r, rep in self._stats_release(
            [n for n in nodes if self.node_partner.get(n) in ranges], BINS)}
        for rep in bins.values():
            if rep.declined:   # release 1 fitted, release 2 does not: the partner cannot train this run either
                self.stopped[rep.partner] = {"round": 0, "reason": rep.declined}
        released = [rep for rep in bins.values() if not rep.declined]
        if not released:
            raise FederationError("no partner can release its statistics: every privacy budget is spent")
        bins_sd = summed_sd([rep.stats_noise_sd for rep in released])
        summed_bins = BinStats.combine(rep.stats for rep in released)
        transform = FeatureTransform.fit(plan, summed_bins, self.scenario.dataset,
                                         noise_sd=transform_noise_sd(summed_bins, bins_sd))
        self.released_stats = (plan, summed, summed_bins)   # kept (post-processed) in the artefact for drift
        self.stats_contributors = len(released)
        for col, why in transform.dropped.items():
            self._notice(f"feature '{col}' is not used: {why}")
        if not transform.n_features:
            raise FederationError("no feature is left to train on: " + "; ".join(
                f"{c}: {w}" for c, w in transform.dropped.items()))
        if self.fed.model == SCORECARD:   # bins, WOE and IV from the summed labelled counts (no new release)
            transform, self.iv, notices = woe_characteristics(self.scenario, plan, summed_bins, transform, bins_sd)
            for notice in notices:
                self._notice(notice)
        self.task = replace(self.task, transform=transform, plan=None)
        self._privacy_record(0, released)
        self.statistics_from = (len(replies), [rep.partner for rep in released],
                                [rep.partner for _, rep in replies if rep.partner in self.stopped])
        return transform

    def _admit_identities(self, replies: list[tuple[Message, PartnerReport]]) -> list[tuple[Message, PartnerReport]]:
        """Deployment with registered keys: a node speaks only under the partner name its key was
        registered for, and only for a partner of the scenario; any other reply is refused (its
        statistics are dropped, the node gets no further message) with a notice saying why."""
        if not self.registered:
            return replies
        members = {p.name for p in self.scenario.partners}
        admitted = []
        for reply, rep in replies:
            node = reply.metadata.src_node_id
            owner = self.registered.get(node)
            if owner is None:
                why = f"node {node} calls itself '{rep.partner}' but its key is registered for no partner"
            elif owner != rep.partner:
                why = (f"node {node} calls itself '{rep.partner}' but its key is registered for partner "
                       f"'{owner}': a node may take part only under the name its key was registered for")
            elif owner not in members:
                why = f"node {node} (partner '{owner}') is not a partner of this scenario"
            else:
                admitted.append((reply, rep))
                continue
            self._notice(f"refused {why}")
            self.refused.append(why)
        return admitted

    def _check_consistency(self, ranges: dict[str, RangeStats]) -> None:
        """What no single partner can see: label codings and level spellings; bad-rate outliers warn."""
        conflict = label_coding_conflict({p: s.label_values for p, s in ranges.items()}, self.scenario.dataset.bad)
        if conflict:
            raise InputError(conflict, source=f"scenario '{self.scenario.name}'",
                             field=self.scenario.dataset.label)
        spellings = level_spelling_conflicts({p: {c: list(v) for c, v in s.levels.items()} for p, s in ranges.items()})
        if spellings:
            raise InputError("; ".join(spellings), source=f"scenario '{self.scenario.name}'")
        for warning in bad_rate_outliers({p: (s.bad, s.rows) for p, s in ranges.items()}):
            self._notice(warning)

    def _check_private_rows(self, active: list[PartnerReport], summed: RangeStats, plan: ColumnPlan) -> None:
        """Before release 2: refuse if the consortium is too small for its statistics noise."""
        sigmas = [float(rep.privacy["noise_multiplier"]) for rep in active if rep.stats_noise_sd > 0]
        bins_sd = summed_sd([bins_noise_sd(s, len(plan.grids)) for s in sigmas])
        refusal = too_few_rows(summed.rows, bins_sd, noise_multiplier=max(sigmas))
        if refusal:
            raise FederationError(refusal)
        check_bin_rows(self.scenario, plan, summed.rows, sigmas)
