"""The partner-side check that runs before Flower installs an app bundle: fail closed, and one
log line per decision."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fedcredit.clients import verified_clientapp as v
from fedcredit.deployment import PROJECT_DIR
from fedcredit.deployment.app_bundle import build_bundle, sign_app
from fedcredit.protection.app_signing import AppRejected, new_signing_key


@dataclass
class FakeFab:          # the two attributes of flwr's Fab the check reads
    content: bytes
    hash_str: str = "h"


@dataclass
class FakeRun:
    run_id: int = 7
    fab_id: str = "fedcredit/fedcredit"
    override_config: dict = field(default_factory=dict)


@pytest.fixture
def signed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pub = new_signing_key(tmp_path / "app.key")
    log = tmp_path / "apps.jsonl"
    monkeypatch.setenv(v.ENV_LOG, str(log))
    monkeypatch.setenv(v.ENV_PARTNER, "bank-a")
    return FakeFab(build_bundle(PROJECT_DIR)), sign_app(tmp_path / "app.key", PROJECT_DIR).to_text(), pub, log


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_no_trusted_key_refuses_everything(signed, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    fab, sig, _, log = signed
    monkeypatch.delenv(v.ENV_TRUSTED, raising=False)
    with pytest.raises(AppRejected, match="no trusted app-signing key"):
        v.check(fab, FakeRun(override_config={"app-signature": sig}))
    assert _log(log)[0]["decision"] == "refused" and _log(log)[0]["partner"] == "bank-a"
    assert "REFUSED app 'fedcredit/fedcredit' of run 7" in capsys.readouterr().err


def test_signed_bundle_is_accepted_and_logged(signed, monkeypatch: pytest.MonkeyPatch) -> None:
    fab, sig, pub, log = signed
    monkeypatch.setenv(v.ENV_TRUSTED, str(pub))
    v.check(fab, FakeRun(override_config={"app-signature": sig}))
    (entry,) = _log(log)
    assert entry["decision"] == "accepted" and entry["run_id"] == 7 and entry["key_id"] == json.loads(sig)["key_id"]


def test_unsigned_or_altered_bundle_is_refused_and_logged(signed, monkeypatch: pytest.MonkeyPatch) -> None:
    fab, sig, pub, log = signed
    monkeypatch.setenv(v.ENV_TRUSTED, str(pub))
    with pytest.raises(AppRejected, match="unsigned"):
        v.check(fab, FakeRun())
    with pytest.raises(AppRejected, match="changed after it was signed"):
        v.check(FakeFab(fab.content + b"!"), FakeRun(override_config={"app-signature": sig}))
    assert [e["decision"] for e in _log(log)] == ["refused", "refused"]


def test_launcher_runs_this_interpreter() -> None:
    import sys

    text = v.launcher_script()
    assert text.splitlines()[0] == f"#!{sys.executable}" and "from fedcredit.clients.warm_start import launch" in text


def test_a_bundle_is_unpacked_and_checked_by_flower_once_then_its_folder_reused(signed, tmp_path: Path) -> None:
    from flwr.cli.install import install_from_fab

    fab = signed[0]
    calls: list[bytes] = []

    def install(content: bytes, install_dir: Path | None = None, **kwargs) -> Path:
        calls.append(content)
        return install_from_fab(content, install_dir, **kwargs)

    home = tmp_path / "flwr-home"
    first = v.install_once(install, fab.content, home, skip_prompt=True)
    assert (first / "pyproject.toml").is_file() and len(calls) == 1
    assert v.install_once(install, fab.content, home, skip_prompt=True) == first and len(calls) == 1
    shutil.rmtree(first)                                       # the folder is gone: Flower installs again
    assert v.install_once(install, fab.content, home, skip_prompt=True) == first and len(calls) == 2
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    assert v.install_once(lambda content, install_dir, **kw: calls.append(content) or elsewhere,
                          fab.content + b" ", home) == elsewhere     # other bytes: asked anew
    assert calls[-1] == fab.content + b" " and len(calls) == 3


def test_the_clientapp_asks_again_for_a_missing_part_within_a_tenth_of_a_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime's pull (Flower's own function) retries after 0.05 s, not Flower's 1 s."""
    from flwr.supercore.inflatable import inflatable_utils
    from flwr.supernode.runtime import run_clientapp as runtime

    monkeypatch.setattr(runtime, "pull_and_inflate_object_from_tree",
                        inflatable_utils.pull_and_inflate_object_from_tree)    # restored after the test
    assert v.prompt_object_pulls(runtime)
    pull = runtime.pull_and_inflate_object_from_tree
    assert pull.func is inflatable_utils.pull_and_inflate_object_from_tree and pull.keywords["initial_backoff"] < 0.1
    assert not v.prompt_object_pulls(runtime)         # already wrapped: left as it is
