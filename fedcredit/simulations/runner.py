"""`fedcredit simulate`: the ServerApp and ClientApp on Flower's Simulation Engine (Ray).

The same apps as `flwr run .` and deployment; this runner only (1) checks every partner's
table before anything starts, (2) starts a lean Ray simulation in-process, (3) adds the
centralised and local-only yardsticks, and (4) moves the finished run directory into place.

Progress goes to callbacks, never to a console of ours: the ServerApp's round lines (logged through
Flower's logger with `fedcredit.server.progress.progress_extra`) reach `on_round(done, total, line)`
instead of Flower's console, and each finished yardstick reaches `on_yardstick`.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from fedcredit.clients.partner import PartnerData, open_partner_data, privacy_gate, run_shape
from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.consistency import label_coding_conflict, level_spelling_conflicts
from fedcredit.credit.errors import FederationError, InputError
from fedcredit.credit.progress import Progress, report
from fedcredit.credit.protocol import TaskConfig
from fedcredit.credit.rundir import CONFIG, FAILED, MODEL, ROUNDS, STAGING_SUFFIX, SUMMARY, RunDirectory
from fedcredit.credit.scenario import Scenario
from fedcredit.credit.scorecard import CSV_NAME as SCORECARD_CSV
from fedcredit.credit.scorecard import JSON_NAME as SCORECARD_JSON
from fedcredit.privacy.report import HTML_NAME, JSON_NAME, write_privacy_report
from fedcredit.reports import model_report
from fedcredit.reports.model_report import write_model_report
from fedcredit.server.app import RunSettings
from fedcredit.server.progress import MARK, PROGRESS_KEY
from fedcredit.simulations.engine import PARTNERS_PER_ACTOR, Backend, choose_backend, in_process, usable_cpus
from fedcredit.simulations.membership_audit import membership_audit
from fedcredit.simulations.planning import plan_scenario
from fedcredit.simulations.ray_cluster import cluster_info
from fedcredit.simulations.yardsticks import centralised, federation_gain, local_only, local_private

OBJECT_STORE_BYTES = 100 * 1024 * 1024
# what a run writes into its staging folder (ledgers/: privacy ledger_dir = "run")
RUN_FILES = {CONFIG, ROUNDS, MODEL, SUMMARY, FAILED, JSON_NAME, HTML_NAME, model_report.JSON_NAME,
             model_report.HTML_NAME, "ledgers", SCORECARD_CSV, SCORECARD_JSON, "parties", "vertical_model.json"}
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # silence a Ray FutureWarning (no GPUs here)
# Ray starts its workers at niceness 15: the one actor that does every partner's work would then
# starve beside any other busy process (a round, or round 0's start-up, outlasting its timeout).
os.environ.setdefault("RAY_worker_niceness", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")            # Flower would call out to the internet
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")


@dataclass(frozen=True)
class SimulationResult:
    run_dir: Path
    summary: dict[str, Any]


def _task(scenario: Scenario, run_dir: Path | None) -> TaskConfig:
    return TaskConfig(scenario.dataset, scenario.federation, run=RunDirectory(run_dir).run_id if run_dir else "",
                      run_dir=str(run_dir or ""), trees=scenario.trees)


def open_partners(scenario: Scenario, run_dir: Path | None = None, *, purpose: str = "check"
                  ) -> dict[str, PartnerData]:
    """Every partner's checked table, opened for `purpose` exactly as its client opens it."""
    task = _task(scenario, run_dir)
    return {p.name: open_partner_data(p, task, purpose=purpose) for p in scenario.partners}


