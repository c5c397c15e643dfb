"""`fedcredit cv`: federated K-fold cross-validation of a grid of settings.

Every partner splits its own training rows into the same fold ids from each row's content
(`fedcredit.credit.folds`; no row id leaves it, the test rows are never used). For each setting of the
grid (`fedcredit.credit.cv_grid`) and each fold the federation trains on the other folds and evaluates
on that fold: one ordinary run each (its own scenario file with [federation] cv_folds / cv_fold, its own
run directory and run id, the partners' privacy gate and ledger as in any run), all of them in one
Flower simulation (`fedcredit.simulations.runner.simulate_batch`). Before anything is released the
search's privacy cost is planned per partner (`fedcredit.simulations.cv_plan`) and a search that does
not fit a partner's remaining budget is refused. The result: mean ± sd (sample, over folds) of each
setting's validation-fold AUC (pooled over the partners; noised histograms under DP), the setting with
the highest mean (ties: the smaller sd, then the first), written as `cv_result.json` and
`cv_result.txt` into the search's directory, which appears whole (staged, then renamed) once done:

    <out>/cv_result.json, cv_result.txt, scenarios/<run>.toml, trainings/<run>/ (run directories)
"""

from __future__ import annotations

import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import tomli_w

from fedcredit.clients.partner import PartnerData, privacy_gate
from fedcredit.credit.atomic import atomic_write_json, atomic_write_text
from fedcredit.credit.cv_grid import Setting, check_grid, derived_raw, parse_grid
from fedcredit.credit.errors import FederationError, InputError
from fedcredit.credit.folds import MIN_FOLD_ROWS, fold_problem, most_folds
from fedcredit.credit.progress import Progress
from fedcredit.credit.protocol import TaskConfig
from fedcredit.credit.rundir import STAGING_SUFFIX
from fedcredit.credit.scenario import Scenario, load_scenario, read_toml
from fedcredit.privacy.accountant import compose_rows
from fedcredit.server.app import RunSettings
from fedcredit.simulations.cv_plan import SearchPlan, plan_search, refusal
from fedcredit.simulations.runner import open_partners, simulate_batch

RESULT_JSON, RESULT_TEXT = "cv_result.json", "cv_result.txt"
SCENARIOS, TRAININGS = "scenarios", "trainings"
PICK_RULE = "the highest mean validation-fold AUC (ties: the smaller sd, then the first setting)"


@dataclass(frozen=True)
class Training:
    setting: int          # 0-based index into the settings
    fold: int             # 0-based fold id
    name: str             # its run directory's name and run id (unique per search)
    scenario: Scenario
    raw: dict[str, Any]   # its scenario file's tables


@dataclass(frozen=True)
class CvSearch:
    """A checked and planned search, nothing written yet."""

    base: Scenario
    folds: int
    grid: dict[str, list[Any]]
    settings: list[Setting]
    trainings: list[Training]
    final: Path
    plan: SearchPlan
    data: dict[str, PartnerData]

    @property
    def staging(self) -> Path:
        return self.final.with_name(self.final.name + STAGING_SUFFIX)

    @property
    def refusal(self) -> str:
        return refusal(self.plan)


def _scenario_path(scenario: str) -> Path:
    if scenario:
        return Path(scenario).expanduser().resolve()
    from fedcredit.privacy.embedded import default_scenario_path

    return default_scenario_path()


