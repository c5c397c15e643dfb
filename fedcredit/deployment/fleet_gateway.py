"""The Fleet gateway: the coordinator's one public port serves the Fleet API and nothing else.

Flower 1.42's SuperLink serves its Fleet API (what SuperNodes call), its Control API (start, list
and stop runs, read their logs, register nodes; no account authentication in the open-source
SuperLink) and its Runtime API on ONE HTTP port. `fedcredit server start` therefore binds the
SuperLink to 127.0.0.1 and runs this gateway on the public address. What passes:

* `POST /v1/fleet/<name>` — every call a SuperNode makes (register/activate/heartbeat, pull and
  push messages and objects, get-run, get-fab, ...): forwarded to the SuperLink unchanged, body,
  status and headers, including Flower's node-authentication headers (`flwr-public-key`,
  `flwr-signature`, `flwr-timestamp`), which the SuperLink checks exactly as before. Only the
  hop-by-hop headers of each leg are rewritten, and `X-Forwarded-For` is set so that the
  SuperLink's own log names the partner's address (its uvicorn trusts it from 127.0.0.1 only);
* `GET /health` — liveness of the gateway and the SuperLink behind it (our readiness probe,
  partners' monitoring); it says "ok" and nothing else.

Everything else — `/v1/control/...`, `/v1/runtime/...`, other methods or paths — gets 403 with
a JSON `detail` and one log line (time, client address, method, path). The name after
`/v1/fleet/` must be one plain segment, so no `..` or encoded slash can reach another API.

TLS is terminated by uvicorn with the SuperLink's own certificate and key; the upstream leg goes
to 127.0.0.1 over TLS verified against the consortium CA (plain HTTP when insecure), with httpx.

Certificate renewal without downtime: the listening socket is opened with SO_REUSEPORT, so a new
gateway (with the renewed certificate) can listen on the same port beside the old one. Once
ready, the new one steers every new connection of the port to itself (a one-instruction classic
BPF program on the reuseport group); the old one, on SIGUSR1, keeps accepting for a moment (for
handshakes already under way), closes its socket, answers what is still in flight with
`Connection: close` and exits when its last connection is gone. No connection is refused.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import re
import signal
import socket
import ssl
import struct
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from cryptography import x509

REFUSAL = "only the Fleet API is served on this port; the Control API listens on the coordinator's loopback"
READY = "Fleet gateway ready"
FLEET_PATH = re.compile(r"^/v1/fleet/[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
HEALTH_PATH = "/health"
# Headers that describe one connection, not the message: never copied from one leg to the other.
_HOP = {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection", b"te",
        b"trailer", b"transfer-encoding", b"upgrade", b"content-length", b"host"}
_CLIENT_SET = {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded", b"x-real-ip"}
HANDOVER_GRACE = 1.0        # s the old gateway still accepts after SIGUSR1 (handshakes already under way)
KEEP_ALIVE = 5              # s an idle client connection is kept (uvicorn's default)
SO_ATTACH_REUSEPORT_CBPF = 51
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def log_line(text: str) -> None:
    """One plain line on stdout (the gateway's log file), never failing the request."""
    try:
        print(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {text}", flush=True)
    except (OSError, ValueError):
        pass


def _printable(raw: bytes, limit: int = 200) -> str:
    """A request path as it came on the wire (still percent-encoded), safe for a one-line log."""
    text = raw[:limit].decode("ascii", errors="backslashreplace")
    return "".join(c if c.isprintable() and c != " " else f"\\x{ord(c):02x}" for c in text)


class FleetGateway:
    """The ASGI app: forwards the Fleet API and GET /health to `upstream`, refuses the rest."""

    def __init__(self, upstream: str, *, verify: ssl.SSLContext | bool = True, log: Callable[[str], None] = log_line,
                 timeout: float = 300.0):
        self.upstream = upstream.rstrip("/")
        self.verify, self.log, self.timeout = verify, log, timeout
        self.draining = False          # set on handover: every response then closes its connection
        self.client: httpx.AsyncClient | None = None

    def http(self) -> httpx.AsyncClient:
        """The upstream client (one pool of connections to the SuperLink)."""
        if self.client is None:
            # keep-alive shorter than the SuperLink's (uvicorn: 5 s), so a pooled connection is never one it
            # is closing; retries=1 re-dials a refused connect only (a request is never sent twice).
            self.client = httpx.AsyncClient(
                verify=self.verify, trust_env=False, timeout=httpx.Timeout(self.timeout, connect=5.0),
                transport=httpx.AsyncHTTPTransport(verify=self.verify, retries=1),
                limits=httpx.Limits(max_keepalive_connections=20, keepalive_expiry=2.0))
        return self.client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":          # websockets: not part of any Flower API
            await send({"type": "websocket.close", "code": 1008})
            return
        method, path = scope["method"], scope["path"]
        if (method == "POST" and FLEET_PATH.match(path)) or (method == "GET" and path == HEALTH_PATH):
            status, headers, body = await self._forward(scope, receive)
        else:
            client = (scope.get("client") or ("?", 0))[0]
            self.log(f"refused {client} {_printable(method.encode())} "
                     f"{_printable(scope.get('raw_path') or path.encode())}")
            status, headers, body = 403, [(b"content-type", b"application/json")], \
                json.dumps({"detail": REFUSAL}).encode()
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        if self.draining:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.http()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.client is not None:
                    await self.client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _forward(self, scope: Scope, receive: Receive) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return 499, [], b""
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        client = (scope.get("client") or ("", 0))[0]
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _HOP | _CLIENT_SET]
        if client:
            headers.append((b"x-forwarded-for", client.encode()))
        headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
        url = self.upstream + scope["path"]
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        # httpx.Request, not client.build_request: the client's default headers are not added.
        request = httpx.Request(scope["method"], url, headers=headers, content=b"".join(chunks))
        try:
            response = await self.http().send(request, stream=True)
            try:
                body = b"".join([chunk async for chunk in response.aiter_raw()])   # as sent: not decoded
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            self.log(f"upstream error {scope['method']} {scope['path']}: {type(exc).__name__}: {exc}")
            return 502, [(b"content-type", b"application/json")], \
                json.dumps({"detail": "the SuperLink behind this port does not answer"}).encode()
        return response.status_code, [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP], body


# ---- serving -------------------------------------------------------------------------------------


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT: a renewed gateway can bind beside this one."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def steer_new_connections(sock: socket.socket, index: int = 1) -> bool:
    """Attach `return index` (one classic BPF instruction) to the socket's reuseport group: the
    kernel gives every new connection to the group's socket number `index` (the newest of two,
    in joining order); an index beyond the group falls back to the usual hashing. Linux only."""
    insn = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, index))     # BPF_RET | BPF_K
    prog = struct.pack("HL", 1, ctypes.addressof(insn))                              # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, prog)
        return True
    except OSError:
        return False


