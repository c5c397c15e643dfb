"""The settings a cross-validation (`fedcredit cv`) searches: `--grid` parsed and checked, and each
setting written into a scenario of its own.

Syntax: `KEY=V1,V2[;KEY=V1,V2 ...]` (several `--grid` options add keys), e.g.
`learning_rate=0.01,0.03;local_epochs=1,2`: every combination is one setting (here 4), in the order
given. Keys are named as in the scenario's tables: FEDERATION_KEYS of [federation], PRIVACY_KEYS of
[privacy] (set for every partner with a record-level DP policy). A value is read as a TOML value
(`0.01`, `2`, `true`, `[64, 32]`, `"adam"`), a bare word as text (`adam`); commas inside brackets
belong to the value (`hidden=[32,16],[64]`).
"""

from __future__ import annotations

import copy
import itertools
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fedcredit.credit.errors import InputError
from fedcredit.credit.scenario import FederationSettings, PrivacyPolicy, Scenario
from fedcredit.credit.validation import validated

# [federation] keys a search may vary: how the model trains. Not: test_fraction (it moves the test and
# fold rows), seed, the row minimums, node counts, timeouts, secure aggregation, evaluate_every (under
# DP each evaluation is a release) and cv_folds / cv_fold (set by the search itself).
FEDERATION_KEYS = ("rounds", "model", "strategy", "local_epochs", "batch_size", "optimizer", "learning_rate",
                   "weight_decay", "hidden", "proximal_mu", "server_learning_rate", "fraction_train", "stop",
                   "patience", "min_delta", "validation_fraction", "min_local_steps")
# [privacy] keys: DP-SGD's clipping norm and noise (a partner's budget, delta and caps are its policy, not
# settings to search; a noise grid's settings cost differently, and the plan shows the whole search's cost)
PRIVACY_KEYS = ("max_grad_norm", "noise_multiplier")
SOURCE = "--grid"


@dataclass(frozen=True)
class Setting:
    """One combination of the grid: {key: value} in the grid's key order."""

    values: dict[str, Any]

    @property
    def federation(self) -> dict[str, Any]:
        return {k: v for k, v in self.values.items() if k in FEDERATION_KEYS}

    @property
    def privacy(self) -> dict[str, Any]:
        return {k: v for k, v in self.values.items() if k in PRIVACY_KEYS}

    def label(self) -> str:
        """E.g. "learning_rate=0.01 local_epochs=2" ("scenario's settings" for the empty grid)."""
        return " ".join(f"{k}={_show(v)}" for k, v in self.values.items()) or "scenario's settings"


def _show(value: Any) -> str:
    return "[" + ",".join(_show(v) for v in value) + "]" if isinstance(value, list | tuple) else str(value)


def _split_top(text: str, sep: str) -> list[str]:
    """`text` split at `sep` outside brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _value(text: str, key: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        if text and all(c.isalnum() or c in "_-." for c in text):
            return text
        raise InputError(f"'{key}': cannot read the value {text!r} (a number, true/false, a list like [64, 32] "
                         "or a word)", source=SOURCE) from None


def parse_grid(texts: Sequence[str]) -> dict[str, list[Any]]:
    """`--grid` texts → {key: [values]} in the order given (syntax only; `check_grid` checks keys and values).
    InputError: a part without '=', a key given twice, an empty or repeated value."""
    grid: dict[str, list[Any]] = {}
    for text in texts:
        for part in _split_top(text, ";"):
            if not part:
                continue
            key, eq, values = part.partition("=")
            key = key.strip()
            if not eq or not key:
                raise InputError(f"{part!r} is not KEY=V1,V2 (e.g. \"learning_rate=0.01,0.03;local_epochs=1,2\")",
                                 source=SOURCE)
            if key in grid:
                raise InputError(f"'{key}' is given twice", source=SOURCE)
            items = _split_top(values, ",")
            if any(not item for item in items):
                raise InputError(f"'{key}' has an empty value: give values separated by commas", source=SOURCE)
            parsed = [_value(item, key) for item in items]
            if len({repr(v) for v in parsed}) < len(parsed):
                raise InputError(f"'{key}' lists a value twice", source=SOURCE)
            grid[key] = parsed
    return grid


def check_grid(grid: Mapping[str, list[Any]], scenario: Scenario) -> list[Setting]:
    """Every setting of `grid` for `scenario`, each value checked by the scenario's own rules
    (InputError: a key that does not exist, naming the valid ones; a value the scenario would refuse; a
    privacy key while no partner uses record-level DP). The empty grid is one setting: the scenario's own."""
    for key in grid:
        if key not in FEDERATION_KEYS and key not in PRIVACY_KEYS:
            raise InputError(f"'{key}' is not a setting a cross-validation can search; valid keys: [federation] "
                             f"{', '.join(FEDERATION_KEYS)}; [privacy] {', '.join(PRIVACY_KEYS)}", source=SOURCE)
        if key in PRIVACY_KEYS and not any(p.privacy.enabled for p in scenario.partners):
            raise InputError(f"'{key}' is a record-level DP setting, but no partner of the scenario uses record-level "
                             "DP ([privacy] mode \"sample\")", source=SOURCE)
    for key, values in grid.items():
        for v in values:
            if key in FEDERATION_KEYS:
                validated(lambda **kw: replace(scenario.federation, **kw), {key: v}, locate=SOURCE,
                          schema=FederationSettings)
            else:
                validated(lambda **kw: replace(PrivacyPolicy(mode="sample"), **kw), {key: v},
                          locate=f"{SOURCE} {key}", schema=PrivacyPolicy)
    keys = list(grid)
    return [Setting(dict(zip(keys, combo))) for combo in itertools.product(*(grid[k] for k in keys))]


def _absolute(value: Any, base_dir: Path) -> Any:
    return str((base_dir / value).resolve()) if isinstance(value, str) and value else value


def _resolve_privacy(table: dict[str, Any], base_dir: Path) -> None:
    if table.get("ledger_dir") not in (None, "", "run"):
        table["ledger_dir"] = _absolute(table["ledger_dir"], base_dir)


def derived_raw(raw: Mapping[str, Any], base_dir: Path, setting: Setting, *, folds: int, fold: int
                ) -> dict[str, Any]:
    """A copy of a scenario file's tables (`raw`, as read) for one training of the search: the setting's
    [federation] and [privacy] values, the fold, and every path made absolute (the copy lives elsewhere).
    A privacy value goes into every privacy table the file has (the scenario's and the partners' own), so a
    partner without record-level DP stays without it."""
    out = copy.deepcopy(dict(raw))
    out["federation"] = {**out.get("federation", {}), **setting.federation, "cv_folds": folds, "cv_fold": fold}
    tables = ([out["privacy"]] if isinstance(out.get("privacy"), dict) else []) + [
        p["privacy"] for p in out.get("partners", []) if isinstance(p, dict) and isinstance(p.get("privacy"), dict)]
    for table in tables:
        table.update(setting.privacy)
        _resolve_privacy(table, base_dir)
    for partner in out.get("partners", []):
        if not isinstance(partner, dict):
            continue
        if isinstance(partner.get("data"), str):
            partner["data"] = _absolute(partner["data"], base_dir)
        key = partner.get("key")
        if isinstance(key, str) and not key.startswith(("env:", "passphrase-env:")):
            partner["key"] = _absolute(key, base_dir)
    return out
