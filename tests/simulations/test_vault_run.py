"""A real simulation with every partner's table in an encrypted vault: no plaintext row
reaches disk, every access is audited, and the audit trail verifies (and fails when edited)."""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from pathlib import Path

import pytest

from fedcredit.cli.main import main
from fedcredit.protection.audit import verify
from fedcredit.protection.keys import new_key_file
from fedcredit.protection.vault import encrypt_file
from fedcredit.server.app import RunSettings
from fedcredit.simulations.runner import simulate
from tests.conftest import make_partner_frame, write_scenario

pytestmark = pytest.mark.e2e


def _needles(frames) -> list[bytes]:
    """Byte strings that only a plaintext row could contain."""
    out = []
    for frame in frames.values():
        out += [token.encode() for token in frame["id"].head(50)]
        row = frame.iloc[7]
        out.append(f"{row['id']},{row['age']},".encode())
    return out


def _scan(roots: list[Path], since: float, needles: list[bytes]) -> list[str]:
    hits = []
    for root in roots:
        for folder, _, files in os.walk(root):
            for name in files:
                path = Path(folder) / name
                try:
                    st = path.stat()
                    if st.st_mtime < since or st.st_size > 200 * 2**20 or not path.is_file():
                        continue
                    blob = path.read_bytes()
                except OSError:
                    continue
                hits += [f"{path}: {n[:30]!r}" for n in needles if n in blob]
    return hits


def test_vault_simulation_leaves_no_plaintext_and_an_intact_audit_trail(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    frames = {name: make_partner_frame(rows, seed, shift=shift)
              for name, rows, seed, shift in (("bank-a", 1200, 1, 0.0), ("insurer-b", 800, 2, 0.5),
                                              ("platform-c", 500, 3, 1.0))}
    for frame in frames.values():
        frame["id"] = [f"CUST-{secrets.token_hex(8)}" for _ in range(len(frame))]
    folder = tmp_path / "data"
    scenario = write_scenario(folder, frames, federation={"rounds": 2},
                              privacy={"mode": "sample", "epsilon": 5.0, "run_epsilon": 5.0, "delta": 1e-4,
                                       "noise_multiplier": 2.0, "stats_noise_multiplier": 2.0},
                              partner_fields={n: {"data": f"{n}.vault", "key": f"{n}.key"} for n in frames})
    needles = _needles(frames)
    assert _scan([folder], 0, needles), "the scan must find plaintext where it exists"
    for name in frames:
        plain = folder / f"{name}.csv"
        encrypt_file(plain, folder / f"{name}.vault", new_key_file(folder / f"{name}.key"))
        plain.unlink()
    assert not _scan([folder], 0, needles), "the test data itself must only exist encrypted"

    started = time.time() - 1
    result = simulate(RunSettings(scenario=str(scenario), out_dir=str(tmp_path / "run")))
    assert result.summary["federated"]["auc"] > 0.6 and result.summary["centralized"]["auc"] > 0.6

    roots = [tmp_path, Path(tempfile.gettempdir()), Path("/tmp/ray")]
    assert _scan([r for r in roots if r.exists()], started, needles) == []

    for name in frames:
        log = folder / f"{name}.audit.jsonl"
        check = verify(log)
        assert check.ok, check.reason
        text = log.read_text()
        for purpose in ("check", "stats", "train", "evaluate", "yardstick"):
            assert f'"purpose":"{purpose}"' in text, (name, purpose)
        assert '"event":"privacy-release"' in text and '"outcome":"granted"' in text
    assert main(["audit", "verify", str(folder / "bank-a.audit.jsonl")]) == 0
    log = folder / "bank-a.audit.jsonl"
    data = bytearray(log.read_bytes())
    data[len(data) // 2] ^= 0x01
    log.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["audit", "verify", str(log)]) != 0
    assert "line" in capsys.readouterr().err + capsys.readouterr().out