def check_partners(scenario: Scenario, run_dir: Path | None = None, *, purpose: str = "check"
                   ) -> dict[str, PartnerData]:
    """Load and check every partner's table and privacy policy (ledger, delta, noise) exactly as
    its client will, and what only the whole consortium shows (label codings, level spellings,
    enough rows for private statistics); errors stop the run before anything is released."""
    task = _task(scenario, run_dir)
    data = open_partners(scenario, run_dir, purpose=purpose)
    if purpose != "check":
        return data
    where = str(scenario.source or scenario.name)
    conflict = label_coding_conflict({n: d.label_values for n, d in data.items()}, scenario.dataset.bad)
    if conflict:
        raise InputError(conflict, source=where, field=scenario.dataset.label)
    spellings = level_spelling_conflicts({n: {c: list(d.train.features[c].dropna().unique())
                                               for c in scenario.dataset.categorical} for n, d in data.items()})
    if spellings:
        raise InputError("; ".join(spellings), source=where)
    _check_references(scenario, data, where)
    for d in data.values():
        if (gate := privacy_gate(d, task)) is not None:
            gate.check_policy(run_shape(d, task))
    plan = plan_scenario(scenario, data, task)
    if plan.statistics:
        raise InputError(plan.statistics, source=where, field="stats_noise_multiplier")
    if all(p.plan is not None and not p.plan.train for p in plan.partners):
        raise InputError("no partner can take part in this run: " + "; ".join(
            f"{p.name}: {p.plan.reason}" for p in plan.partners) + " (`fedcredit plan` shows each partner's budget)",
            source=where)
    return data


def _check_references(scenario: Scenario, data: dict[str, PartnerData], where: str) -> None:
    """A [fairness] reference of a protected column whose groups are the codes its rows hold (no public list,
    which the scenario already checked) must be a code some partner's rows hold."""
    for groups in scenario.fairness.column_groups(scenario.dataset):
        value = scenario.fairness.reference.get(groups.column)
        if value is None or groups.names is not None:
            continue
        held = sorted({str(v) for d in data.values() for part in (d.train, d.test) if part.protected is not None
                       for v in part.protected[groups.column].dropna().unique()})
        if groups.reference_group(value) not in held:
            raise InputError(f"{value!r} is no code of protected column '{groups.column}' in any partner's rows "
                             f"(its codes: {held[:12]})", source=f"{where} [fairness]", field="reference")


def backend_config(num_cpus: int | None = None, *, partners: int = 1, ray_address: str = "",
                   client_cpus: int = 1) -> dict[str, Any]:
    """Flower's Ray backend settings.

    Without `ray_address`: a private Ray on this machine — one actor using every CPU (≈ 430 MB an actor;
    a few partners run in process instead, `engine.choose_backend`), or one actor per CPU once there are
    at least PARTNERS_PER_ACTOR partners per CPU, so partners train side by side. With it (`host:port` of
    a running cluster's head, or "auto"): join that cluster — Ray refuses CPU counts and memory sizes when
    connecting, the cluster has them — with one actor per `client_cpus` CPUs of the whole cluster, so
    partners train on every node."""
    logging_args = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    if ray_address:
        return {"client_resources": {"num_cpus": client_cpus, "num_gpus": 0.0},
                "init_args": {"address": ray_address, **logging_args}}
    cpus = num_cpus or usable_cpus()
    per_actor = 1 if partners >= PARTNERS_PER_ACTOR * cpus else cpus
    return {
        "client_resources": {"num_cpus": per_actor, "num_gpus": 0.0},
        "init_args": {"num_cpus": cpus, "num_gpus": 0, "object_store_memory": OBJECT_STORE_BYTES, **logging_args},
    }


class _ProgressOnly(logging.Filter):
    """Keep Flower's console to warnings and fedcredit's own progress lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or getattr(record, MARK, False)


class _NotRelayed(logging.Filter):
    """Keep the progress lines that `_RoundRelay` hands to the caller off Flower's console, and our
    other informational lines with them (the staging run directory: the caller names the final one);
    our warnings stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        ours_info = getattr(record, MARK, False) and record.levelno < logging.WARNING
        return not (hasattr(record, PROGRESS_KEY) or ours_info)


