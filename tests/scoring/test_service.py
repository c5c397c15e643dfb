"""The HTTP scoring service as a real `fedcredit serve` process on 127.0.0.1: valid and invalid
requests answered as documented (never a 500 for a client's mistake), the same scores as batch, the
audit trail, TLS, and a port in use."""

from __future__ import annotations

import hashlib
import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from fedcredit.credit.artefact import ScoringModel
from fedcredit.protection.audit import verify
from fedcredit.protection.tls import make_certificates
from fedcredit.scoring.batch import score_file
from fedcredit.scoring.scorer import ScoreOptions, Scorer
from fedcredit.scoring.service import MAX_APPLICANTS, MAX_BODY_BYTES
from tests.commands import one_line_error, run
from tests.conftest import make_partner_frame
from tests.processes import kill_tree

START_TIMEOUT = 60.0


def _serve(*args: object) -> tuple[subprocess.Popen, str]:
    """Start `fedcredit serve ARGS --port 0`; (process, base URL) once it says where it listens."""
    proc = subprocess.Popen([sys.executable, "-m", "fedcredit.cli.main", "serve", *map(str, args), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    if not lines or "serving model" not in lines[0]:
        kill_tree([proc.pid])
        raise AssertionError(f"the service did not start within {START_TIMEOUT} s: {lines} {proc.stderr.read()}")
    return proc, lines[0].split(" on ")[1].split(" ")[0]


@pytest.fixture(scope="module")
def service(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    audit = tmp_path_factory.mktemp("audit") / "scoring.audit.jsonl"
    proc, url = _serve(model_path, "--cutoff", "0.3", "--points", "600:50:20", "--audit", audit,
                       "--purposes", "score,credit-decision")
    try:
        yield url, audit
    finally:
        kill_tree([proc.pid])


def _applicants(n: int, seed: int = 2) -> list[dict]:
    frame = make_partner_frame(n, seed).drop(columns="bad_flag")
    return [{k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def test_one_applicant_and_a_list_score_like_the_batch(service, model_path: Path, tmp_path: Path) -> None:
    url, _ = service
    people = _applicants(40)
    people[3]["housing"] = "castle"
    people[4]["late"] = 98                     # a declared missing code
    people[5]["age"] = "41"                    # a number written as text: read by the file rules
    with httpx.Client(base_url=url, timeout=10) as client:
        one = client.post("/score", json=people[0])
        many = client.post("/score", json=people, headers={"X-Purpose": "credit-decision"})
    assert one.status_code == 200 and many.status_code == 200
    model = ScoringModel.load(model_path)
    assert one.headers["x-model-id"] == model.id and one.json()["model_id"] == model.id
    assert one.json()["ignored"] == ["id"]
    results = many.json()["results"]
    assert results[0] == {k: v for k, v in one.json().items() if k not in ("model_id", "ignored")}
    frame = pd.DataFrame(people)
    frame.to_csv(tmp_path / "people.csv", index=False)
    batch = score_file(Scorer(model, ScoreOptions(cutoff=0.3)), tmp_path / "people.csv", tmp_path / "out.csv")
    expected = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    np.testing.assert_allclose([r["pd"] for r in results], expected["pd"], atol=1e-9)
    assert [r["decision"] for r in results] == expected["decision"].tolist()
    assert [r["reasons"] for r in results] == [[v for v in row if v] for row in
                                              expected[[f"reason_{j}" for j in range(1, 5)]].values.tolist()]
    assert results[3]["unseen_levels"] == ["housing"] and batch.other == {"housing": 1}
    odds = (1 - results[0]["pd"]) / results[0]["pd"]
    assert abs(results[0]["score"] - (600 + 20 / np.log(2) * np.log(odds / 50))) < 0.006


def test_client_mistakes_are_4xx_naming_the_field(service) -> None:
    url, _ = service
    good = _applicants(1)[0]
    cases = [
        ({"json": {**good, "age": "forty"}}, 422, "age", "non-numeric value 'forty'"),
        ({"json": {k: v for k, v in good.items() if k != "income"}}, 422, "income", "missing"),
        ({"json": {**good, "housing": "RENT"}}, 422, "housing", "respells the declared code 'rent'"),
        ({"json": {**good, "late": [1, 2]}}, 422, "late", "a number, a string or null"),
        ({"json": [good, 7]}, 422, None, "an applicant is a JSON object"),
        ({"content": b"{not json"}, 400, "body", "not JSON"),
        ({"content": b"\xff\xfe"}, 400, "body", "not JSON"),
        ({"json": []}, 400, "body", "non-empty list"),
        ({"json": "hello"}, 400, "body", "one applicant"),
        ({"json": [good] * (MAX_APPLICANTS + 1)}, 413, "body", "too many"),
        ({"content": b" " * (MAX_BODY_BYTES + 1)}, 413, "body", "too large"),
        ({"json": good, "params": {"purpose": "marketing"}}, 403, "purpose", "not an allowed purpose"),
    ]
    with httpx.Client(base_url=url, timeout=10) as client:
        for kwargs, status, field, reason in cases:
            reply = client.post("/score", **kwargs)
            assert reply.status_code == status, (kwargs.keys(), reply.text)
            problem = reply.json()["problems"][0]
            assert problem.get("field") == field and reason in problem["reason"] + reply.json()["error"], reply.text
        assert client.get("/score").status_code == 405
        assert client.post("/score", json=good).status_code == 200        # still serving


def test_health_model_and_openapi(service, model_path: Path) -> None:
    url, _ = service
    model = ScoringModel.load(model_path)
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/health").json() == {"status": "ok", "model_id": model.id}
        info = client.get("/model").json()
        spec = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    assert info["id"] == model.id and info["run"] == "test-run" and info["scoring"]["cutoff"] == 0.3
    assert info["privacy"] == "no differential privacy (test model)" and info["partners"][0]["name"] == "bank-a"
    assert {"/score", "/health", "/model"} <= set(spec["paths"])
    body = spec["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["anyOf"][0]["required"] == ["age", "income", "late", "housing"]


def test_every_request_is_in_the_hash_chained_audit_log(service) -> None:
    url, audit = service
    with httpx.Client(base_url=url, timeout=10) as client:
        before = len(audit.read_text().splitlines()) if audit.exists() else 0
        body = json.dumps(_applicants(2)).encode()
        client.post("/score", content=body, params={"purpose": "credit-decision"})
        client.post("/score", json={"age": 1})                    # refused: not a decision, not logged
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    assert len(events) == before + 1
    last = events[-1]
    assert last["event"] == "score-request" and last["purpose"] == "credit-decision" and last["applicants"] == 2
    # the decisions, and a hash of the request: never the applicant's data
    assert set(last) == {"event", "purpose", "model", "applicants", "body_sha256", "results", "seq", "time", "prev",
                         "hash"}
    assert last["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert [set(r) for r in last["results"]] == [{"pd", "decision", "reasons"}] * 2
    assert verify(audit).ok


def test_tls_and_a_port_in_use(model_path: Path, tmp_path: Path, capsys) -> None:
    files = make_certificates(tmp_path / "certs")
    proc, url = _serve(model_path, "--tls-cert", files.server_cert, "--tls-key", files.server_key)
    try:
        assert url.startswith("https://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=10, verify=ssl.create_default_context(cafile=str(files.ca_cert))) as client:
            assert client.get("/health").status_code == 200
        port = url.rsplit(":", 1)[1]
        started = time.monotonic()
        code, _, err = run(capsys, "serve", model_path, "--port", port)
        assert code == 2 and f"port {port} on 127.0.0.1 is in use" in one_line_error(err)
        assert time.monotonic() - started < 30
    finally:
        kill_tree([proc.pid])
    code, _, err = run(capsys, "serve", model_path, "--port", "0", "--tls-cert", files.server_cert,
                       "--tls-key", files.ca_key)
    assert code == 2 and "do not load as a pair" in one_line_error(err)
