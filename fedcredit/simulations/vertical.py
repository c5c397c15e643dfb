"""A vertical simulation's driver-side work: check every party's table before anything starts, the
yardsticks beside the federated model, and scoring applicants over all parties' files.

The simulation's driver holds every party's file (that is what a simulation is), so the yardsticks join the
parties' rows by their normalised keys in the clear here — never in the federation: the label holder alone
(its own columns) and a centralised logistic regression on the joined rows, both on the same customers and
held-out split as the federation, with each party's transform fitted exactly on its own training rows. The
federated model's exact held-out metrics are computed here too from the parties' saved parts (the federation
itself reports the label holder's released, under DP noised, histogram).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fedcredit.clients.vertical import PART_FORMAT
from fedcredit.clients.vertical_party import PartyData, open_party_data, party_gate, statistics_refusal
from fedcredit.credit.customer_keys import read_keys
from fedcredit.credit.errors import InputError
from fedcredit.credit.features import FeatureTransform
from fedcredit.credit.metrics import exact_metrics
from fedcredit.credit.party_table import key_fractions, prepare_party_table
from fedcredit.credit.protocol import TaskConfig
from fedcredit.credit.reading import read_table
from fedcredit.credit.rundir import RunDirectory
from fedcredit.credit.scenario import Partner, Scenario
from fedcredit.privacy.gram import clip_rows, norm_columns, row_bound, vertical_run_shape


def _task(scenario: Scenario, run_dir: Path | None) -> TaskConfig:
    return TaskConfig(scenario.dataset, scenario.federation, run=RunDirectory(run_dir).run_id if run_dir else "",
                      run_dir=str(run_dir or ""))


def check_parties(scenario: Scenario, run_dir: Path | None = None, *, purpose: str = "check"
                  ) -> dict[str, PartyData]:
    """Every party's table checked exactly as its client will read it (key column, duplicate or empty keys,
    the label only at the label holder, declared columns) and each DP party's policy; bad input stops the run
    here, before any PSI message. (The overlap is only known after the PSI: the run checks it then.)"""
    task = _task(scenario, run_dir)
    data = {p.name: open_party_data(p, task, purpose=purpose) for p in scenario.partners}
    for d in data.values():
        gate = party_gate(d, task, rows=len(d.table.keys), readonly=True)
        if gate is not None:
            gate.check_policy(_shape(d, scenario))
            why = statistics_refusal(d, _shape(d, scenario).rows)
            if why:
                raise InputError(why, source=f"partner '{d.partner.name}' privacy", field="stats_noise_multiplier")
    return data


def _shape(d: PartyData, scenario: Scenario) -> Any:
    """The run a party plans before the alignment: its training rows are at most its own rows outside the
    held-out split (the epsilon of a one-shot release does not depend on the count)."""
    f = scenario.federation.test_fraction
    return vertical_run_shape(int(len(d.table.keys) * (1 - f)), label_holder=d.holds_label, test_fraction=f)


def plan_vertical(scenario: Scenario, run_dir: Path) -> Any:
    """Each party's plan for one vertical run (`fedcredit plan`): nothing is released, ledgers only read."""
    from fedcredit.simulations.planning import PartnerPlan, ScenarioPlan

    data = check_parties(scenario, run_dir)
    task = _task(scenario, run_dir)
    plans = []
    for name, d in data.items():
        gate = party_gate(d, task, rows=len(d.table.keys), readonly=True)
        policy = d.partner.privacy
        if gate is None:
            plans.append(PartnerPlan(name, policy.mode))
            continue
        plans.append(PartnerPlan(name, policy.mode, policy.epsilon, policy.run_cap, policy.delta,
                                 gate.statement().epsilon, gate.plan_run(_shape(d, scenario))))
    return ScenarioPlan(plans, "")


def joined_rows(data: Mapping[str, PartyData], scenario: Scenario) -> dict[str, np.ndarray]:
    """{party: its row numbers} of the customers every party holds, in one common order (sorted keys)."""
    common = set.intersection(*(set(d.table.keys) for d in data.values()))
    keys = sorted(common)
    return {name: _rows_of(d.table.keys, keys) for name, d in data.items()} | {"__keys__": np.asarray(keys)}


def _rows_of(own: list[str], keys: list[str]) -> np.ndarray:
    where = {k: i for i, k in enumerate(own)}
    return np.asarray([where[k] for k in keys], dtype=np.int64)


