"""Joining an existing Ray cluster for a simulation (`fedcredit simulate --ray-address`).

Flower's Simulation Engine runs the partners' ClientApps as Ray actors; on one machine it starts
a private Ray, on a cluster it joins the one that runs (`ray start --head` on one machine,
`ray start --address HEAD:PORT` on the others). This module checks, before any partner data is
read, that the cluster answers and says what it offers; Flower then connects to it itself
(`backend_config(ray_address=...)` in `runner`).

Every node of the cluster must have fedcredit installed (same version) and read the partners'
files at the paths the scenario names (a shared file system), as a partner machine would.
"""

from __future__ import annotations

import re
import socket
from dataclasses import asdict, dataclass
from typing import Any

from fedcredit.credit.errors import InputError

FIELD = "--ray-address"
_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class ClusterInfo:
    """What the cluster offers: its address, alive nodes and CPUs (all nodes together)."""

    ray_address: str
    ray_nodes: int
    ray_cpus: float
    cpus_per_actor: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_address(address: str) -> tuple[str, int] | None:
    """`host:port` of a cluster's head (GCS port, 6379 by default) → (host, port); "auto" → None
    (Ray finds the cluster started on this machine or named by RAY_ADDRESS).

    Raises InputError for anything else (a `ray://` client address is not supported: Flower's
    engine needs a driver inside the cluster's network, not a Ray Client proxy)."""
    if address == "auto":
        return None
    match = _HOST_PORT.match(address)
    if not match or not 0 < int(match["port"]) < 65536:
        raise InputError(f"must be HOST:PORT of the Ray cluster's head (e.g. 10.0.0.5:6379, as printed by "
                         f"`ray start --head`) or auto (got '{address}')", field=FIELD)
    return match["host"].strip("[]"), int(match["port"])


def cluster_info(address: str, *, cpus_per_actor: int = 1, timeout: float = 10.0) -> ClusterInfo:
    """Connect to the cluster at `address`, read its alive nodes and CPUs, disconnect.

    Raises InputError (one line, what to do) when the head does not answer within `timeout` seconds
    or the cluster has fewer CPUs than one actor needs."""
    host_port = parse_address(address)
    if cpus_per_actor < 1:
        raise InputError(f"must be a whole number ≥ 1 (got {cpus_per_actor})", field="--ray-cpus-per-actor")
    if host_port is not None:
        try:
            socket.create_connection(host_port, timeout=timeout).close()
        except OSError as exc:
            raise InputError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
                             "`ray start --head` on its first machine, or check the address and firewall",
                             field=FIELD) from None
    import ray

    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise InputError(f"cannot join the Ray cluster at {address}: {exc}", field=FIELD) from None
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = float(sum(n.get("Resources", {}).get("CPU", 0.0) for n in nodes))
    finally:
        ray.shutdown()
    if cpus < cpus_per_actor:
        raise InputError(f"the Ray cluster at {address} offers {cpus:g} CPU(s), fewer than the {cpus_per_actor} "
                         "one partner actor needs", field=FIELD)
    return ClusterInfo(address, len(nodes), cpus, cpus_per_actor)
