"""The schemas of the deployment's two files: the coordinator's (`CoordinatorFile`: a scenario file
with a [coordinator] table and each partner's `public_key`) and a partner's partner.toml as `partner
start` reads it (`DeployedPartnerFile`: with its [node] table). Values as written, paths relative to
the file; `fedcredit.deployment.config` resolves them and checks the files they name.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, model_validator

from fedcredit.credit.scenario import PartnerFile, ScenarioFile
from fedcredit.credit.validation import Flag, Number, Rule, Schema, Whole, rule

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 9092
DEFAULT_NODE_PORT = 9094
DEFAULT_FEDERATION = "fedcredit"


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"



def _host(value: str) -> str:
    """A bare host name or IP address (IPv6 may be bracketed); no scheme, no port."""
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if "://" in host or "/" in host or ":" in host or not re.match(r"^[A-Za-z0-9.-]+$", host):
        raise ValueError(host)
    return host


def _host_port(value: str) -> str:
    """'host:port' or '[v6]:port' → the same, checked and normalised."""
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(value)
    return join_host_port(_host(host), int(port_text))


def _digits(value: Any) -> Any:
    return int(value) if isinstance(value, str) and value.strip().isdigit() else value


Port = Annotated[Whole, BeforeValidator(_digits), Field(ge=1, le=65535)]
FilePath = Annotated[str, StringConstraints(strict=True, strip_whitespace=True, min_length=1)]
_PORT = "must be a port number between 1 and 65535"
_FILE = "must be a non-empty string"
_NO_SCHEME = "must be a host name or IP address without scheme or port"


class CoordinatorTable(Schema):
    """The [coordinator] table as written (paths relative to the file)."""

    address: Annotated[FilePath, AfterValidator(_host)] = rule(_NO_SCHEME, DEFAULT_ADDRESS)
    port: Port = rule(_PORT, DEFAULT_PORT)
    control_port: Port | None = rule(_PORT, None)
    ca_cert: FilePath | None = rule(_FILE, None)
    server_cert: FilePath | None = rule(_FILE, None)
    server_key: FilePath | None = rule(_FILE, None)
    flwr_home: FilePath = rule(_FILE, "flwr-home")
    insecure: Flag = rule("must be true or false", False)
    federation: Annotated[FilePath, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")] = rule(
        "must be letters, digits, '-' or '_'", DEFAULT_FEDERATION)
    app_signature: FilePath | None = rule(_FILE, None)

    @model_validator(mode="after")
    def _two_ports(self) -> CoordinatorTable:
        if self.control_port is None and self.port == 65535:
            raise Rule("is 65535, so the default control_port (port + 1) does not exist: set control_port", "port")
        if self.control_port == self.port:
            raise Rule(f"must differ from port ({self.port}): the SuperLink listens on 127.0.0.1:control_port, the "
                       "Fleet gateway on address:port", "control_port")
        return self


class NodeTable(Schema):
    """The [node] table of a partner.toml as written (paths relative to the file)."""

    superlink: Annotated[FilePath, AfterValidator(_host_port)] = rule(
        f"must be host:port without scheme, e.g. \"127.0.0.1:{DEFAULT_PORT}\"",
        missing=f"missing: the SuperLink's address as host:port, e.g. \"127.0.0.1:{DEFAULT_PORT}\"")
    port: Port = rule(_PORT, DEFAULT_NODE_PORT)
    root_certificates: FilePath | None = rule(_FILE, None)
    auth_key: FilePath | None = rule(_FILE, None)
    insecure: Flag = rule("must be true or false", False)
    flwr_home: FilePath | None = rule(_FILE, None)
    idle_wait: Annotated[Number, Field(ge=0.05, le=3.0)] = rule(
        "must be seconds between 0.05 and 3 (how soon the SuperNode asks again after finding no message; "
        "Flower's own wait is 3)", 0.5)
    warm_start: Flag = rule("must be true or false (true: ClientApp processes fork from a warm process)", True)
    trusted_app_keys: FilePath | list[FilePath] = rule(
        "must be a file path or a list of file paths (the consortium's app-signing .pub)", default_factory=list)


class CoordinatorFile(ScenarioFile):
    """The coordinator's file: a scenario file whose partners carry `public_key` and whose
    [coordinator] table says where the SuperLink and its gateway listen."""

    coordinator: CoordinatorTable = rule("must be the [coordinator] table", default_factory=CoordinatorTable)


class DeployedPartnerFile(PartnerFile):
    """A partner's partner.toml as `partner start` reads it: with its [node] table."""

    node: NodeTable = rule("must be the [node] table",
                           missing="missing the [node] table (superlink, port, root_certificates, auth_key)")


