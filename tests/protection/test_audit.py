"""Audit trail: chained appends, verify names the first bad line, head anchor, show."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedcredit.credit.errors import InputError
from fedcredit.protection.audit import AuditError, AuditLog, show, verify


def write_log(path: Path, n: int = 5, head_file: Path | None = None) -> AuditLog:
    log = AuditLog(path, head_file=head_file)
    for i in range(n):
        log.append({"partner": f"bank-{i % 2}", "purpose": "train", "dataset": "ab" * 32, "run": "r1",
                    "round": i, "epsilon": 0.1 * i})
    return log


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_append_chains_and_returns_the_record(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    first = log.append({"partner": "bank-a", "purpose": "train"})
    second = log.append({"partner": "bank-a", "purpose": "stats", "epsilon": 0.5})
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["prev"] == "0" * 64 and second["prev"] == first["hash"]
    assert first["time"].endswith("+00:00") and second["epsilon"] == 0.5
    assert [json.loads(line) for line in lines_of(path)] == [first, second]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    check = verify(path)
    assert (check.ok, check.lines, check.first_bad_line, check.head) == (True, 2, None, second["hash"])


def test_reserved_and_non_json_fields_are_refused(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl")
    with pytest.raises(AuditError, match="reserved"):
        log.append({"hash": "x"})
    with pytest.raises(AuditError, match="JSON"):
        log.append({"epsilon": float("nan")})
    with pytest.raises(AuditError, match="JSON"):
        log.append({"when": object()})
    assert not (tmp_path / "a.jsonl").exists() or (tmp_path / "a.jsonl").read_bytes() == b""


def edit_value(line: bytes) -> bytes:
    record = json.loads(line)
    record["purpose"] = "marketing"
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"


@pytest.mark.parametrize("k", [1, 3, 5])
def test_edited_event_is_named(tmp_path, k):
    path = tmp_path / "a.jsonl"
    write_log(path)
    lines = lines_of(path)
    lines[k - 1] = edit_value(lines[k - 1])
    path.write_bytes(b"".join(lines))
    check = verify(path)
    assert not check.ok and check.first_bad_line == k and "edited" in check.reason


@pytest.mark.parametrize("k", [1, 2, 4])
def test_deleted_event_is_named(tmp_path, k):
    path = tmp_path / "a.jsonl"
    write_log(path)
    lines = lines_of(path)
    del lines[k - 1]
    path.write_bytes(b"".join(lines))
    check = verify(path)
    assert not check.ok and check.first_bad_line == k and check.lines == 4


@pytest.mark.parametrize("k", [1, 3, 6])
def test_inserted_event_is_named(tmp_path, k):
    path = tmp_path / "a.jsonl"
    write_log(path)
    other = tmp_path / "other.jsonl"
    write_log(other, 7)
    lines = lines_of(path)
    lines.insert(k - 1, lines_of(other)[k])  # a well-formed, correctly hashed event from another log
    path.write_bytes(b"".join(lines))
    check = verify(path)
    assert not check.ok and check.first_bad_line == k


def test_inserted_genesis_event_breaks_the_chain_at_the_old_first_line(tmp_path):
    path, other = tmp_path / "a.jsonl", tmp_path / "other.jsonl"
    write_log(path, 3)
    write_log(other, 1)
    path.write_bytes(other.read_bytes() + path.read_bytes())
    check = verify(path)  # another log's first event is a valid start; the break shows at line 2
    assert not check.ok and check.first_bad_line == 2 and "inserted" in check.reason


@pytest.mark.parametrize("k", [1, 2, 4])
def test_reordered_events_are_named(tmp_path, k):
    path = tmp_path / "a.jsonl"
    write_log(path)
    lines = lines_of(path)
    lines[k - 1], lines[k] = lines[k], lines[k - 1]
    path.write_bytes(b"".join(lines))
    check = verify(path)
    assert not check.ok and check.first_bad_line == k


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.floats(0, 1, exclude_max=True), value=st.integers(0, 255))
def test_any_one_byte_edit_fails_at_its_line(tmp_path, where, value):
    path = tmp_path / "a.jsonl"
    if not path.exists():
        write_log(path, 4)
    original = path.read_bytes()
    pos = int(where * len(original))
    if original[pos] == value:
        value = (value + 1) % 256
    edited = bytearray(original)
    edited[pos] = value
    path.write_bytes(edited)
    try:
        check = verify(path)
        assert not check.ok
        assert check.first_bad_line == original[:pos].count(b"\n") + 1
    finally:
        path.write_bytes(original)


def test_truncated_last_line_is_detected(tmp_path):
    path = tmp_path / "a.jsonl"
    write_log(path, 3)
    path.write_bytes(path.read_bytes()[:-20])
    check = verify(path)
    assert not check.ok and check.first_bad_line == 3 and "incomplete" in check.reason


def test_removing_the_last_event_needs_the_head_file(tmp_path):
    path, head = tmp_path / "a.jsonl", tmp_path / "a.head.json"
    write_log(path, 4, head_file=head)
    assert verify(path, head_file=head).ok
    path.write_bytes(b"".join(lines_of(path)[:-1]))
    assert verify(path).ok  # documented: the chain alone cannot see a removed tail
    check = verify(path, head_file=head)
    assert not check.ok and check.first_bad_line == 4 and "removed" in check.reason


def test_head_file_catches_events_it_does_not_cover_and_replaced_logs(tmp_path):
    path, head = tmp_path / "a.jsonl", tmp_path / "a.head.json"
    write_log(path, 2, head_file=head)
    AuditLog(path).append({"partner": "x"})  # written without updating the head
    check = verify(path, head_file=head)
    assert not check.ok and check.first_bad_line == 3 and "not covered" in check.reason
    write_log(path2 := tmp_path / "fresh.jsonl", 2)
    path.write_bytes(path2.read_bytes())  # a consistent but different log
    check = verify(path, head_file=head)
    assert not check.ok and check.first_bad_line == 2 and "head file" in check.reason
    with pytest.raises(AuditError, match="nothing was appended"):
        AuditLog(path, head_file=head).append({"partner": "y"})


def test_append_refuses_a_broken_log(tmp_path):
    path = tmp_path / "a.jsonl"
    write_log(path, 3)
    lines = lines_of(path)
    lines[1] = edit_value(lines[1])
    path.write_bytes(b"".join(lines))
    before = path.read_bytes()
    with pytest.raises(AuditError, match="line 2"):
        AuditLog(path).append({"partner": "z"})
    assert path.read_bytes() == before


def test_concurrent_appends_keep_the_chain(tmp_path):
    path = tmp_path / "a.jsonl"

    def worker(n: int) -> None:
        log = AuditLog(path)
        for i in range(15):
            log.append({"partner": f"p{n}", "i": i})
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check = verify(path)
    assert check.ok and check.lines == 90


def test_show_is_a_table_with_the_verdict(tmp_path):
    path = tmp_path / "a.jsonl"
    write_log(path, 3)
    text = show(path)
    assert text.splitlines()[0].split()[:5] == ["seq", "time", "partner", "purpose", "outcome"]
    assert "bank-1" in text and "r1/r2" in text and "epsilon=0.2" in text
    assert text.splitlines()[-1].startswith("chain intact: 3 event(s)")
    lines = lines_of(path)
    lines[1] = b"garbage\n"
    path.write_bytes(b"".join(lines))
    text = show(path)
    assert "<not a JSON event>" in text and "CHAIN BROKEN at line 2" in text


def test_missing_log_is_a_clear_input_error(tmp_path):
    with pytest.raises(AuditError, match="not found"):
        verify(tmp_path / "none.jsonl")
    assert issubclass(AuditError, InputError)
    assert verify(_empty(tmp_path)).ok


def _empty(folder: Path) -> Path:
    path = folder / "empty.jsonl"
    path.write_bytes(b"")
    return path


def test_an_equivalent_but_different_spelling_is_an_edit(tmp_path):
    path = tmp_path / "a.jsonl"
    write_log(path, 2)
    data = path.read_bytes()
    assert b'"epsilon":0.0,' in data
    path.write_bytes(data.replace(b'"epsilon":0.0,', b'"epsilon":0e0,'))  # same JSON value, one byte
    check = verify(path)
    assert not check.ok and check.first_bad_line == 1 and "canonical" in check.reason
