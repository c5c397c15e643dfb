"""Shared fixtures: small partner tables written to temp folders, and a scenario writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w

SPEC = {
    "label": "bad_flag",
    "bad": 1,
    "numeric": ["age", "income", "late"],
    "categorical": ["housing"],
    "drop": ["id"],
    "missing": {"late": [96, 98]},
}


def make_partner_frame(n: int, seed: int, *, shift: float = 0.0) -> pd.DataFrame:
    """A small table with a real signal: default risk falls with income and age, rises with `late`."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40 + 5 * shift, 10, n).clip(18, 90)
    income = rng.lognormal(8 + 0.3 * shift, 0.6, n)
    late = rng.poisson(0.4 + 0.3 * shift, n).astype(float)
    housing = rng.choice(["rent", "own", "mortgage"], n, p=[0.4, 0.3, 0.3])
    logit = -1.5 - 0.03 * (age - 40) - 0.8 * (np.log(income) - 8) + 0.9 * late + 0.4 * (housing == "rent")
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    income[rng.random(n) < 0.1] = np.nan
    late[rng.random(n) < 0.01] = 98
    return pd.DataFrame({"id": np.arange(n), "age": age.round(), "income": income.round(2),
                         "late": late, "housing": housing, "bad_flag": label})


def write_scenario(folder: Path, frames: dict[str, pd.DataFrame], *, dataset: dict | None = None,
                   federation: dict | None = None, kinds: dict[str, str] | None = None,
                   privacy: dict | None = None, partner_fields: dict[str, dict] | None = None) -> Path:
    """Write each frame as `<name>.csv` plus a scenario.toml; return the scenario path.
    `partner_fields` adds or replaces keys of a partner's entry (privacy, data, key, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    partners = []
    for i, (name, frame) in enumerate(frames.items()):
        frame.to_csv(folder / f"{name}.csv", index=False)
        kind = (kinds or {}).get(name, ("bank", "insurer", "platform")[i % 3])
        partners.append({"name": name, "kind": kind, "data": f"{name}.csv"})
        partners[-1].update((partner_fields or {}).get(name, {}))
    scenario = {"dataset": dataset or SPEC, "partners": partners,
                "federation": {"rounds": 3, "model": "logistic", "local_epochs": 3,
                              "learning_rate": 0.05, **(federation or {})}}
    if privacy:
        scenario["privacy"] = privacy
    path = folder / "scenario.toml"
    path.write_text(tomli_w.dumps(scenario))
    return path


@pytest.fixture(autouse=True)
def machine_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own machine state folder (dataset anchors): a budget spent by one
    test's data never leaks into another's. Processes a test starts inherit it."""
    folder = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("FEDCREDIT_STATE_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def app_signing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the consortium's app-signing public key, the signature of the app as it is now): what a
    coordinator's `app_signature` and a partner's `trusted_app_keys` name in a deployment."""
    from fedcredit.deployment import PROJECT_DIR
    from fedcredit.deployment.app_bundle import sign_app
    from fedcredit.protection.app_signing import new_signing_key

    folder = tmp_path_factory.mktemp("app-signing")
    pub = new_signing_key(folder / "app-signing.key")
    sig = folder / "fedcredit-app.sig"
    sig.write_text(sign_app(folder / "app-signing.key", PROJECT_DIR).to_text() + "\n")
    return pub, sig


@pytest.fixture
def three_partners(tmp_path: Path) -> Path:
    frames = {"bank-a": make_partner_frame(1500, 1), "insurer-b": make_partner_frame(900, 2, shift=0.5),
              "platform-c": make_partner_frame(500, 3, shift=1.0)}
    return write_scenario(tmp_path / "consortium", frames)


# The real deployments, in two groups of about equal length (measured: 11 tests, ≈ 1,250 s in one group made
# the suite's critical path); each group's tests run one after another on one worker.
DEPLOYMENT_GROUPS = {"test_deployment_run.py": 1, "test_deployment_processes.py": 1}   # the others: group 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under `pytest -n 2 --dist loadgroup` (make test) the tests that start a real deployment run in two
    groups, each one after another on a worker — mostly waiting on Flower's polling and timeouts, so the two
    groups' waits overlap — with everything else spread around them; without xdist the mark does nothing.
    Each worker picks its processes' ports from its own range (`tests.processes.free_port_block`)."""
    for item in items:
        path = Path(str(item.fspath))
        if item.get_closest_marker("e2e") and path.parent.name == "deployment":
            item.add_marker(pytest.mark.xdist_group(f"real-deployment-{DEPLOYMENT_GROUPS.get(path.name, 2)}"))
