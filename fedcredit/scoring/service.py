"""The HTTP scoring service: FastAPI on uvicorn, one model loaded once, the same checks as batch.

Endpoints (OpenAPI at /openapi.json, docs at /docs):

- `POST /score` — one applicant (a JSON object: column → value) or a list of at most
  `MAX_APPLICANTS`; `purpose` as the query parameter `?purpose=` or the header `X-Purpose`
  (default "score"; with an allowed list, another purpose is 403). Every column the model uses must
  be present (null = unknown value, imputed like an empty cell); other fields are ignored and named
  in `ignored`. Answers per applicant `pd`, `score` (with points scaling), `decision` (with a
  cutoff), `reasons` (columns), `reason_texts` and `unseen_levels`; one object for one applicant, `{"results": [...]}` for a list.
- `GET /health` — {"status": "ok", "model_id"}.
- `GET /model` — the model's identity (`fedcredit.scoring.identity.describe`) and scoring options.

A client's mistake is a 4xx whose JSON names the field and the reason — 400 a body that is not JSON
or not an object/list, 413 a body over `MAX_BODY_BYTES` or a list over `MAX_APPLICANTS`, 422 an
applicant that fails validation (`problems`: index, field, reason), 403 a purpose not allowed —
never a 500. With an audit log each request appends one hash-chained event: purpose, model id,
count, PDs, decisions and reasons, and the SHA-256 of the request body (never the applicant's data).
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from fedcredit.credit.errors import InputError
from fedcredit.protection.audit import AuditLog
from fedcredit.scoring.identity import describe
from fedcredit.scoring.scorer import Scorer

MAX_BODY_BYTES = 1 << 20          # 1 MiB
MAX_APPLICANTS = 1000
DEFAULT_PURPOSE = "score"
log = logging.getLogger("fedcredit.scoring.service")


class ClientMistake(Exception):
    """A request the client must fix: HTTP status, message, and the problems (index, field, reason)."""

    def __init__(self, status: int, message: str, problems: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status, self.message, self.problems = status, message, problems or []


def _applicant_schema(scorer: Scorer) -> dict[str, Any]:
    numeric = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]}
    text = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]}
    props = {c: {**numeric, "description": "numeric"} for c in scorer.validator.numeric}
    props.update({c: {**text, "description": "categorical: the code as written in the training data"}
                  for c in scorer.validator.categorical})
    one = {"type": "object", "properties": props, "required": list(scorer.validator.required),
           "additionalProperties": True}
    return {"anyOf": [one, {"type": "array", "items": one, "maxItems": MAX_APPLICANTS}]}


def create_app(scorer: Scorer, *, audit: AuditLog | None = None, purposes: frozenset[str] | None = None,
               model_path: str | Path | None = None) -> FastAPI:
    """The service for one loaded model."""
    model = scorer.model
    model_id = model.id
    identity = {**describe(model, model_path), "scoring": scorer.describe(),
                "limits": {"max_body_bytes": MAX_BODY_BYTES, "max_applicants": MAX_APPLICANTS}}
    app = FastAPI(title="fedcredit scoring service", version="1",
                  description=f"Scores applicants with the federated model {model_id}. " + __doc__.split("\n\n")[0])
    required = scorer.validator.required

    @app.exception_handler(ClientMistake)
    async def _mistake(request: Request, exc: ClientMistake) -> JSONResponse:
        return JSONResponse({"error": exc.message, "problems": exc.problems}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"field": ".".join(str(p) for p in e.get("loc", ())), "reason": e.get("msg", "")}
                    for e in exc.errors()]
        return JSONResponse({"error": "invalid request", "problems": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def _fault(request: Request, exc: Exception) -> JSONResponse:   # ours, not the client's
        log.exception("scoring service fault")
        return JSONResponse({"error": "internal error (logged by the service)"}, status_code=500)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model_id": model_id}

    @app.get("/model")
    def model_info() -> dict[str, Any]:
        return identity

    @app.post("/score", openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": _applicant_schema(scorer)}}}})
    async def score(request: Request, purpose: str | None = None) -> JSONResponse:
        """Score one applicant (object) or a list of them (see the service description)."""
        purpose = purpose or request.headers.get("x-purpose") or DEFAULT_PURPOSE
        if purposes is not None and purpose not in purposes:
            raise ClientMistake(403, f"purpose {purpose!r} is not allowed here (allowed: {sorted(purposes)})",
                                [{"field": "purpose", "reason": "not an allowed purpose"}])
        body = await _read_body(request)
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ClientMistake(400, f"the body is not JSON: {exc}", [{"field": "body", "reason": str(exc)}]) from None
        one = isinstance(data, dict)
        applicants = [data] if one else data
        if not isinstance(applicants, list) or not applicants:
            raise ClientMistake(400, "the body must be one applicant (a JSON object) or a non-empty list of them",
                                [{"field": "body", "reason": f"got {type(data).__name__}"}])
        if len(applicants) > MAX_APPLICANTS:
            raise ClientMistake(413, f"{len(applicants)} applicants in one request; at most {MAX_APPLICANTS}",
                                [{"field": "body", "reason": "too many applicants"}])
        problems = []
        for i, a in enumerate(applicants):
            if not isinstance(a, dict):
                problems.append({"index": i, "field": None, "reason": f"an applicant is a JSON object, got "
                                 f"{type(a).__name__}"})
                continue
            problems += [{"index": i, "field": c, "reason": "missing: every column the model uses must be given "
                          "(null for an unknown value)"} for c in required if c not in a]
            problems += [{"index": i, "field": c, "reason": "a value is a number, a string or null"}
                         for c in required if isinstance(a.get(c), (dict, list))]
        if problems:
            raise ClientMistake(422, _summary(problems), problems)
        try:
            scored = scorer.score_records(applicants)
        except InputError as exc:
            raise ClientMistake(422, str(exc), [{"field": exc.field, "reason": str(exc)}]) from None
        if scored.checked.rejects:
            problems = [{"index": i, "field": f, "reason": r} for i, f, r in scored.checked.rejects]
            raise ClientMistake(422, _summary(problems), problems)
        results = _results(scored)
        ignored = sorted({k for a in applicants for k in a} - set(required))
        if audit is not None:
            audit.append({"event": "score-request", "purpose": purpose, "model": model_id,
                          "applicants": len(results), "body_sha256": hashlib.sha256(body).hexdigest(),
                          "results": [{k: r[k] for k in ("pd", "decision", "reasons") if k in r} for r in results]})
        payload: dict[str, Any] = {"model_id": model_id, **(results[0] if one else {"results": results})}
        if ignored:
            payload["ignored"] = ignored
        return JSONResponse(payload, headers={"X-Model-Id": model_id})

    return app


def _summary(problems: list[dict[str, Any]]) -> str:
    first = problems[0]
    where = f"applicant {first['index']}" + (f", field '{first['field']}'" if first.get("field") else "")
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"{where}: {first['reason']}{more}"


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ClientMistake(413, f"the body has {declared} bytes; at most {MAX_BODY_BYTES}",
                            [{"field": "body", "reason": "too large"}])
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > MAX_BODY_BYTES:
            raise ClientMistake(413, f"the body is over {MAX_BODY_BYTES} bytes", [{"field": "body", "reason": "too large"}])
        parts.append(part)
    return b"".join(parts)


def _results(scored: Any) -> list[dict[str, Any]]:
    out = []
    unseen = scored.checked.unseen
    for i in range(len(scored.pd)):
        r: dict[str, Any] = {"pd": float(scored.pd[i])}
        if scored.points is not None:
            r["score"] = round(float(scored.points[i]), 2)
        if scored.decision is not None:
            r["decision"] = str(scored.decision[i])
        r["reasons"] = [str(v) for v in scored.reasons[i] if v]
        r["reason_texts"] = [str(v) for v in scored.reason_texts[i] if v]
        r["unseen_levels"] = [c for c in str(unseen[i]).split(";") if c] if unseen is not None else []
        out.append(r)
    return out


# ---- running it -------------------------------------------------------------------------------

def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one); a port in use is one clear error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InputError(f"cannot resolve {host!r}: {exc.strerror}", field="host") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InputError(f"port {port} on {host} is in use: choose another --port (0 picks a free one) or stop "
                             "the process that holds it", field="port") from None
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}", field="port") from None
    sock.set_inheritable(True)
    return sock


def check_tls(cert: str | Path | None, key: str | Path | None) -> None:
    """Both or neither; the pair must load together (a key that does not match is an error)."""
    if (cert is None) != (key is None):
        raise InputError("give both --tls-cert and --tls-key, or neither", field="tls-cert" if cert is None else "tls-key")
    if cert is None:
        return
    for path, what in ((cert, "tls-cert"), (key, "tls-key")):
        if not Path(path).is_file():
            raise InputError("file not found", source=str(path), field=what)
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise InputError(f"the certificate and key do not load as a pair: {exc}", source=str(cert),
                         field="tls-key") from None


def serve(app: FastAPI, sock: socket.socket, *, tls_cert: str | Path | None = None,
          tls_key: str | Path | None = None) -> None:
    """Serve `app` on the bound socket until interrupted (SIGINT / SIGTERM stop it cleanly)."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            ssl_certfile=str(tls_cert) if tls_cert else None,
                            ssl_keyfile=str(tls_key) if tls_key else None)
    uvicorn.Server(config).run(sockets=[sock])


def address(sock: socket.socket, *, tls: bool) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


__all__ = ["MAX_APPLICANTS", "MAX_BODY_BYTES", "address", "bind", "check_tls", "create_app", "serve"]
