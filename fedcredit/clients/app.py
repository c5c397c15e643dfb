"""fedcredit ClientApp: one partner's side of the federation.

Who the partner is, where its data lives and its privacy policy come from its own
config file, named by `node_config` (`partner-config`) in deployment; in simulation the node's
`partition-id` picks its entry from the roster the coordinator sends.
Heavy imports (torch, pandas, opacus) happen inside the handlers, so a deployment
ClientApp process starts fast.
"""

from __future__ import annotations

from logging import WARNING
from pathlib import Path

from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod
from flwr.common.logger import log

from fedcredit.clients.secure import secure_aggregation_mod

app = ClientApp()
CLIPPING_KEY = "clipping_norm"   # what Flower's client-side fixed-clipping wrapper sends


def client_dp_mod(msg: Message, context: Context, call_next):
    """Flower's fixedclipping_mod, applied only when the server asks for client-level DP."""
    config = msg.content.config_records.get("config")
    if config is not None and CLIPPING_KEY in config:
        return fixedclipping_mod(msg, context, call_next)
    return call_next(msg, context)


def _task(msg: Message):
    from fedcredit.credit.protocol import TASK_KEY, TaskConfig

    return TaskConfig.from_json(str(msg.content["config"][TASK_KEY]))


def _partner(context: Context, task):
    """Deployment: the partner's own config file (or a bare name and data path) from the
    node config; simulation: the roster entry for this node's partition id."""
    from fedcredit.credit.errors import InputError
    from fedcredit.credit.scenario import DEPLOYMENT_PURPOSES, Partner, load_partner_file

    node = context.node_config
    if "partner-config" in node:
        return load_partner_file(str(node["partner-config"]))
    if "partner" in node:
        if "data-path" not in node:
            raise InputError("node_config has 'partner' but no 'data-path'", source="node_config")
        return Partner(str(node["partner"]), str(node.get("kind", "bank")), Path(str(node["data-path"])),
                       purposes=DEPLOYMENT_PURPOSES)
    if "partition-id" in node and task.roster:
        return task.roster[int(node["partition-id"])]
    raise InputError("set 'partner-config' (or 'partner' and 'data-path') in the node config", source="node_config")


def _data(msg: Message, context: Context, purpose: str):
    from fedcredit.clients.partner import open_partner_data

    task = _task(msg)
    rnd = int(msg.content["config"].get("server-round", 0))
    return task, open_partner_data(_partner(context, task), task, purpose=purpose, round=rnd)


_TOLD: set[tuple[str, int, str]] = set()   # (partner, Flower run id, reason) already logged here


def _tell_undefined(report, run_id: int) -> None:
    """Log once per run, in the partner's own process, why some of its metrics are undefined
    (e.g. its test rows hold no bad row); the coordinator's log says the same."""
    from fedcredit.credit.metrics import UNDEFINED, undefined_names

    if report.evaluation is None:
        return
    metrics = report.evaluation.metrics()
    reason = metrics.get(UNDEFINED)
    if reason and (report.partner, run_id, reason) not in _TOLD:
        _TOLD.add((report.partner, run_id, reason))
        log(WARNING, "partner '%s': %s; its %s are undefined and reported as null", report.partner, reason,
            undefined_names(metrics))


def _reply(msg: Message, report, *, arrays: ArrayRecord | None = None) -> Message:
    from fedcredit.credit.protocol import REPORT_KEY

    _tell_undefined(report, msg.metadata.run_id)

    config = msg.content.config_records.get("config")
    uniform = config is not None and CLIPPING_KEY in config   # partner-level DP accounting: equal weights
    weight = 1 if uniform else max(int(report.rows_train or 1), 1)
    content = RecordDict({"metrics": MetricRecord({"num-examples": weight}),
                          "report": ConfigRecord({REPORT_KEY: report.to_json()})})
    if arrays is not None:
        content["arrays"] = arrays
        # the train loss travels in the report (it may be None); Flower wants the same metric
        # keys from every reply, so a number here could not be left out for one partner
        content["metrics"]["steps"] = int(report.steps)
    return Message(content=content, reply_to=msg)


@app.query("stats")
def stats(msg: Message, context: Context) -> Message:
    """Round 0: one of the two statistics releases of the partner's training rows (never rows)."""
    from fedcredit.clients.partner import column_statistics
    from fedcredit.credit.protocol import PHASE_KEY, RANGE

    task, data = _data(msg, context, "stats")
    report = column_statistics(data, task, str(msg.content["config"].get(PHASE_KEY, RANGE)))
    planned = (report.privacy or {}).get("planned")
    if planned:   # the run's noise, chosen once before the first release
        context.state["privacy"] = ConfigRecord({"run": task.run, **{k: float(v) for k, v in planned.items()
                                                                      if v is not None}})
    return _reply(msg, report)


def _planned(context: Context, task) -> dict[str, float]:
    """The noise this partner planned for this run at round 0 (empty if none)."""
    saved = context.state.config_records.get("privacy")
    return {k: float(v) for k, v in saved.items() if k != "run"} if saved and saved.get("run") == task.run else {}


