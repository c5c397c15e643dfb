"""Partner side of secure aggregation (SecAgg+), as a mod on the ONE train handler.

Messages without SecAgg+ configs pass straight through. Otherwise Flower's legacy
`secaggplus_mod` runs the protocol; at the masking stage it calls the bridge below, which
turns the legacy FitIns into the train handler's Message-API content, calls the same handler
(so plain and secure rounds share one training path: privacy gate, DP-SGD, ledger), and turns
its reply into the FitRes the mod masks. A partner that declines the round contributes a zero
update with weight 0; its report (why it declined) travels in clear with the example count.
"""

from __future__ import annotations

from collections import OrderedDict

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.common import (
    Code,
    FitRes,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common.recorddict_compat import (
    fitres_to_recorddict,
    recorddict_to_fitins,
)


def secure_aggregation_mod(msg: Message, context: Context, call_next):
    if RECORD_KEY_CONFIGS not in msg.content.config_records:
        return call_next(msg, context)
    return secaggplus_mod(msg, context, lambda m, c: _bridge(m, c, call_next))


def _state_names(task_json: str) -> list[str]:
    from fedcredit.credit.model import build_model
    from fedcredit.credit.protocol import TaskConfig

    task = TaskConfig.from_json(task_json)
    fed = task.federation
    return list(build_model(fed.model, task.transform.n_features, hidden=fed.hidden).state_dict().keys())


def _bridge(msg: Message, context: Context, call_next) -> Message:
    import numpy as np
    import torch

    from fedcredit.credit.protocol import REPORT_KEY

    fitins = recorddict_to_fitins(msg.content, keep_input=True)
    incoming = parameters_to_ndarrays(fitins.parameters)
    names = _state_names(str(fitins.config["task"]))
    state = OrderedDict((n, torch.from_numpy(np.asarray(a, dtype=np.float32))) for n, a in zip(names, incoming, strict=True))
    msg.content = RecordDict({"arrays": ArrayRecord(state), "config": ConfigRecord(dict(fitins.config))})
    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    content = reply.content
    report = str(content[REPORT_KEY][REPORT_KEY])
    if "arrays" in content:
        out = [t.numpy() for t in content["arrays"].to_torch_state_dict().values()]
        weight = int(content["metrics"]["num-examples"])
    else:                                          # declined: nothing of this partner in the sum
        out, weight = [np.zeros_like(a) for a in incoming], 0
    fitres = FitRes(Status(Code.OK, "ok"), ndarrays_to_parameters(out), weight, {REPORT_KEY: report})
    return Message(fitres_to_recorddict(fitres, keep_input=True), reply_to=msg)
