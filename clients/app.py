"""fedcredit ClientApp: one partner's side of the federation.

Who the partner is and where its data lives come from `node_config`
(`partner`, `kind`, `data-path`) in deployment; in simulation the node's
`partition-id` picks its entry from the roster the coordinator sends.
Heavy imports (torch, pandas) happen inside the handlers, so a deployment
ClientApp process starts fast.
"""

from __future__ import annotations

from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


def _task(msg: Message):
    from credit.protocol import TASK_KEY, TaskConfig

    return TaskConfig.from_json(str(msg.content["config"][TASK_KEY]))


def _partner(context: Context, task):
    from credit.errors import InputError
    from credit.scenario import Partner

    node = context.node_config
    if "partner" in node:
        if "data-path" not in node:
            raise InputError("node_config has 'partner' but no 'data-path'", source="node_config")
        return Partner(str(node["partner"]), str(node.get("kind", "bank")), Path(str(node["data-path"])))
    if "partition-id" in node and task.roster:
        return task.roster[int(node["partition-id"])]
    raise InputError("set 'partner' and 'data-path' in the node config", source="node_config")


def _data(msg: Message, context: Context):
    from clients.partner import open_partner_data

    task = _task(msg)
    return task, open_partner_data(_partner(context, task), task.spec, task.federation)


def _reply(msg: Message, report, *, arrays: ArrayRecord | None = None, weight: int) -> Message:
    from credit.protocol import REPORT_KEY

    content = RecordDict({"metrics": MetricRecord({"num-examples": weight}),
                          "report": ConfigRecord({REPORT_KEY: report.to_json()})})
    if arrays is not None:
        content["arrays"] = arrays
        content["metrics"]["train-loss"] = float(report.train_loss)
        content["metrics"]["steps"] = int(report.steps)
    return Message(content=content, reply_to=msg)


@app.query("stats")
def stats(msg: Message, context: Context) -> Message:
    """Round 0: column statistics of the partner's training rows (never rows)."""
    from clients.partner import column_statistics

    task, data = _data(msg, context)
    return _reply(msg, column_statistics(data, task.spec), weight=len(data.train))


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Evaluate the received global model, train it locally, return the update."""
    from clients.partner import train_round

    task, data = _data(msg, context)
    config = msg.content["config"]
    state, report = train_round(data, task, msg.content["arrays"].to_torch_state_dict(),
                                server_round=int(config.get("server-round", 0)),
                                proximal_mu=float(config.get("proximal-mu", 0.0)))
    return _reply(msg, report, arrays=ArrayRecord(state), weight=len(data.train))


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Score the partner's test rows with the received model; send the histogram."""
    from clients.partner import evaluate_model, report

    task, data = _data(msg, context)
    histogram = evaluate_model(data, task, msg.content["arrays"].to_torch_state_dict())
    return _reply(msg, report(data, evaluation=histogram), weight=len(data.test))