class _RoundRelay(logging.Handler):
    """Hand each progress line of the ServerApp (its thread, this process) to `on_round`."""

    def __init__(self, on_round: Progress):
        super().__init__(logging.INFO)
        self.on_round = on_round

    def emit(self, record: logging.LogRecord) -> None:
        step = getattr(record, PROGRESS_KEY, None)
        if step is not None:
            self.on_round(step[0], step[1], record.getMessage())


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextmanager
def flower_console(*, verbose: bool = False, on_round: Progress | None = None,
                   log_stream: TextIO | None = None) -> Iterator[None]:
    """Flower's console during a simulation: quiet unless `verbose` (warnings and our lines only);
    the round lines go to `on_round(done, total, line)` instead when given; it writes to
    `log_stream` when given (a progress display's own stream, so its lines appear above the bar),
    and colours its level names only when that stream is a terminal (no ANSI codes into a file)."""
    from flwr.common.logger import FLOWER_LOGGER, console_handler

    filters = ([] if verbose else [_ProgressOnly()]) + ([_NotRelayed()] if on_round else [])
    relay = _RoundRelay(on_round) if on_round else None
    stream, colored = console_handler.stream, console_handler.colored
    if log_stream is not None:
        console_handler.setStream(log_stream)
    console_handler.colored = colored and _is_terminal(console_handler.stream)
    for f in filters:
        console_handler.addFilter(f)
    if relay:
        FLOWER_LOGGER.addHandler(relay)
    try:
        yield
    finally:
        if relay:
            FLOWER_LOGGER.removeHandler(relay)
        for f in filters:
            console_handler.removeFilter(f)
        console_handler.colored = colored
        if log_stream is not None:
            console_handler.setStream(stream)


def engine_summary(backend: Backend, partners: int, *, ray_address: str = "",
                   cpus_per_actor: int = 1) -> dict[str, Any]:
    """The summary's `simulation_engine`: `backend` ("in-process" or "ray") and, for Ray, the cluster's
    address (None: a private Ray), alive nodes, CPUs and CPUs per actor (0 nodes and CPUs in-process)."""
    if backend == "in-process":
        return {"backend": backend, "ray_address": None, "ray_nodes": 0, "ray_cpus": 0.0, "cpus_per_actor": 0}
    if ray_address:
        return {"backend": backend, **cluster_info(ray_address, cpus_per_actor=cpus_per_actor).to_dict()}
    return {"backend": backend, "ray_address": None, "ray_nodes": 1, "ray_cpus": float(usable_cpus()),
            "cpus_per_actor": backend_config(partners=partners)["client_resources"]["num_cpus"]}


def run_flower_simulation(settings: RunSettings, num_partners: int, *, verbose: bool = False,
                          on_round: Progress | None = None, log_stream: TextIO | None = None,
                          ray_address: str = "", cpus_per_actor: int = 1, backend: Backend = "ray") -> None:
    """Run fedcredit.server.app + fedcredit.clients.app on Flower's Simulation Engine with this run config:
    the ClientApps on Ray (`ray_address` as in `backend_config`) or, `backend="in-process"`, in this process
    (`simulations.engine`); `on_round` and `log_stream` as in `flower_console`."""
    from flwr.app import Context, RecordDict
    from flwr.simulation.run_simulation import _run_simulation
    from flwr.supercore.telemetry import EventType

    from fedcredit.clients.app import app as client_app
    from fedcredit.server.app import app as server_app

    run_config = {"scenario": settings.scenario, "out-dir": settings.out_dir, "rounds": settings.rounds,
                  "model": settings.model, "strategy": settings.strategy, "deployment": False}
    if settings.trainings:   # `simulate_batch`: several runs, one after another, in this one simulation
        run_config["trainings"] = settings.trainings
    context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config=run_config)
    with flower_console(verbose=verbose, on_round=on_round, log_stream=log_stream), \
            (in_process() if backend == "in-process" else nullcontext()):
        _run_simulation(num_supernodes=num_partners, client_app=client_app, server_app=server_app,
                        backend_config=backend_config(partners=num_partners, ray_address=ray_address,
                                                      client_cpus=cpus_per_actor),
                        server_app_context=context,
                        exit_event=EventType.PYTHON_API_RUN_SIMULATION_LEAVE)


def _clear_staging(staging: Path) -> None:
    """Remove an unfinished run's staging folder — only if it holds nothing a run does not write."""
    if not os.path.lexists(staging):
        return
    names = os.listdir(staging) if staging.is_dir() and not staging.is_symlink() else None
    if names is None or any(n not in RUN_FILES and not (n.startswith(".") and n.endswith(".tmp")) for n in names):
        raise InputError("exists and is not an unfinished fedcredit run (this run would stage its files "
                         "there and remove it): move it away or choose another --out", source=str(staging))
    shutil.rmtree(staging)


def _auc(metrics: dict[str, Any] | None) -> str:
    auc = (metrics or {}).get("auc")
    return "n/a" if auc is None else f"{auc:.4f}"


