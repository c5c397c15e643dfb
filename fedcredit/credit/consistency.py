"""Checks across partners that no single partner's table can reveal on its own.

Run by the coordinator on the round-0 statistics (and by a simulation before it starts):
the label must be coded the same way everywhere, a level must be spelled the same way
everywhere, and a partner whose bad rate is far from everyone else's is worth a warning
(an inverted or mis-mapped label looks exactly like that).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from fedcredit.credit.columns import canonical

BAD_RATE_FACTOR = 4.0     # warn when a partner's bad odds differ from the others' by more than this factor


def label_coding_conflict(codings: Mapping[str, tuple[str, ...]], bad: object) -> str:
    """"" when every partner's label takes the same two values, else the refusal naming them."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for partner, values in codings.items():
        groups.setdefault(tuple(sorted(values)), []).append(partner)
    if len(groups) <= 1:
        return ""
    described = "; ".join(f"{', '.join(sorted(ps))}: {{{', '.join(v)}}}" for v, ps in sorted(groups.items()))
    return (f"the partners code the label differently ({described}) while [dataset].bad = {bad!r}: a partner "
            "with another coding would train inverted or mixed labels. Recode the label to one coding at every "
            "partner before training")


def bad_rate_outliers(counts: Mapping[str, tuple[float, float]]) -> list[str]:
    """Warnings for partners whose bad rate is far from the others' (counts: partner → (bad, rows))."""
    rates = {p: min(max(b / r, 1e-4), 1 - 1e-4) for p, (b, r) in counts.items() if r > 0}
    if len(rates) < 2:
        return []
    warnings = []
    for partner, rate in rates.items():
        others_bad = sum(b for p, (b, _) in counts.items() if p != partner)
        others_rows = sum(r for p, (_, r) in counts.items() if p != partner)
        if others_rows <= 0:
            continue
        other = min(max(others_bad / others_rows, 1e-4), 1 - 1e-4)
        ratio = math.exp(abs(math.log(rate / (1 - rate)) - math.log(other / (1 - other))))
        if ratio > BAD_RATE_FACTOR:
            warnings.append(f"partner '{partner}' has a bad rate of {rate:.1%} against {other:.1%} at the other "
                            "partners: check that its label means the same (which value is 'bad') before trusting "
                            "the model")
    return warnings


def canonical_code(text: str) -> str:
    """How a level compares across spellings: numbers by value ('01' = '1' = '1.0'), text trimmed
    and case-folded (as `fedcredit.credit.columns.same_code`)."""
    return canonical(text).casefold()


def level_spelling_conflicts(levels: Mapping[str, Mapping[str, list[str] | set[str] | tuple[str, ...]]]) -> list[str]:
    """For each column, levels that mean the same code but are spelled differently by different
    partners (levels: partner → column → level names)."""
    out = []
    columns = sorted({c for per in levels.values() for c in per})
    for col in columns:
        spellings: dict[str, dict[str, set[str]]] = {}   # canonical → spelling → partners
        for partner, per in levels.items():
            for level in per.get(col, ()):
                spellings.setdefault(canonical_code(level), {}).setdefault(level, set()).add(partner)
        for _, by_spelling in sorted(spellings.items()):
            if len(by_spelling) > 1:
                described = "; ".join(f"'{s}' at {', '.join(sorted(ps))}" for s, ps in sorted(by_spelling.items()))
                out.append(f"column '{col}': one code is spelled differently by different partners ({described}); "
                           "make every partner write it the same way, or declare the code list in "
                           "[dataset].levels")
    return out
