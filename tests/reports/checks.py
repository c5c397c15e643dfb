"""Checks shared by the report tests and the end-to-end run: every number on the page is in the JSON."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]\d+)?(?![\w.])")


class _Text(HTMLParser):
    """The page's visible text (no <style>, no attributes: the plots are base64 in `src`)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skip += tag in ("style", "script")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("style", "script")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def page_numbers(page: str) -> list[str]:
    parser = _Text()
    parser.feed(page)
    return NUMBER.findall(" ".join(parser.parts))


def _walk(value: Any, numbers: list[float], words: set[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            words.update(NUMBER.findall(str(k)))
            _walk(v, numbers, words)
    elif isinstance(value, list):
        for v in value:
            _walk(v, numbers, words)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        numbers.append(float(value))
    else:
        words.update(NUMBER.findall(str(value)))


def numbers_missing_from_json(page: str, report: Any) -> list[str]:
    """The numbers on `page` that no JSON value formats to (same decimals; or in a JSON text)."""
    numbers: list[float] = []
    words: set[str] = set()
    _walk(report, numbers, words)
    formatted: set[str] = set()
    for token in set(page_numbers(page)):
        if "e" in token:
            formatted |= {f"{v:.2e}" for v in numbers}
        else:
            decimals = len(token.split(".")[1]) if "." in token else 0
            formatted |= {f"{v:.{decimals}f}" for v in numbers}
    return sorted({t for t in page_numbers(page) if t not in words and t not in formatted})


def assert_model_report(run_dir: Path, summary: dict[str, Any]) -> None:
    """A real run's model-risk report: pooled metrics equal the summary's, every partner is in it, the
    summary's calibration is the report's pooled one, and every number on the page is in the JSON."""
    report = json.loads((run_dir / "model_report.json").read_text())
    pooled = report["discrimination"]["pooled"]
    # the same released counts summed in another order (noised counts are floats): equal up to rounding
    assert pooled["auc"] == pytest.approx(summary["federated"]["auc"], rel=1e-9)
    assert pooled["ks"] == pytest.approx(summary["federated"]["ks"], rel=1e-9)
    assert pooled["auc_low"] < pooled["auc"] < pooled["auc_high"]
    names = [p["name"] for p in summary["partners"]]
    evaluated = [n for n in names if n not in report["not_evaluated"]]
    assert evaluated and list(report["discrimination"]["partners"]) == evaluated
    assert list(report["score_distribution"]["partners"]) == evaluated
    assert summary["calibration"]["deciles"] == report["calibration"]["pooled"]["deciles"]
    assert sum(d["rows"] for d in summary["calibration"]["deciles"]) == pytest.approx(
        sum(d["rows"] for d in report["calibration"]["pooled"]["deciles"]))
    assert report["feature_psi"] and all(set(f["partners"]) <= set(names) for f in report["feature_psi"].values())
    assert report["yardsticks"]["centralized_auc"] == summary["centralized"]["auc"]
    page = (run_dir / "model_report.html").read_text()
    assert page.count("data:image/png;base64,") == 2
    assert numbers_missing_from_json(page, report) == []
