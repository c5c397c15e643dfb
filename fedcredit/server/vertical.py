"""The coordinator's side of a vertical training: relay, dealer, records.

Same ServerApp, same ClientApp as a horizontal run, selected by `[federation] partitioning = "vertical"`.
The coordinator never sees a key, a row or a party-to-party payload in the clear: it forwards sealed
blobs, deals each secure product's correlated randomness (`protection.secure_product`: it knows the masks,
never the masked matrices, which are sealed), and records what the parties report. Phases (see
`fedcredit.clients.vertical`): hello, psi-blind, psi-reblind, psi-align (skipped when every party has
cached this alignment), gram-1, gram-2, solve, score, evaluate — their number does not grow with rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from logging import INFO, WARNING
from typing import Any

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid

from fedcredit.credit.atomic import atomic_write_json
from fedcredit.credit.customer_keys import alignment_id, shape_hint
from fedcredit.credit.errors import FederationError
from fedcredit.credit.metrics import UNDEFINED
from fedcredit.credit.protocol import REPORT_KEY, TASK_KEY, PartnerReport, TaskConfig
from fedcredit.credit.rundir import RunDirectory
from fedcredit.credit.scenario import Scenario
from fedcredit.privacy.report import write_privacy_report
from fedcredit.protection.secure_product import dealer_shares, new_seed
from fedcredit.server.progress import PROGRESS, progress_extra
from fedcredit.server.statistics_round import StatisticsRound

VERTICAL_ACTION = "vertical"
PSI_PROTOCOL = "ECDH-PSI (X25519, semi-honest; label holder as hub)"
COMBINER_FORMAT = "fedcredit-vertical/1"
COMBINER = "vertical_model.json"     # the combining step; each party keeps its own part


class VerticalTraining(StatisticsRound):
    """One vertical training of `scenario` into `run_dir` (see the module docstring)."""

    def __init__(self, grid: Grid, scenario: Scenario, run_dir: RunDirectory, *, simulation: bool,
                 context: Context | None = None, registered: Mapping[int, str] | None = None):
        self.grid, self.scenario, self.run_dir, self.context = grid, scenario, run_dir, context
        self.fed = scenario.federation
        self.registered = dict(registered or {})
        self.task = TaskConfig(scenario.dataset, self.fed, roster=scenario.partners if simulation else (),
                               run=run_dir.run_id, run_dir=str(run_dir.path) if simulation else "")
        self.notices: list[str] = []
        self.refused: list[str] = []
        self.node_of: dict[str, int] = {}
        self.waited = 0.0
        self.phases: list[dict[str, Any]] = []
        self.holder = scenario.label_holder.name
        self.order = [self.holder] + [p.name for p in scenario.partners if p.name != self.holder]
        self.privacy_rounds: list[dict[str, Any]] = []
        self.releases: dict[str, list[dict[str, Any]]] = {}
        self.reports: dict[str, PartnerReport] = {}
        self.keys: dict[str, int | None] = {}
        self.dropped: dict[str, str] = {}                  # "party:column" → why its transform does not use it              # party → customers in its file (its set size)

    # -- messaging ----------------------------------------------------------------------
    def _notice(self, text: str) -> None:
        self.notices.append(text)
        log(WARNING, "%s", text, extra=PROGRESS)

    def _message(self, node: int, phase: str, info: Mapping[str, Any], inputs: Mapping[str, bytes]) -> Message:
        config = ConfigRecord({TASK_KEY: self.task.to_json(), "vphase": phase, "vinfo": json.dumps(dict(info))})
        return Message(RecordDict({"config": config, "vin": ConfigRecord(dict(inputs))}), dst_node_id=node,
                       message_type=f"query.{VERTICAL_ACTION}")

    def _phase(self, phase: str, asks: Mapping[str, tuple[Mapping[str, Any], Mapping[str, bytes]]] | None = None,
               *, nodes: list[int] | None = None) -> dict[str, tuple[dict[str, bytes], dict[str, Any], PartnerReport]]:
        """Send `phase` to the named parties (or to `nodes`, before names are known) and collect
        {party: (outputs, info, report)}; any failure or refusal ends the run (FederationError)."""
        started = time.monotonic()
        if nodes is not None:
            messages = [self._message(n, phase, {}, {}) for n in nodes]
        else:
            messages = [self._message(self.node_of[p], phase, info, inputs) for p, (info, inputs) in (asks or {}).items()]
        replies = list(self.grid.send_and_receive(messages, timeout=self.fed.round_timeout))
        failures = [f"{self._who(r.metadata.src_node_id)}: {r.error.reason}" for r in replies if r.has_error()]
        if len(replies) < len(messages):
            failures.append(f"{len(messages) - len(replies)} party node(s) did not reply within "
                            f"{self.fed.round_timeout:g} s ([federation] round_timeout)")
        if failures:
            raise FederationError(f"vertical phase '{phase}' failed: " + "; ".join(failures))
        out: dict[str, tuple[dict[str, bytes], dict[str, Any], PartnerReport]] = {}
        for r in replies:
            report = PartnerReport.from_json(str(r.content["report"][REPORT_KEY]))
            if nodes is not None:
                self._identify(r.metadata.src_node_id, report)
            info = json.loads(str(r.content["vinfo"]["json"]))
            if report.declined or info.get("declined"):
                why = str(report.declined or info["declined"]).removeprefix("declined: ")
                raise FederationError(f"partner '{report.partner}' declined phase '{phase}': {why}")
            out[report.partner] = ({k: bytes(v) for k, v in r.content["vout"].items()}, info, report)
            self.reports[report.partner] = report
        seconds = time.monotonic() - started
        self.phases.append({"phase": phase, "parties": sorted(out), "seconds": round(seconds, 3),
                            "bytes_relayed": sum(len(b) for o, _, _ in out.values() for b in o.values())})
        log(INFO, "vertical phase %-11s %d part%s  %.1f s", phase, len(out), "y" if len(out) == 1 else "ies",
            seconds, extra=progress_extra(len(self.phases), 9))
        return out

    def _who(self, node: int) -> str:
        name = next((p for p, n in self.node_of.items() if n == node), None) or self.registered.get(node)
        return f"partner '{name}' (node {node})" if name else f"node {node}"

    def _check_roles(self, said: Mapping[str, Mapping[str, Any]]) -> None:
        """Each party's own config (its partner.toml in deployment) must declare the role and the columns its
        entry in the coordinator's scenario gives it, before any PSI message (FederationError naming both)."""
        for p in self.scenario.partners:
            info, spec = said[p.name], p.spec
            wrong = []
            if bool(info["label_holder"]) != p.holds_label:
                wrong.append(f"it declares itself the label holder (label '{info['declared_label']}')" if info["label_holder"]
                             else f"it declares no label, but the scenario makes it the label holder ('{spec.label}')")
            elif info["declared_label"] != spec.label:
                wrong.append(f"its label column is '{info['declared_label']}', the scenario's '{spec.label}'")
            theirs, ours = set(info["declared_columns"]), set(spec.features)
            if theirs != ours:
                wrong.append(f"columns only in its own config: {sorted(theirs - ours)}, only in the scenario: "
                             f"{sorted(ours - theirs)}")
            if wrong:
                raise FederationError(
                    f"partner '{p.name}' does not declare the role the scenario gives it: {'; '.join(wrong)}. Make "
                    f"its [partner] table (label, numeric, categorical) and its [[partners]] entry in "
                    f"{self.scenario.source or 'the scenario'} agree")

    def _identify(self, node: int, report: PartnerReport) -> None:
        members = {p.name for p in self.scenario.partners}
        owner = self.registered.get(node) if self.registered else report.partner
        if owner != report.partner or report.partner not in members:
            why = (f"node {node} calls itself '{report.partner}', registered for "
                   f"{repr(owner) if owner else 'no partner'}; scenario parties {sorted(members)}")
            self.refused.append(why)
            raise FederationError(f"refused {why}")
        self.node_of[report.partner] = node

    # -- the run ------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        nodes = self._wait_for_nodes()
        hello = self._phase("hello", nodes=nodes)
        missing = sorted(set(self.order) - set(hello))
        if missing:
            raise FederationError(f"parties {missing} did not answer (connected nodes: {len(nodes)})")
        self._check_roles({p: hello[p][1] for p in self.order})
        self.keys = {p: hello[p][1].get("keys") for p in self.order}
        channels = {p: hello[p][1]["channel"] for p in self.order}
        fingerprints = {p: hello[p][1]["keys_fingerprint"] for p in self.order}
        ident = alignment_id(fingerprints)
        cached = all(ident in hello[p][1]["cached"] for p in self.order)
        align_started = time.monotonic()
        common = {"channels": channels, "alignment": ident, "label_holder": self.holder}
        intersection, positions = None, {}
        if not cached:
            blinded = self._phase("psi-blind", {p: (common, {}) for p in self.order})
            passive = self.order[1:]
            hub = blinded[self.holder][0]["blinded"]
            reblind = {p: (common, {"hub": hub}) for p in passive}
            reblind[self.holder] = (common, {f"party.{p}": blinded[p][0]["blinded"] for p in passive})
            again = self._phase("psi-reblind", reblind)
            aligned = self._phase("psi-align", {self.holder: (common, {f"reblinded.{p}": again[p][0]["reblinded"]
                                                                         for p in passive})})
            intersection = int(aligned[self.holder][1]["intersection"])
            positions = {p: aligned[self.holder][0][f"positions.{p}"] for p in passive}
        align_seconds = time.monotonic() - align_started
        if intersection is not None and intersection < self.fed.min_rows:
            hint = shape_hint({p: hello[p][1]["key_shape"] for p in self.order if "key_shape" in hello[p][1]})
            raise FederationError(f"the parties share {intersection} customers, fewer than min_rows = "
                                  f"{self.fed.min_rows}: check that the `id` columns hold the same kind of key "
                                  "(e.g. the same customer number) in every party's file"
                                  + (f"; {hint}" if hint else ""))
        pairs = [{"id": f"{a}|{b}", "left": a, "right": b, "seed_left": new_seed(), "seed_right": new_seed()}
                 for i, a in enumerate(self.order) for b in self.order[i + 1:]]
        asks = {}
        for p in self.order:
            mine = [q for q in pairs if p in (q["left"], q["right"])]
            info = {**common, "pairs": [_pair_view(q, p) for q in mine]}
            inputs = {f"seed.{q['id']}": q["seed_left"] if q["left"] == p else q["seed_right"] for q in mine}
            if p in positions:
                inputs["positions"] = positions[p]
            asks[p] = (info, inputs)
        first = self._phase("gram-1", asks)
        rows = {first[p][1]["rows"] for p in self.order}
        if len(rows) != 1:
            raise FederationError(f"the parties' aligned training rows differ ({sorted(rows)}): their files changed "
                                  "during the run, or an alignment cache is stale; run again")
        n = rows.pop()
        if intersection is None:
            intersection = n + int(first[self.holder][1]["test_rows"])
        columns = {p: int(first[p][1]["columns"]) for p in self.order}
        bounds = {p: float(first[p][1]["bound"]) for p in self.order}
        from fedcredit.protection.channel import pack_array

        dealt = {q["id"]: dealer_shares(q["seed_left"], q["seed_right"], n, columns[q["left"]], columns[q["right"]])
                 for q in pairs}
        asks = {}
        for p in self.order:
            mine = [q for q in pairs if p in (q["left"], q["right"])]
            inputs: dict[str, bytes] = {}
            for q in mine:
                left = q["left"] == p
                inputs[f"masked.{q['id']}"] = first[q["right"] if left else q["left"]][0][f"masked.{q['id']}"]
                inputs[f"seed.{q['id']}"] = q["seed_left"] if left else q["seed_right"]
                inputs[f"share.{q['id']}"] = pack_array(dealt[q["id"]][0 if left else 1])
            asks[p] = ({**common, "pairs": [_pair_view(q, p) for q in mine], "bounds": bounds}, inputs)
        second = self._phase("gram-2", asks)
        noise_sd = sum(float(second[p][1].get("noise_sd", 0.0)) ** 2 for p in self.order) ** 0.5
        layout = {"order": self.order, "columns": columns, "noise_sd": noise_sd,
                  "pairs": [{"id": q["id"], "left": q["left"], "right": q["right"]} for q in pairs]}
        solved = self._phase("solve", {self.holder: ({**common, "layout": layout},
                                                     {f"gram.{p}": second[p][0]["gram"] for p in self.order[1:]})})
        scored = self._phase("score", {p: (common, {"weights": solved[self.holder][0][f"weights.{p}"]})
                                       for p in self.order[1:]})
        evaluated = self._phase("evaluate", {self.holder: (common, {f"scores.{p}": scored[p][0]["scores"]
                                                                    for p in self.order[1:]})})
        features = {p: first[p][1]["features"] for p in self.order}
        self.dropped = {f"{p}:{col}": why for p in self.order for col, why in first[p][1].get("dropped", {}).items()}
        if self.dropped:
            self._notice(f"{len(self.dropped)} column(s) not used by their party's transform: "
                         + "; ".join(f"{c} ({w})" for c, w in self.dropped.items()))
        summary = self._summary(evaluated[self.holder][2], intersection, align_seconds, cached, n, features, started)
        return self._write(summary)

    def _summary(self, holder: PartnerReport, intersection: int, align_seconds: float, cached: bool, n: int,
                 features: dict[str, list[str]], started: float) -> dict[str, Any]:
        evaluation = holder.evaluation.metrics() if holder.evaluation is not None else None
        fed = ({k: evaluation.get(k) for k in ("auc", "ks", "gini", "brier", "logloss", "n", "bad_rate", UNDEFINED)
                if k in evaluation} if evaluation else
               {"auc": None, "ks": None, "gini": None, "brier": None, UNDEFINED: holder.declined or "not evaluated"})
        partners = []
        for p in self.scenario.partners:
            report = self.reports.get(p.name)
            privacy = dict(report.privacy or {"mode": p.privacy.mode if p.privacy.enabled else "off"}) if report else {}
            if "releases" in privacy:
                self.releases[p.name] = privacy.pop("releases")
            privacy.setdefault("status", "ok" if p.privacy.enabled else "off")
            partners.append({"name": p.name, "kind": p.kind, "label_holder": p.name == self.holder,
                             "rows": self.keys.get(p.name), "aligned_rows": intersection, "rows_train": n,
                             "features": features[p.name], "federated": fed if p.name == self.holder else None,
                             "privacy": privacy})
        self.privacy_rounds = [{"round": 1, "partners": {q["name"]: q["privacy"] for q in partners}}]
        return {
            "scenario": self.scenario.name, "run": self.task.run, "partitioning": "vertical",
            "model": self.fed.model, "strategy": "vertical-gram", "rounds": 1, "rounds_planned": 1,
            "alignment": {"intersection": intersection, "protocol": PSI_PROTOCOL, "seconds": round(align_seconds, 3),
                          "cached": cached},
            "message_phases": len(self.phases), "phases": self.phases,
            "federated": fed, "partners": partners, "label_holder": self.holder,
            "features": [f"{p}:{f}" for p in self.order for f in features[p]],
            "features_dropped": dict(self.dropped), "notices": list(self.notices), "refused_nodes": list(self.refused),
            "artefact": COMBINER,
            "timing": {"seconds_total": round(time.monotonic() - started, 3)},
        }

    def _write(self, summary: dict[str, Any]) -> dict[str, Any]:
        """The combining step only (who holds which part; the parts stay with the parties)."""
        combiner = {"format": COMBINER_FORMAT, "run": self.task.run, "scenario": self.scenario.name,
                    "label_holder": self.holder, "parties": self.order,
                    "features": {p["name"]: p["features"] for p in summary["partners"]},
                    "combine": "p(bad) = sigmoid(label holder's intercept + the sum of every party's partial score)"}
        atomic_write_json(self.run_dir.file(COMBINER), combiner)
        self.run_dir.write_summary(summary)
        write_privacy_report(self.run_dir.path, summary, self.privacy_rounds, self.releases)
        log(INFO, "run directory: %s", self.run_dir.path, extra=PROGRESS)
        return summary


def _pair_view(pair: Mapping[str, Any], party: str) -> dict[str, str]:
    """What a party is told of a secure product it takes part in (never the other party's seed)."""
    left = pair["left"] == party
    return {"id": pair["id"], "role": "left" if left else "right", "other": pair["right"] if left else pair["left"]}
