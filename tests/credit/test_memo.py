"""by_content: a pure function of a report's section runs once per distinct content."""

from __future__ import annotations

from fedcredit.credit.memo import by_content


def test_the_same_content_is_computed_once_and_other_content_anew() -> None:
    calls: list[dict] = []

    @by_content(lambda report: report["section"], maxsize=2)
    def draw(report: dict) -> str:
        calls.append(report)
        return f"png of {report['section']}"

    a = {"section": {"x": [1, 2], "y": 0.5}, "timing": 1}
    assert draw(a) == "png of {'x': [1, 2], 'y': 0.5}"
    assert draw({"timing": 2, "section": {"y": 0.5, "x": [1, 2]}}) == draw(a) and len(calls) == 1   # key order, other parts
    draw({"section": {"x": [1, 3], "y": 0.5}})
    assert len(calls) == 2
    draw({"section": 1})
    draw({"section": 2})                       # the oldest content is forgotten beyond maxsize
    draw(a)
    assert len(calls) == 5
