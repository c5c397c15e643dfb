"""What an outsider would send: a ClientApp that leaves a marker (the partner's node config)
and a ServerApp that records each node's answer."""

from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

client = ClientApp()
server = ServerApp()


@client.query()
def query(msg: Message, context: Context) -> Message:
    Path(str(context.run_config["marker"])).write_text(repr(dict(context.node_config)))
    return Message(RecordDict({"x": ConfigRecord({"ran": 1})}), reply_to=msg)


@server.main()
def main(grid: Grid, context: Context) -> None:
    marker = str(context.run_config["marker"])
    nodes = list(grid.get_node_ids())
    messages = [Message(RecordDict(), dst_node_id=n, message_type="query") for n in nodes]
    replies = list(grid.send_and_receive(messages, timeout=90))
    answers = [f"error {r.error.code}: {r.error.reason}" if r.has_error() else "ran" for r in replies]
    Path(marker + ".server").write_text("\n".join(answers) + "\n")