def _add_yardsticks(summary: dict[str, Any], scenario: Scenario, staging: Path, run_dir: RunDirectory,
                    on_yardstick: Progress | None) -> float:
    """The centralised and local-only models (then the membership audit) beside the federated one;
    `on_yardstick(done, total, what)` hears of each when it is done. Returns the seconds the
    models took (the summary's `seconds_yardsticks`: the audit is not counted, as before)."""
    started = time.monotonic()
    data = check_partners(scenario, staging, purpose="yardstick")
    private = [p["name"] for p in summary["partners"] if data[p["name"]].partner.privacy.enabled]
    total, done = 1 + len(summary["partners"]) + len(private) + 1, 0

    def step(what: str, t: float) -> None:
        nonlocal done
        done += 1
        report(on_yardstick, done, total, f"yardstick {done}/{total}  {what}  ({time.monotonic() - t:.1f} s)")

    t = time.monotonic()
    cen = centralised(data, scenario.dataset, scenario.federation, scenario.scorecard, scenario.trees)
    summary["centralized"] = cen["pooled"]
    step(f"centralised model on {len(data)} partners' pooled training rows: AUC {_auc(cen['pooled'])} "
         "on the pooled test rows", t)
    model = ScoringModel.load(run_dir.file(summary["artefact"]))
    for p in summary["partners"]:
        d, t = data[p["name"]], time.monotonic()
        p["local"], p_local = local_only(d, scenario.dataset, scenario.federation, scenario.scorecard, scenario.trees)
        p["centralized"] = cen["partners"][p["name"]]
        # the modeller holds every table here: the federated model scored exactly (not a partner release)
        p_fed = model.predict_proba(d.test.features)
        p["gain"] = federation_gain(d.test.label, p_local, p_fed)
        step(f"local-only model of {p['name']}: AUC {_auc(p['local'])} on its test rows", t)
        if d.partner.privacy.enabled:   # the fair alternative under the partner's own policy
            t = time.monotonic()
            p["local_private"], p_private = local_private(d, scenario.dataset, scenario.federation,
                                                          d.partner.privacy, scenario.trees)
            p["gain_private"] = federation_gain(d.test.label, p_private, p_fed)
            step(f"local-only model of {p['name']} under its DP policy: AUC {_auc(p['local_private'])} "
                 "on its test rows", t)
    t = time.monotonic()
    summary["membership_audit"] = membership_audit(staging, summary, data, scenario)
    step("membership audit (loss-threshold attack and canaries)", t)
    return t - started


def _finished_summary(run_dir: RunDirectory) -> dict[str, Any]:
    """The summary of a run the simulation finished (FederationError: why it could not finish)."""
    if not run_dir.file(SUMMARY).exists():
        reason = run_dir.failure()
        if reason:
            raise FederationError(f"{reason} (the unfinished run is in {run_dir.path})")
        raise RuntimeError(f"the simulation ended without a summary; see {run_dir.path}")
    return run_dir.summary()


def _staging_for(settings: RunSettings, scenario: Scenario) -> tuple[Path, Path]:
    """(final run directory, its staging folder, cleared): InputError if the final one holds anything."""
    final = settings.resolve_out_dir(scenario).resolve()
    if final.exists() and any(final.iterdir()):
        raise InputError("already exists and is not empty; choose another --out", source=str(final))
    staging = final.with_name(final.name + STAGING_SUFFIX)
    _clear_staging(staging)
    return final, staging