def probe(host: str, port: int, *, cafile: str | None = None, server_name: str = "127.0.0.1",
          timeout: float = 3.0) -> tuple[int, x509.Certificate | None]:
    """GET /health on a new connection: (HTTP status, the certificate presented; None without
    TLS). Raises OSError (ssl.SSLError included) when it gets no HTTP answer."""
    raw = socket.create_connection((host, port), timeout=timeout)
    cert = None
    try:
        if cafile is not None:
            raw = ssl.create_default_context(cafile=cafile).wrap_socket(raw, server_hostname=server_name)
            cert = x509.load_der_x509_certificate(raw.getpeercert(binary_form=True))
        raw.sendall(f"GET {HEALTH_PATH} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
        head = raw.recv(64).split(b"\r\n", 1)[0].split()
        if len(head) < 2 or not head[1].isdigit():
            raise OSError(f"not an HTTP answer: {head!r}")
        return int(head[1]), cert
    finally:
        raw.close()


def _settled(connection: Any) -> bool:
    """A connection with nothing in flight: its last response written, and it is closing (under
    TLS a closing connection waits up to 30 s for the client's close_notify, which a silent
    client never sends)."""
    cycle = getattr(connection, "cycle", None)
    transport = getattr(connection, "transport", None)
    return (transport is None or (transport.is_closing() and not transport.get_write_buffer_size())) and \
        (cycle is None or cycle.response_complete)


class GatewayServer(uvicorn.Server):
    """uvicorn's Server that, once listening, steers the port's new connections to itself and
    says so in its log. On SIGUSR1 (a handover) it keeps accepting for HANDOVER_GRACE s, closes
    its socket, closes each connection after its next response (or its keep-alive expiry) and
    exits once nothing is in flight (at most KEEP_ALIVE + 1 s later, then uvicorn's graceful
    shutdown). SIGTERM/SIGINT: uvicorn's graceful shutdown; both end as soon as every connection
    left has nothing in flight."""

    def __init__(self, config: uvicorn.Config, app: FleetGateway, sock: socket.socket, announce: str):
        super().__init__(config)
        self.app, self.sock, self.announce = app, sock, announce

    def settled(self) -> bool:
        return all(_settled(c) for c in list(self.server_state.connections))

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.started or self.should_exit:
            return
        steered = steer_new_connections(self.sock)
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1,
                                                      lambda: asyncio.ensure_future(self.hand_over()))
        self.app.log(f"{READY} {self.announce}{'' if steered else ' (no reuseport steering on this system)'}")

    async def hand_over(self) -> None:
        if self.app.draining:
            return
        self.app.draining = True
        self.app.log(f"handing over: new connections go to the new gateway; closing in {HANDOVER_GRACE:g} s")
        await asyncio.sleep(HANDOVER_GRACE)
        for listener in self.servers:
            listener.close()
        self.sock.close()
        deadline = time.monotonic() + KEEP_ALIVE + 1
        while not self.settled() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        busy = sum(not _settled(c) for c in list(self.server_state.connections))
        self.app.log(f"handed over ({busy} connection(s) still busy); exiting")
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        async def release() -> None:         # uvicorn would wait for silent clients' TLS close_notify
            while not self.settled():
                await asyncio.sleep(0.1)
            self.force_exit = True

        watcher = asyncio.ensure_future(release())
        try:
            await super().shutdown(sockets=sockets)
        finally:
            watcher.cancel()