def _block(d: PartyData, rows: np.ndarray, transform: FeatureTransform) -> np.ndarray:
    x = transform.transform(d.table.features.iloc[rows].reset_index(drop=True)).astype(np.float64)
    return clip_rows(x, row_bound(norm_columns(transform)))


def _metrics(y: np.ndarray, p_bad: np.ndarray) -> dict[str, Any]:
    """Exact metrics of held-out rows (the driver holds them; nothing here is a party's release)."""
    return dict(exact_metrics(y, p_bad))


def vertical_yardsticks(summary: dict[str, Any], scenario: Scenario, run_dir: Path) -> None:
    """Add `centralized`, `label_holder_alone` and `federated_exact` (and each party's `rows`) to `summary`."""
    from sklearn.linear_model import LogisticRegression

    data = check_parties(scenario, run_dir, purpose="yardstick")
    holder = scenario.label_holder.name
    joined = joined_rows(data, scenario)
    keys = list(joined.pop("__keys__"))
    test = key_fractions(keys) < scenario.federation.test_fraction
    y = data[holder].table.label[joined[holder]].astype(int)
    blocks_train, blocks_test = {}, {}
    for name, d in data.items():
        rows = joined[name]
        spec = d.partner.spec
        transform = FeatureTransform.fit_rows(d.table.features.iloc[rows[~test]].reset_index(drop=True), spec)
        blocks_train[name], blocks_test[name] = _block(d, rows[~test], transform), _block(d, rows[test], transform)

    def fit(names: list[str]) -> dict[str, Any]:
        x_train = np.column_stack([blocks_train[n] for n in names])
        x_test = np.column_stack([blocks_test[n] for n in names])
        lr = LogisticRegression(C=1e4, max_iter=5000).fit(x_train, y[~test])
        return _metrics(y[test], lr.predict_proba(x_test)[:, 1])

    summary["centralized"] = fit(list(data))
    summary["label_holder_alone"] = fit([holder])
    alone = summary["label_holder_alone"].get("auc")
    summary["added_by"] = {}            # what each other party's columns add to the label holder's own
    for name in data:
        if name != holder:
            with_it = fit([holder, name])
            summary["added_by"][name] = {"auc": with_it.get("auc"), "ks": with_it.get("ks"),
                                         "auc_gain": None if alone is None or with_it.get("auc") is None
                                         else with_it["auc"] - alone}
    summary["federated_exact"] = score_parties(run_dir, {n: d for n, d in data.items()}, rows=joined, test=test,
                                               label=y[test])
    for p in summary["partners"]:
        p["rows"] = len(data[p["name"]].table.keys)
        p["aligned_rows"] = len(keys)
    summary["yardsticks_note"] = ("centralised and label-holder-alone models: scikit-learn logistic regression on "
                                  "the same customers, split and per-party transforms (exact, no DP); "
                                  "federated_exact: the federated parts scored here on the held-out rows")


