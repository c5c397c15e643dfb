"""The disclosure statement is derived from the release inventory and the guide carries it verbatim."""

from __future__ import annotations

from pathlib import Path

from fedcredit.privacy.disclosure import markdown, statement
from fedcredit.privacy.inventory import INVENTORY, NOISED, SEALED, WITHHELD

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


def test_every_inventory_field_has_a_row_per_mode() -> None:
    rows = {r["field"]: r for r in statement()}
    assert set(rows) == {i.path for i in INVENTORY} | set(WITHHELD)
    for item in INVENTORY:
        row = rows[item.path]
        want = {NOISED: ("noised", "exact"), SEALED: ("sealed", "sealed")}.get(item.protection, ("as sent", "as sent"))
        assert row["dp"].startswith(want[0]) and row["privacy_off"].startswith(want[1])
    for path in WITHHELD:
        assert rows[path]["dp"] == "not sent" and rows[path]["privacy_off"] == "exact"


def test_secure_aggregation_hides_only_the_update() -> None:
    rows = {r["field"]: r for r in statement()}
    assert rows["arrays.*"]["secagg"].startswith("only the weighted sum")
    assert all(r["secagg"].startswith("same") for f, r in rows.items() if f != "arrays.*")
    # what other partners see: the model, the shared transform, the FedAvg weights; never a partner's own
    # evaluation (the model artefact keeps the final model's, summed over every partner, for drift)
    assert rows["report.rows_train"]["other_partners"].startswith("yes")
    assert rows["report.evaluation.bad"]["other_partners"].startswith("only the final model's, summed over every")
    assert rows["report.evaluation.bins"]["other_partners"] == "no"


def test_the_guide_carries_the_generated_statement() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    start, end = "<!-- disclosure:start -->\n", "<!-- disclosure:end -->"
    assert text[text.index(start) + len(start):text.index(end)] == markdown(), \
        "docs/deployment.md is out of date: paste the output of `fedcredit disclosure` between the markers"
