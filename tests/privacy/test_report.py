"""The privacy report: JSON content, and the HTML page rendered by headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fedcredit.privacy.report import render_text, write_privacy_report

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _releases(sample_rate: float, sigma: float) -> list[dict]:
    """A partner's lifetime releases: two statistics releases and three DP-SGD rounds on training
    rows, one evaluation on held-out rows."""
    train, test = [0.25, 1.0], [0.0, 0.25]
    out = [{"id": f"s{i}", "run": "r1", "round": 0, "mechanism": "gaussian-statistics", "rows": train,
            "noise_multiplier": 20.0, "sample_rate": 1.0, "steps": 1, "delta": 1e-6} for i in range(2)]
    out += [{"id": f"d{r}", "run": "r1", "round": r, "mechanism": "dp-sgd", "rows": train, "noise_multiplier": sigma,
             "sample_rate": sample_rate, "steps": 40, "delta": 1e-6} for r in (1, 2, 3)]
    out.append({"id": "e", "run": "r1", "round": 3, "mechanism": "gaussian-evaluation", "rows": test,
                "noise_multiplier": 5.0, "sample_rate": 1.0, "steps": 1, "delta": 1e-6})
    return out


def _summary() -> tuple[dict, list[dict]]:
    partners, rounds = [], []
    for i, (name, sr, sigma, budget) in enumerate((("bank-a", 0.01, 1.1, 1.0), ("platform-c", 0.1, 1.4, 0.8))):
        statement = {"mode": "sample", "epsilon": 0.3 + 0.1 * i, "epsilon_rdp": 0.4, "delta": 1e-6,
                     "budget": budget, "remaining": budget - 0.3, "accountant": "prv", "status": "ok",
                     "max_grad_norm": 1.0}
        partners.append({"name": name, "kind": "bank", "rows_train": 100, "rows_test": 30,
                         "federated": {"auc": 0.78}, "local": {"auc": 0.74}, "privacy": statement})
    for rnd in range(4):
        rounds.append({"round": rnd, "partners": {
            p["name"]: {**p["privacy"], "epsilon": 0.2 * (rnd + 1) * b, "noise_multiplier": s, "sample_rate": sr,
                        "steps": 1 if rnd == 0 else 40}
            for p, (sr, s, b) in zip(partners, ((0.01, 1.1, 1.0), (0.1, 1.4, 0.8)))}})
    partners[1]["privacy"].update(status="stopped", stopped_round=3, stopped_reason="declined: over budget")
    summary = {"run": "r1", "scenario": "demo", "federated": {"auc": 0.78}, "centralized": {"auc": 0.79},
               "partners": partners}
    return summary, rounds


def test_report_json_lists_every_release_and_statement(tmp_path: Path) -> None:
    summary, rounds = _summary()
    releases = {"bank-a": _releases(0.01, 1.1), "platform-c": _releases(0.1, 1.4)}
    report = write_privacy_report(tmp_path, summary, rounds, releases)
    saved = json.loads((tmp_path / "privacy_report.json").read_text())
    assert saved["partners"] == report["partners"]
    assert len(saved["rounds"]) == 12                                  # every release of this run
    assert {"rows", "steps", "sample_rate", "noise_multiplier", "clip_norm", "delta", "epsilon", "epsilon_rdp",
            "budget", "remaining", "status"} <= saved["rounds"][0].keys()
    assert {r["mechanism"] for r in saved["rounds"]} == {"gaussian-statistics", "dp-sgd", "gaussian-evaluation"}
    bank = saved["partners"][0]
    assert len(bank["releases"]) == 6 and bank["epsilon_recomputed"] > 0
    assert bank["recomputed_matches"] is False                        # the stated 0.3 is not what the releases cost
    assert {i["protection"] for i in saved["inventory"]} == {"noised", "public", "sealed", "withheld"}
    text = render_text(report)
    assert "platform-c" in text and "stopped at round 3" in text and "ε = 0.300 of 1" in text
    # regenerating from the run directory keeps the per-round records and the releases
    again = write_privacy_report(tmp_path, summary)
    assert again["rounds"] == saved["rounds"] and again["partners"][0]["releases"] == bank["releases"]


def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    summary, rounds = _summary()
    write_privacy_report(tmp_path, summary, rounds)
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1400",
                    f"--screenshot={shot}", (tmp_path / "privacy_report.html").as_uri()],
                   check=True, timeout=90, capture_output=True)
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[0] == 1400 and pixels.shape[1] == 1200
    plot_area = pixels[150:650, 30:900, :3]
    coloured = np.abs(plot_area - plot_area.mean(axis=2, keepdims=True)).sum(axis=2) > 0.3
    assert coloured.sum() > 500, "the epsilon plot did not render with coloured lines"


def test_undefined_auc_is_null_in_json_and_explained_in_html_and_text(tmp_path: Path) -> None:
    summary, rounds = _summary()
    reason = "the test rows hold 0 bad rows: AUC, KS and Gini need both bad and good rows"
    undefined = {"auc": None, "ks": None, "gini": None, "brier": 0.01, "logloss": 0.05, "n": 91,
                 "bad_rate": 0.0, "undefined": reason}
    summary["partners"][1]["federated"] = dict(undefined)
    summary["partners"][1]["local"] = dict(undefined)
    summary["centralized"] = {"auc": None, "undefined": "there are no test rows: no metric is defined"}
    report = write_privacy_report(tmp_path, summary, rounds)

    def strict(name: str):
        raise ValueError(f"non-standard JSON constant {name}")
    saved = json.loads((tmp_path / "privacy_report.json").read_text(), parse_constant=strict)
    platform = saved["partners"][1]
    assert platform["federated_auc"] is None and platform["local_auc"] is None
    assert platform["auc_undefined"] == reason and saved["partners"][0]["auc_undefined"] is None
    assert saved["utility"]["centralized_auc"] is None and "no test rows" in saved["utility"]["auc_undefined"]
    page = (tmp_path / "privacy_report.html").read_text()
    cells = re.findall(r"<td>(.*?)</td>", page)
    assert not any("nan" in c.lower() for c in cells) and f"platform-c: AUC undefined: {reason}" in page
    assert page.count('href="#na-platform-c"') == 2           # both AUC cells point to the reason
    text = render_text(report)
    line = next(ln for ln in text.splitlines() if "platform-c" in ln)
    assert f"AUC n/a: {reason}" in line and "nan" not in text.lower()


def test_report_rewrites_an_old_run_with_bare_nan_as_standard_json(tmp_path: Path, capsys) -> None:
    from fedcredit.cli.main import main

    summary, rounds = _summary()
    write_privacy_report(tmp_path, summary, rounds)
    old = json.dumps(summary).replace('"federated": {"auc": 0.78}, "local": {"auc": 0.74}, "privacy": {"mode": '
                                      '"sample", "epsilon": 0.4', '"federated": {"auc": NaN}, "local": {"auc": NaN}, '
                                      '"privacy": {"mode": "sample", "epsilon": 0.4', 1)
    assert "NaN" in old
    (tmp_path / "summary.json").write_text(old)
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "platform-c" in out and "nan" not in out.lower()
    saved = json.loads((tmp_path / "privacy_report.json").read_text(),
                       parse_constant=lambda c: pytest.fail(f"bare {c} in privacy_report.json"))
    assert saved["partners"][1]["federated_auc"] is None