def load_parts(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Each party's saved model part (`parties/<name>.json` of a simulated run)."""
    folder = Path(run_dir) / "parties"
    parts = {}
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        part = json.loads(f.read_text())
        if part.get("format") != PART_FORMAT:
            raise InputError(f"is not a fedcredit vertical model part (format {part.get('format')!r})", source=str(f))
        parts[part["party"]] = part
    if not parts:
        raise InputError("holds no vertical model parts (parties/*.json): is it a vertical run?", source=str(run_dir))
    return parts


def partial_score(part: Mapping[str, Any], features: pd.DataFrame) -> np.ndarray:
    """One party's partial score (its clipped transformed columns · its weights; the label holder's includes
    the intercept)."""
    transform = FeatureTransform.from_dict(part["transform"])
    x = clip_rows(transform.transform(features).astype(np.float64), float(part["bound"]))
    return x @ np.asarray(part["weights"]) + float(part.get("intercept") or 0.0)


def score_parties(run_dir: Path, data: Mapping[str, PartyData], *, rows: Mapping[str, np.ndarray],
                  test: np.ndarray, label: np.ndarray) -> dict[str, Any]:
    parts = load_parts(run_dir)
    logit = sum(partial_score(parts[n], d.table.features.iloc[rows[n][test]].reset_index(drop=True))
                for n, d in data.items())
    return _metrics(label, 1.0 / (1.0 + np.exp(-np.clip(logit, -40, 40))))


def score_files(run_dir: Path, files: Mapping[str, Path], out: Path) -> dict[str, Any]:
    """Score applicants held across the parties' files (the simulation-side `fedcredit score` of a vertical
    model): each file is read by its party's own column contract, joined by the normalised key; only the
    customers every file holds are scored. Writes `out` (key, p_bad, one partial score per party) atomically."""
    from fedcredit.credit.atomic import atomic_write

    parts = load_parts(run_dir)
    missing = sorted(set(parts) - set(files))
    if missing:
        raise InputError(f"no applicant file for parties {missing}: give one per party (NAME=FILE)",
                         source=str(run_dir))
    frames, keys = {}, {}
    for name, path in files.items():
        if name not in parts:
            raise InputError(f"is no party of this model (parties: {sorted(parts)})", source=f"party '{name}'")
        part = parts[name]
        partner = Partner(name, "bank", Path(path), id=part["id"], spec=_spec(part, label=False))
        frame = read_table(path, source=f"party '{name}' ({path})")
        if part["label_holder"] and part["spec"]["label"] in frame.columns:
            frame = frame.drop(columns=[part["spec"]["label"]])
        table = prepare_party_table(frame, partner, source=f"party '{name}' ({path})", min_rows=1)
        frames[name], keys[name] = table.features, read_keys(table.keys, source=str(path), partner=name,
                                                             field=part["id"])
    common = sorted(set.intersection(*(set(k) for k in keys.values())))
    scores = {n: partial_score(parts[n], frames[n].iloc[_rows_of(keys[n], common)].reset_index(drop=True))
              for n in parts}
    logit = sum(scores.values())
    result = pd.DataFrame({"key": common, "p_bad": 1.0 / (1.0 + np.exp(-np.clip(logit, -40, 40))),
                           **{f"partial_{n}": s for n, s in scores.items()}})
    atomic_write(out, lambda f: f.write(result.to_csv(index=False).encode()))
    return {"scored": len(common), "parties": sorted(parts), "output": str(out)}


def _spec(part: Mapping[str, Any], *, label: bool) -> Any:
    from fedcredit.credit.vertical_config import spec_from_dict

    raw = dict(part["spec"])
    if not label:
        raw["label"] = ""
    return spec_from_dict(raw, source=f"model part of party '{part['party']}'")


def vertical_table(summary: Mapping[str, Any]) -> str:
    """The comparison printed at the end of a vertical simulation: federated (as released, and exact), the
    label holder alone, the centralised model on the joined rows; the parties and their epsilon."""
    def num(v: Any) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    a = summary.get("alignment") or {}
    took = "cached" if a.get("cached") else f"{a.get('seconds', 0):.1f} s"
    lines = [f"aligned customers: {a.get('intersection')} ({a.get('protocol')}; {took}); "
             f"message phases: {summary.get('message_phases')}",
             f"{'model':<44}{'AUC':>8}{'KS':>8}{'Gini':>8}{'Brier':>8}", "-" * 76]
    for label, key in (("federated (released to the coordinator)", "federated"),
                       ("federated, scored exactly here", "federated_exact"),
                       ("label holder alone", "label_holder_alone"),
                       ("centralised on the joined rows", "centralized")):
        m = summary.get(key)
        if m:
            lines.append(f"{label:<44}{num(m.get('auc')):>8}{num(m.get('ks')):>8}"
                         f"{num(m.get('gini')):>8}{num(m.get('brier')):>8}")
    for name, m in (summary.get("added_by") or {}).items():
        lines.append(f"{'label holder + ' + name + ' (centralised)':<44}{num(m.get('auc')):>8}{num(m.get('ks')):>8}"
                     f"   adds {num(m.get('auc_gain'))} AUC")
    lines.append("")
    lines.append(f"{'party':<16}{'kind':<10}{'rows':>8}{'aligned':>9}{'features':>9}{'epsilon':>9}{'budget':>8}")
    for p in summary["partners"]:
        priv = p.get("privacy") or {}
        lines.append(f"{p['name'] + (' *' if p.get('label_holder') else ''):<16}{p['kind']:<10}"
                     f"{p.get('rows') if p.get('rows') is not None else 'n/a':>8}{p.get('aligned_rows') or 'n/a':>9}"
                     f"{len(p.get('features') or []):>9}{num(priv.get('epsilon')):>9}"
                     f"{priv.get('budget') if priv.get('budget') is not None else 'off':>8}")
    lines.append("* label holder")
    return "\n".join(lines)
