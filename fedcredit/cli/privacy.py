"""`fedcredit report RUN_DIR` (privacy and model-risk reports), `fedcredit plan` and `fedcredit ledger show LEDGER`."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from fedcredit.credit import strict_json
from fedcredit.credit.errors import InputError


def _report(args: argparse.Namespace) -> int:
    from fedcredit.privacy.report import HTML_NAME, JSON_NAME, render_text, write_privacy_report
    from fedcredit.reports import model_report

    run_dir = Path(args.run_dir)
    model_report.check_finished(run_dir)
    if not (run_dir / JSON_NAME).is_file():
        raise InputError(f"no {JSON_NAME}: the run predates privacy reports", source=str(run_dir))
    summary = strict_json.loads_old((run_dir / "summary.json").read_text())
    report = write_privacy_report(run_dir, summary)
    if summary.get("partitioning") == "vertical":    # its comparison is the summary's; no model-risk report yet
        print(render_text(report))
        print(f"written: {run_dir / JSON_NAME}, {run_dir / HTML_NAME} (a vertical run has no model-risk report yet)")
        return 0
    model = model_report.write_model_report(run_dir, summary)
    print(render_text(report))
    print(model_report.render_text(model))
    print(f"written: {run_dir / JSON_NAME}, {run_dir / HTML_NAME}, {run_dir / model_report.JSON_NAME}, "
          f"{run_dir / model_report.HTML_NAME}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from fedcredit.credit.protocol import TaskConfig
    from fedcredit.server.app import RunSettings
    from fedcredit.simulations.planning import plan_scenario, render_plan
    from fedcredit.simulations.runner import open_partners

    settings = RunSettings(scenario=str(args.scenario or ""), rounds=args.rounds or 0)
    scenario = settings.resolve_scenario()
    with tempfile.TemporaryDirectory(prefix="fedcredit-plan-") as run_dir:   # where "run"-scoped ledgers would be
        if scenario.vertical:
            from fedcredit.simulations.vertical import plan_vertical

            plan = plan_vertical(scenario, Path(run_dir))
        else:
            data = open_partners(scenario, Path(run_dir), purpose="check")
            plan = plan_scenario(scenario, data, TaskConfig(scenario.dataset, scenario.federation, run_dir=run_dir))
    what = ("one vertical run: its transform's statistics, one Gram release, the held-out evaluation"
            if scenario.vertical else f"{scenario.federation.rounds} rounds")
    print(f"plan for one run of {scenario.name} ({what}); nothing is released\n")
    print(render_plan(plan))
    if scenario.vertical:
        print("vertical: 'σ DP-SGD' is the noise multiplier of the Gram release (noise ÷ its replace-one sensitivity)")
    if args.json:
        from fedcredit.credit.atomic import atomic_write_json

        atomic_write_json(args.json, plan.to_dict())
        print(f"written: {args.json}")
    return 0


def _ledger_show(args: argparse.Namespace) -> int:
    from fedcredit.privacy.anchor import DatasetAnchor
    from fedcredit.privacy.ledger import PrivacyLedger

    found = PrivacyLedger.inspect(args.ledger)
    # the whole truth: this file reconciled (read-only) with the dataset's anchor and the audit trail beside it
    ledger = PrivacyLedger.open(found.path, found.fingerprint, found.partner, anchor=DatasetAnchor(found.fingerprint),
                                audit=found.path.parent / f"{found.partner}.audit.jsonl", readonly=True)
    entries = ledger.entries()
    delta = args.delta if args.delta is not None else (entries[-1].delta if entries else 1e-6)
    print(f"ledger {ledger.path}\npartner {ledger.partner or '?'}  dataset {ledger.fingerprint[:16]}…  "
          f"{len(entries)} release(s)")
    print(f"{'#':>3}  {'time':<25} {'run':<24} {'round':>5}  {'mechanism':<20} {'rows':<12} {'noise':>7} {'rate':>8} "
          f"{'steps':>6}")
    for e in entries:
        rows = "all" if e.rows == (0.0, 1.0) else f"[{e.rows[0]:g},{e.rows[1]:g})"
        print(f"{e.seq:>3}  {e.time:<25} {e.run[:24]:<24} {e.round:>5}  {e.mechanism:<20} {rows:<12} "
              f"{e.release.noise_multiplier:>7.3f} {e.release.sample_rate:>8.5f} {e.release.steps:>6}"
              f"{'  (recovered from the ' + e.recovered + ')' if e.recovered else ''}")
    for note in [*found.notes, *ledger.notes]:
        print(f"note: {note}")
    spent = ledger.spent(delta)
    print(f"lifetime epsilon {spent.epsilon:.4f} at delta {delta:g} ({spent.accountant}; "
          f"RDP bound {spent.epsilon_rdp:.4f}){'; ' + spent.note if spent.note else ''}")
    return 0


def _disclosure(args: argparse.Namespace) -> int:
    from fedcredit.privacy.disclosure import markdown

    print(markdown(), end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser("report", help="(re)write a run's privacy_report.{json,html} and model_report.{json,html} "
                         "and print a summary")
    rep.add_argument("run_dir", help="a finished run directory")
    rep.set_defaults(func=_report)

    pln = sub.add_parser("plan", help="what one run would cost each partner's privacy budget (releases nothing)")
    pln.add_argument("--scenario", type=Path, help="scenario TOML (default: the embedded consortium)")
    pln.add_argument("--rounds", type=int, help="override [federation].rounds")
    pln.add_argument("--json", type=Path, help="also write the plan as JSON to this file")
    pln.set_defaults(func=_plan)

    dis = sub.add_parser("disclosure", help="what the coordinator and the other partners see of a partner, per "
                         "mode (Markdown, from the release inventory)")
    dis.set_defaults(func=_disclosure)

    led = sub.add_parser("ledger", help="a partner's lifetime privacy ledger")
    led_sub = led.add_subparsers(dest="ledger_command", required=True)
    show = led_sub.add_parser("show", help="list every release and the lifetime epsilon")
    show.add_argument("ledger", help="a *.privacy-ledger.jsonl file")
    show.add_argument("--delta", type=float, help="delta for the epsilon (default: the ledger's own)")
    show.set_defaults(func=_ledger_show)