def wait_for_upstream(upstream: str, verify: ssl.SSLContext | bool, wait: float) -> str | None:
    """Poll GET /health on the SuperLink until it answers 200 (None) or `wait` s pass (why not)."""
    deadline = time.monotonic() + wait
    with httpx.Client(verify=verify, trust_env=False, timeout=2.0) as client:
        while True:
            try:
                response = client.get(upstream + HEALTH_PATH)
                if response.status_code == 200:
                    return None
                why = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                return why
            time.sleep(0.2)


def serve(host: str, port: int, upstream: str, *, certfile: str | None = None, keyfile: str | None = None,
          cafile: str | None = None, wait: float = 30.0) -> int:
    """Run the gateway on host:port in front of `upstream` (e.g. https://127.0.0.1:9093) until
    SIGTERM/SIGINT (graceful: in-flight requests finish) or a handover (SIGUSR1). With `certfile`
    it serves TLS; `cafile` verifies the upstream. The port is listened on only once the
    certificate and key have loaded and the SuperLink has answered (within `wait` s)."""
    # A process inherits its parent's blocked signals (`server start` holds SIGTERM while it starts us).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1})
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=cafile) if cafile else False
    app = FleetGateway(upstream, verify=verify)
    config = uvicorn.Config(app, ssl_certfile=certfile, ssl_keyfile=keyfile, proxy_headers=False,
                            server_header=False, date_header=False, access_log=False, log_config=None,
                            lifespan="on", ws="none", timeout_keep_alive=KEEP_ALIVE, timeout_graceful_shutdown=30)
    config.load()                  # loads the certificate and key: an error here leaves the port untouched
    why = wait_for_upstream(upstream, verify, wait)
    if why is not None:
        raise OSError(f"the SuperLink at {upstream} did not answer within {wait:g} s ({why})")
    sock = listening_socket(host, port)
    announce = f"on {'https' if certfile else 'http'}://{host}:{port} -> {upstream}"
    if certfile:
        with open(certfile, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        announce += f" (certificate serial {cert.serial_number:x}, valid to {cert.not_valid_after_utc:%Y-%m-%d})"
    server = GatewayServer(config, app, sock, announce)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))    # what uvicorn re-raises after its graceful stop
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0 if server.started else 1


def main(argv: list[str] | None = None) -> int:
    """`python -m fedcredit.deployment.fleet_gateway HOST PORT UPSTREAM [--certfile F --keyfile F --cafile F]`
    (what `fedcredit server start` and `server reload-cert` run; its output is the gateway's log)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fedcredit.deployment.fleet_gateway", description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("upstream", help="the SuperLink, e.g. https://127.0.0.1:9093")
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    parser.add_argument("--cafile", help="verifies the SuperLink's certificate")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the SuperLink")
    args = parser.parse_args(argv)
    try:
        return serve(args.host, args.port, args.upstream, certfile=args.certfile, keyfile=args.keyfile,
                     cafile=args.cafile, wait=args.wait)
    except (OSError, ValueError) as exc:          # ssl.SSLError is an OSError: a bad certificate or key
        log_line(f"error: cannot serve {args.host}:{args.port}: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