def _check_folds(data: dict[str, PartnerData], folds: int) -> None:
    if folds < 2:
        raise InputError(f"{folds} folds: a cross-validation needs at least 2", source="--folds")
    for name, d in data.items():
        problem = fold_problem(d.train.fractions, d.train.label, d.test_fraction, folds)
        if problem:
            most = most_folds(d.train.fractions, d.train.label, d.test_fraction,
                              min(folds - 1, len(d.train) // MIN_FOLD_ROWS))
            raise InputError(f"{folds} folds are more than partner '{name}'s {len(d.train)} training rows allow: "
                             f"{problem}; each fold needs at least {MIN_FOLD_ROWS} rows, a bad and a good one "
                             + (f"(at most {most} folds for this partner)" if most else "(not even 2 folds do)"),
                             source="--folds")


def prepare_search(scenario: str, folds: int, grid: Sequence[str] = (), *, out: str = "",
                   rounds: int = 0) -> CvSearch:
    """Read, check and plan a search (writes nothing; ledgers are only read). InputError: an unknown grid
    key or bad value, too few or too many folds, an output folder in use. A plan that does not fit a
    partner's budget is returned with its `refusal` (so it can be shown); `run_search` refuses it."""
    path = _scenario_path(scenario)
    base = load_scenario(path)
    raw = read_toml(path, "scenario file")
    if rounds:
        base = base.with_federation(rounds=rounds)
        raw = {**raw, "federation": {**raw.get("federation", {}), "rounds": rounds}}
    parsed = parse_grid(grid)
    settings = check_grid(parsed, base)
    final = Path(out or Path("runs") / f"{base.name}-cv-{datetime.now():%Y%m%d-%H%M%S}").resolve()
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise InputError("already exists and is not empty; choose another --out", source=str(final))
    staging = final.with_name(final.name + STAGING_SUFFIX)
    if staging.exists():
        raise InputError("holds an unfinished search (its trainings were charged to the partners' ledgers): "
                         "keep it as a record and choose another --out", source=str(staging))
    with tempfile.TemporaryDirectory(prefix="fedcredit-cv-") as tmp:   # where "run"-scoped ledgers would be
        data = open_partners(base, Path(tmp), purpose="check")
    _check_folds(data, folds)
    trainings = []
    for i, setting in enumerate(settings):
        for k in range(folds):
            name = f"{final.name}-s{i + 1}-f{k + 1}"
            tables = derived_raw(raw, path.parent, setting, folds=folds, fold=k)
            source = staging / SCENARIOS / f"{name}.toml"
            trainings.append(Training(i, k, name, Scenario.from_dict(tables, base_dir=path.parent, name=name,
                                                                     source=source), tables))
    plan = plan_search(base, data, [(t.name, t.scenario) for t in trainings])
    return CvSearch(base, folds, parsed, settings, trainings, final, plan, data)


def run_search(search: CvSearch, *, verbose: bool = False, on_round: Progress | None = None,
               on_run: Progress | None = None, log_stream: TextIO | None = None,
               engine: str = "auto") -> dict[str, Any]:
    """Train every fold of every setting and write the result; returns it (as in cv_result.json); `engine`
    as in `simulations.engine.choose_backend`.
    InputError before any training: the plan does not fit a partner's budget, or a training's check
    fails (nothing is left behind). FederationError: a training could not finish (the search stops; its
    staging folder keeps the finished trainings, whose releases the ledgers hold)."""
    if search.refusal:
        raise InputError(f"{search.refusal}; nothing was trained", source=str(search.base.source or search.base.name))
    started = time.monotonic()
    staging = search.staging
    (staging / SCENARIOS).mkdir(parents=True)
    runs = []
    try:
        for t in search.trainings:
            atomic_write_text(staging / SCENARIOS / f"{t.name}.toml", tomli_w.dumps(t.raw))
            runs.append(RunSettings(scenario=str(t.scenario.source), out_dir=str(staging / TRAININGS / t.name)))
        results = simulate_batch(runs, verbose=verbose, on_round=on_round, on_run=on_run, log_stream=log_stream,
                                 engine=engine)
    except InputError:
        shutil.rmtree(staging, ignore_errors=True)   # nothing was trained
        raise
    except FederationError as exc:
        raise FederationError(f"{exc}; the search stopped there: its finished trainings are in {staging}") from None
    result = _result(search, [r.summary for r in results])
    result["seconds"] = round(time.monotonic() - started, 3)
    atomic_write_json(staging / RESULT_JSON, result)
    atomic_write_text(staging / RESULT_TEXT, render_result(result) + "\n")
    staging.rename(search.final)
    return result


def _auc(metrics: dict[str, Any] | None) -> float | None:
    auc = (metrics or {}).get("auc")
    return None if auc is None or not math.isfinite(auc) else float(auc)


def _setting_result(index: int, setting: Setting, folds: list[dict[str, Any]]) -> dict[str, Any]:
    aucs = [f["auc"] for f in folds if f["auc"] is not None]
    return {"setting": index + 1, "values": setting.values, "label": setting.label(), "folds": folds,
            "auc_mean": statistics.fmean(aucs) if aucs else None,
            "auc_sd": statistics.stdev(aucs) if len(aucs) >= 2 else None,
            "folds_undefined": len(folds) - len(aucs)}


def _pick(settings: list[dict[str, Any]]) -> dict[str, Any] | None:
    scored = [s for s in settings if s["auc_mean"] is not None]
    if not scored:
        return None
    best = min(scored, key=lambda s: (-s["auc_mean"], s["auc_sd"] if s["auc_sd"] is not None else math.inf,
                                      s["setting"]))
    return {k: best[k] for k in ("setting", "values", "label", "auc_mean", "auc_sd")} | {"rule": PICK_RULE}


def _spent(search: CvSearch) -> list[dict[str, Any]]:
    """What each DP partner's ledger holds of this search now (read-only): its epsilon and releases."""
    names = {t.name for t in search.trainings}
    out = []
    with tempfile.TemporaryDirectory(prefix="fedcredit-cv-") as tmp:
        task = TaskConfig(search.base.dataset, search.base.federation, run_dir=tmp)
        for p in search.plan.partners:
            gate = privacy_gate(search.data[p.name], task, readonly=True)
            mine = [e for e in gate.ledger.entries() if e.run in names]
            counts: dict[str, int] = {}
            for e in mine:
                counts[e.mechanism] = counts.get(e.mechanism, 0) + 1
            out.append({"partner": p.name, "epsilon_search": compose_rows([e.charge for e in mine], p.delta).epsilon,
                        "epsilon_search_planned": p.epsilon_search, "epsilon_lifetime": gate.statement().epsilon,
                        "budget": p.budget, "releases": counts, "trainings_charged": len({e.run for e in mine})})
    return out


def _result(search: CvSearch, summaries: list[dict[str, Any]]) -> dict[str, Any]:
    per_setting: list[list[dict[str, Any]]] = [[] for _ in search.settings]
    for t, summary in zip(search.trainings, summaries):
        per_setting[t.setting].append({
            "fold": t.fold + 1, "run": t.name, "auc": _auc(summary.get("federated")),
            "n": (summary.get("federated") or {}).get("n"), "rounds": summary.get("rounds"),
            "partners": {p["name"]: _auc(p.get("federated")) for p in summary.get("partners", [])}})
    settings = [_setting_result(i, s, folds) for i, (s, folds) in enumerate(zip(search.settings, per_setting))]
    return {
        "scenario": search.base.name, "source": str(search.base.source) if search.base.source else None,
        "folds": search.folds, "grid": search.grid, "trainings": len(search.trainings),
        "measure": "AUC of the final model on the held-out fold, pooled over the partners' released score "
                   "histograms" + (" (noised under record-level DP)" if search.plan.partners else ""),
        "settings": settings, "best": _pick(settings),
        "privacy": {"plan": search.plan.to_dict(), "spent": _spent(search)},
    }


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def render_result(result: dict[str, Any]) -> str:
    """The result as a table: one line per setting (mean ± sd, each fold's AUC), the pick, the privacy spent."""
    best = (result.get("best") or {}).get("setting")
    width = max([len("setting"), *(len(s["label"]) for s in result["settings"])])
    lines = [f"cross-validation of {result['scenario']}: {result['folds']} folds × {len(result['settings'])} "
             f"setting(s) = {result['trainings']} trainings; validation-fold AUC",
             f"    {'#':>2}  {'setting':<{width}}  {'AUC mean':>8} ± {'sd':<6}  folds",
             "    " + "-" * (width + 34)]
    for s in result["settings"]:
        mark = "*" if s["setting"] == best else " "
        folds = " ".join(_num(f["auc"]) for f in s["folds"])
        lines.append(f"  {mark} {s['setting']:>2}  {s['label']:<{width}}  {_num(s['auc_mean']):>8} ± "
                     f"{_num(s['auc_sd']):<6}  {folds}")
    if result.get("best"):
        lines.append(f"picked: setting {best} ({result['best']['label']}): {PICK_RULE}")
    else:
        lines.append("picked: none (no setting has a defined validation AUC)")
    for p in result["privacy"]["spent"]:
        lines.append(f"privacy: {p['partner']} spent epsilon {p['epsilon_search']:.3f} in this search (planned at most "
                     f"{p['epsilon_search_planned']:.3f}); lifetime {p['epsilon_lifetime']:.3f} of {p['budget']:g}")
    if not result["privacy"]["spent"]:
        lines.append("privacy: no partner uses record-level DP; nothing was charged")
    return "\n".join(lines)

