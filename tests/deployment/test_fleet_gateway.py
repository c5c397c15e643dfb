"""The Fleet gateway's ASGI app in front of a tiny real upstream (FastAPI under uvicorn on a free
loopback port, standing in for the SuperLink): a Fleet API POST passes unchanged both ways; the
Control and Runtime APIs, other methods and tricky paths are refused with one log line each and
never reach the upstream."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from fedcredit.deployment.fleet_gateway import REFUSAL, FleetGateway
from tests.processes import free_port

OUTSIDER = ("203.0.113.7", 40000)


@pytest.fixture(scope="module")
def upstream():
    """(base URL, list of (method, path) the upstream was reached with)."""
    app, reached = FastAPI(), []

    @app.post("/v1/fleet/{name}")
    async def fleet(name: str, request: Request) -> Response:
        reached.append(("POST", request.url.path))
        body = await request.body()
        if name == "activate-node" and request.headers.get("flwr-signature") != "good":
            return Response(b'{"detail":"Invalid SuperNode authentication"}', status_code=401,
                            media_type="application/json")
        seen = {k: request.headers.get(k) for k in ("flwr-public-key", "flwr-signature", "flwr-timestamp",
                                                      "content-type", "x-forwarded-for", "user-agent")}
        return Response(b"echo:" + body, media_type="application/protobuf",
                        headers={"x-seen": json.dumps(seen), "x-client": str(request.client.host)})

    @app.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def anything(rest: str, request: Request) -> dict:
        reached.append((request.method, request.url.path))
        return {"status": "ok"} if rest == "health" else {"runs": ["secret"]}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                           ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the upstream did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", reached
    finally:
        server.should_exit = True
        thread.join(10)


def exchange(gateway: FleetGateway, requests: list[httpx.Request]) -> list[httpx.Response]:
    """Send requests to the gateway app as a client at OUTSIDER (no socket on the gateway side)."""
    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=gateway, client=OUTSIDER)
        async with httpx.AsyncClient(transport=transport) as client:
            answers = [await client.send(r) for r in requests]
        if gateway.client is not None:
            await gateway.client.aclose()
        return answers

    return asyncio.run(go())


def test_a_fleet_post_passes_unchanged(upstream) -> None:
    base, reached = upstream
    body = bytes(range(256)) * 40                         # binary protobuf-like bytes, NULs included
    headers = {"content-type": "application/protobuf", "accept": "application/protobuf", "flwr-public-key": "cGs=",
               "flwr-signature": "good", "flwr-timestamp": "2026-01-01T00:00:00+00:00", "user-agent": "flwr-test",
               "x-forwarded-for": "10.9.9.9"}           # a client's own claim is replaced, never passed on
    direct = httpx.post(f"{base}/v1/fleet/pull-messages", content=body, headers=headers)
    gateway = FleetGateway(base, verify=False, log=[].append)
    via, refused = exchange(gateway, [
        httpx.Request("POST", "http://gw/v1/fleet/pull-messages", content=body, headers=headers),
        httpx.Request("POST", "http://gw/v1/fleet/activate-node", content=body, headers={**headers,
                                                                                         "flwr-signature": "bad"})])
    assert via.status_code == direct.status_code == 200 and via.content == direct.content == b"echo:" + body
    assert via.headers["content-type"] == "application/protobuf"
    assert {k: v for k, v in via.headers.items() if k not in ("date", "x-seen", "x-client")} == \
        {k: v for k, v in direct.headers.items() if k not in ("date", "x-seen", "x-client")}
    seen = json.loads(via.headers["x-seen"])
    assert seen == {"flwr-public-key": "cGs=", "flwr-signature": "good", "flwr-timestamp": "2026-01-01T00:00:00+00:00",
                    "content-type": "application/protobuf", "x-forwarded-for": OUTSIDER[0], "user-agent": "flwr-test"}
    assert via.headers["x-client"] == OUTSIDER[0]          # uvicorn (like the SuperLink's) trusts it from loopback
    # The SuperLink's own node authentication still decides: its refusal comes back as it was.
    assert refused.status_code == 401 and refused.content == b'{"detail":"Invalid SuperNode authentication"}'
    assert reached[-2:] == [("POST", "/v1/fleet/pull-messages"), ("POST", "/v1/fleet/activate-node")]


@pytest.mark.parametrize("method, path", [
    ("POST", "/v1/control/start-run"),
    ("POST", "/v1/control/list-runs"),
    ("POST", "/v1/control/register-node"),
    ("POST", "/v1/runtime/pull-app-inputs"),
    ("GET", "/v1/fleet/pull-messages"),
    ("PUT", "/v1/fleet/push-messages"),
    ("POST", "/v1/fleet/%2e%2e/control/list-runs"),      # decoded to /v1/fleet/../control/list-runs
    ("POST", "/v1/fleet/a%2fb"),
    ("POST", "/v1/fleet/"),
    ("POST", "/health"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
])
def test_everything_else_is_refused_logged_and_never_forwarded(upstream, method: str, path: str) -> None:
    base, reached = upstream
    before, lines = list(reached), []
    (answer,) = exchange(FleetGateway(base, verify=False, log=lines.append),
                         [httpx.Request(method, httpx.URL("http://gw" + path), content=b"\x00")])
    assert answer.status_code == 403 and answer.json() == {"detail": REFUSAL}
    assert reached == before
    assert lines == [f"refused {OUTSIDER[0]} {method} {path}"]


def test_health_passes_and_a_silent_upstream_is_a_502(upstream) -> None:
    base, _ = upstream
    lines: list[str] = []
    (health,) = exchange(FleetGateway(base, verify=False, log=lines.append), [httpx.Request("GET", "http://gw/health")])
    assert health.status_code == 200 and health.json() == {"status": "ok"} and lines == []
    dead = FleetGateway(f"http://127.0.0.1:{free_port()}", verify=False, log=lines.append)
    dead.draining = True                                   # during a handover every answer closes its connection
    (answer,) = exchange(dead, [httpx.Request("POST", "http://gw/v1/fleet/pull-messages", content=b"x")])
    assert answer.status_code == 502 and "does not answer" in answer.json()["detail"]
    assert answer.headers["connection"] == "close"
    assert len(lines) == 1 and lines[0].startswith("upstream error POST /v1/fleet/pull-messages: ConnectError")