@app.query("histograms")
def histograms(msg: Message, context: Context) -> Message:
    """Model "gbdt": one tree level's gradient and hessian histograms of the partner's training rows
    (noised and charged under DP; `fedcredit.clients.gbdt`), or a reply that declines."""
    import json

    import torch

    from fedcredit.clients.gbdt import level_histograms
    from fedcredit.credit.protocol import GROWING_KEY, TREES_KEY
    from fedcredit.credit.trees import TreeEnsemble

    task, data = _data(msg, context, "train")
    config = msg.content["config"]
    result, report = level_histograms(data, task, TreeEnsemble.from_json(str(config[TREES_KEY])),
                                      json.loads(str(config[GROWING_KEY])), planned=_planned(context, task))
    reply = _reply(msg, report)
    if result is not None:
        reply.content["histograms"] = ArrayRecord({"grad": torch.from_numpy(result[0]),
                                                   "hess": torch.from_numpy(result[1])})
    return reply


@app.train(mods=[secure_aggregation_mod, client_dp_mod])
def train(msg: Message, context: Context) -> Message:
    """Evaluate the received global model when asked, train it locally (through the privacy
    gate), return the update — or a reply that declines the round with the reason."""
    from fedcredit.clients.partner import train_round
    from fedcredit.credit.protocol import EVALUATE_KEY, VALIDATE_KEY

    task, data = _data(msg, context, "train")
    config = msg.content["config"]
    planned = _planned(context, task)
    state, report = train_round(data, task, msg.content["arrays"].to_torch_state_dict(),
                                server_round=int(config.get("server-round", 0)),
                                proximal_mu=float(config.get("proximal-mu", 0.0)), planned=planned,
                                evaluate=bool(config.get(EVALUATE_KEY, True)),
                                validate=bool(config.get(VALIDATE_KEY, False)))
    if report.privacy and report.privacy.get("noise_multiplier") and (
            planned.get("dp-sgd") != report.privacy["noise_multiplier"]
            or planned.get("sample_rate") != report.privacy.get("sample_rate")):   # re-planned this round
        context.state["privacy"] = ConfigRecord({"run": task.run, **planned,
                                                 "dp-sgd": float(report.privacy["noise_multiplier"]),
                                                 "sample_rate": float(report.privacy["sample_rate"])})
    return _reply(msg, report, arrays=ArrayRecord(state) if state is not None else None)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Score the partner's test rows with the received model (a noised, charged histogram under
    DP); send it and the partner's lifetime privacy statement. Asked for the fairness release: the
    score histograms by protected group instead (noised and charged the same way under DP)."""
    from fedcredit.clients.partner import evaluation_report, fairness_report
    from fedcredit.credit.protocol import FAIRNESS_KEY, TREES_KEY, VALIDATE_KEY

    task, data = _data(msg, context, "evaluate")
    config = msg.content["config"]
    if TREES_KEY in config:   # model "gbdt": the ensemble travels as its JSON (fedcredit.credit.trees)
        from fedcredit.credit.trees import TreeEnsemble

        state = TreeEnsemble.from_json(str(config[TREES_KEY]))
    else:
        state = msg.content["arrays"].to_torch_state_dict()
    if bool(config.get(FAIRNESS_KEY, False)):
        return _reply(msg, fairness_report(data, task, state, round=int(config.get("server-round", 0)),
                                           planned=_planned(context, task)))
    return _reply(msg, evaluation_report(data, task, state,
                                         round=int(config.get("server-round", 0)), planned=_planned(context, task),
                                         validate=bool(config.get(VALIDATE_KEY, False))))


@app.query("vertical")
def vertical(msg: Message, context: Context) -> Message:
    """A vertical federation's phase (`fedcredit.clients.vertical`): alignment by PSI, the party's share of
    the joint Gram matrix, its model part, its partial scores. Payloads to other parties arrive and leave
    sealed end to end; the coordinator relays them."""
    import json

    from fedcredit.clients.vertical import run_phase
    from fedcredit.clients.vertical_party import open_party_data
    from fedcredit.credit.errors import InputError
    from fedcredit.credit.protocol import REPORT_KEY, PartnerReport

    task = _task(msg)
    config = msg.content["config"]
    phase = str(config["vphase"])
    inputs = msg.content.config_records.get("vin")
    partner = _partner(context, task)
    try:
        data = open_party_data(partner, task, purpose="train" if phase != "evaluate" else "evaluate")
        outputs, info, report = run_phase(phase, data, task, json.loads(str(config.get("vinfo", "{}"))),
                                          {k: bytes(v) for k, v in inputs.items()} if inputs is not None else {})
    except InputError as exc:   # bad input here (its file, its policy): one line in its log and the coordinator's
        log(WARNING, "partner '%s' declines vertical phase '%s': %s", partner.name, phase, exc)
        outputs, info, report = {}, {"declined": str(exc)}, PartnerReport(partner.name, partner.kind, declined=str(exc))
    content = RecordDict({"report": ConfigRecord({REPORT_KEY: report.to_json()}),
                          "vinfo": ConfigRecord({"json": json.dumps(info)}),
                          "vout": ConfigRecord(dict(outputs))})
    return Message(content=content, reply_to=msg)