def simulate_batch(runs: list[RunSettings], *, verbose: bool = False, on_round: Progress | None = None,
                   log_stream: TextIO | None = None, on_run: Progress | None = None,
                   engine: str = "auto") -> list[SimulationResult]:
    """Several runs of the same partners (`fedcredit cv`: one per fold and setting) one after another in ONE
    Flower simulation (at most one Ray start): each a whole run as `simulate` makes it, without yardsticks — its own
    run directory and run id, its partners' privacy plan, gate and ledger charges. Every run's partners are
    checked before the first starts (bad input stops them all); the first run that cannot finish ends the
    batch (FederationError naming it; the runs before it are finished, in place). `on_run(done, total, dir)`
    hears of each finished run."""
    started = time.monotonic()
    scenarios = [s.resolve_scenario() for s in runs]
    partners = {tuple(p.name for p in sc.partners) for sc in scenarios}
    if len(partners) != 1:
        raise InputError("a batch of runs trains one consortium: every scenario must list the same partners")
    places = [_staging_for(s, sc) for s, sc in zip(runs, scenarios)]
    try:
        for scenario, (_, staging) in zip(scenarios, places):
            check_partners(scenario, staging)                 # bad input stops here, before any run
    except BaseException:
        for _, staging in places:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    trainings = json.dumps([{"scenario": str(sc.source), "out-dir": str(staging)}
                            for sc, (_, staging) in zip(scenarios, places)])
    first = runs[0]
    batch = RunSettings(str(scenarios[0].source), str(places[0][1]), first.rounds, first.model, first.strategy,
                        trainings=trainings)
    backend = choose_backend(engine, partners=len(scenarios[0].partners))
    run_flower_simulation(batch, len(scenarios[0].partners), verbose=verbose, on_round=on_round,
                          log_stream=log_stream, backend=backend)
    where = {**engine_summary(backend, len(scenarios[0].partners)),
             "batch_runs": len(runs), "seconds_batch": round(time.monotonic() - started, 3)}
    results = []
    for i, (final, staging) in enumerate(places):
        run_dir = RunDirectory(staging)
        summary = _finished_summary(run_dir)
        summary["simulation_engine"] = where
        run_dir.write_summary(summary)
        if final.exists():
            final.rmdir()
        staging.rename(final)
        results.append(SimulationResult(final, summary))
        report(on_run, i + 1, len(runs), str(final))
    return results


def simulate(settings: RunSettings, *, verbose: bool = False, yardsticks: bool = True,
             on_round: Progress | None = None, on_yardstick: Progress | None = None,
             log_stream: TextIO | None = None, ray_address: str = "", cpus_per_actor: int = 1,
             engine: str = "auto") -> SimulationResult:
    """Validate, simulate, add yardsticks; return the finished run directory and summary.

    `on_round` / `on_yardstick` hear of each round / yardstick as `(done, total, what)`;
    `log_stream` is where Flower's console writes during the simulation (None: unchanged);
    `ray_address` runs the partners on an existing Ray cluster (`ray_cluster`), one actor per
    `cpus_per_actor` of its CPUs; `engine` ("auto", "in-process", "ray") as in `engine.choose_backend`; the
    summary's `simulation_engine` says where it ran."""
    started = time.monotonic()
    scenario = settings.resolve_scenario()
    backend = choose_backend(engine, partners=len(scenario.partners), ray_address=ray_address)
    where = engine_summary(backend, len(scenario.partners), ray_address=ray_address, cpus_per_actor=cpus_per_actor)
    final, staging = _staging_for(settings, scenario)
    vertical = scenario.vertical       # same apps; its own pre-flight and yardsticks (`simulations.vertical`)
    if vertical:
        from fedcredit.simulations.vertical import check_parties, vertical_yardsticks
    try:
        (check_parties if vertical else check_partners)(scenario, staging)   # bad input stops here
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staged = RunSettings(str(scenario.source), str(staging), settings.rounds, settings.model,
                         settings.strategy)
    run_flower_simulation(staged, len(scenario.partners), verbose=verbose, on_round=on_round, log_stream=log_stream,
                          ray_address=ray_address, cpus_per_actor=cpus_per_actor, backend=backend)
    run_dir = RunDirectory(staging)
    summary = _finished_summary(run_dir)
    summary["simulation_engine"] = where
    fed_seconds = time.monotonic() - started
    if yardsticks and vertical:
        t = time.monotonic()
        vertical_yardsticks(summary, scenario, staging)
        summary["timing"]["seconds_yardsticks"] = round(time.monotonic() - t, 3)
    elif yardsticks:
        summary["timing"]["seconds_yardsticks"] = round(_add_yardsticks(summary, scenario, staging, run_dir,
                                                                        on_yardstick), 3)
    summary["timing"]["seconds_wall"] = round(time.monotonic() - started, 3)
    summary["timing"]["seconds_simulation"] = round(fed_seconds, 3)
    summary["timing"]["peak_rss_mb_driver"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    run_dir.write_summary(summary)
    write_privacy_report(staging, summary)
    if not vertical:                          # a vertical run has no model-risk report yet
        write_model_report(staging, summary)  # now with the yardsticks
    if final.exists():
        final.rmdir()
    staging.rename(final)
    return SimulationResult(final, summary)
