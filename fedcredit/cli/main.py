"""The `fedcredit` command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

from fedcredit.cli.cv import register as register_cv
from fedcredit.cli.deploy import register as register_deploy
from fedcredit.cli.privacy import register as register_privacy
from fedcredit.cli.progress import ProgressView
from fedcredit.cli.protection import register as register_security
from fedcredit.cli.scoring import register as register_scoring
from fedcredit.credit.errors import FederationError, InputError


def _simulate(args: argparse.Namespace) -> int:
    from fedcredit.server.app import RunSettings
    from fedcredit.simulations.runner import simulate
    from fedcredit.simulations.table import comparison_table

    settings = RunSettings(scenario=str(args.scenario or ""), out_dir=str(args.out or ""),
                           rounds=args.rounds or 0, model=args.model or "", strategy=args.strategy or "")
    # --verbose: Flower's own lines would tear a bar apart; the round lines are then plain lines.
    with ProgressView(bar=False if args.verbose else None) as view:
        result = simulate(settings, verbose=args.verbose, yardsticks=not args.no_yardsticks,
                          on_round=view.steps("federated rounds", "rounds"),
                          on_yardstick=view.steps("yardsticks", "models"), log_stream=view.log_stream,
                          ray_address=args.ray_address or "", cpus_per_actor=args.ray_cpus_per_actor,
                          engine=args.engine)
    from fedcredit.privacy.report import render_text

    print()
    report = json.loads((result.run_dir / "privacy_report.json").read_text())
    if result.summary.get("partitioning") == "vertical":
        from fedcredit.simulations.vertical import vertical_table

        print(vertical_table(result.summary))
        print("\n" + render_text(report))
        print(f"\nrun directory: {result.run_dir}")
        return 0
    print(comparison_table(result.summary))
    print("\n" + render_text(report))
    from fedcredit.reports import model_report

    print(model_report.render_text(json.loads((result.run_dir / model_report.JSON_NAME).read_text())))
    print(f"\nrun directory: {result.run_dir}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from fedcredit.credit.synthetic import default_consortium, scaled_consortium
    from fedcredit.credit.synthetic_files import write_consortium

    if args.vertical:
        return _synth_vertical(args)
    args.rows = 100_000 if args.rows is None else args.rows
    spec = (scaled_consortium(args.partners, args.rows, seed=args.seed) if args.partners
            else default_consortium(seed=args.seed))
    try:
        with ProgressView() as view:
            path = write_consortium(spec, Path(args.out), fmt=args.format, rounds=args.rounds, model=args.model,
                                    replace=args.force, on_progress=view.stream("synth", "rows"))
    except FileExistsError as exc:
        raise InputError(str(exc)) from None
    print(f"wrote {len(spec.partners)} partners, {sum(p.rows for p in spec.partners)} rows: {path}")
    return 0


def _synth_vertical(args: argparse.Namespace) -> int:
    from fedcredit.credit.synthetic_vertical import DEFAULT_POPULATION, write_vertical_consortium

    for flag, given in (("--partners", args.partners), ("--model", args.model != "logistic")):
        if given:
            raise InputError(f"{flag} is for the horizontal consortium: --vertical writes a lender, a payments "
                             "platform and a bureau trained with logistic regression; drop it")
    try:
        with ProgressView() as view:
            rows = DEFAULT_POPULATION if args.rows is None else args.rows
            path = write_vertical_consortium(Path(args.out), rows=rows, seed=args.seed, fmt=args.format,
                                             replace=args.force, on_progress=view.steps("synth", "parties"))
    except FileExistsError as exc:
        raise InputError(str(exc)) from None
    except ValueError as exc:
        raise InputError(str(exc), source="synth --vertical") from None
    print(f"wrote a vertical consortium (lender, platform, bureau): {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fedcredit", description="Federated credit scoring on Flower.")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="train a scenario in a Flower simulation and compare with yardsticks")
    sim.add_argument("--scenario", type=Path, help="scenario TOML (default: the embedded synthetic consortium)")
    sim.add_argument("--out", type=Path, help="run directory to create (default: runs/<scenario>-<time>)")
    sim.add_argument("--rounds", type=int, help="override [federation].rounds")
    sim.add_argument("--model", choices=["logistic", "mlp", "scorecard", "gbdt", "random_forest"],
                     help="override [federation].model")
    sim.add_argument("--strategy", choices=["fedavg", "fedprox", "fedadam"], help="override [federation].strategy")
    sim.add_argument("--no-yardsticks", action="store_true", help="skip the centralised and local-only models")
    sim.add_argument("--verbose", action="store_true", help="show Flower's own log lines")
    sim.add_argument("--ray-address", metavar="HOST:PORT",
                     help="run the partners on an existing Ray cluster (its head, as `ray start --head` prints; "
                          "or auto); default: this machine (see --engine)")
    sim.add_argument("--ray-cpus-per-actor", type=int, default=1, metavar="N",
                     help="with --ray-address: CPUs each partner actor takes (default 1: one actor per CPU)")
    sim.add_argument("--engine", choices=["auto", "in-process", "ray"], default="auto",
                     help="where the partners' ClientApps run: in this process, or on Ray (a private one, or the "
                          "cluster of --ray-address); default auto: Ray from 5 partners per CPU or with "
                          "--ray-address, in this process otherwise")
    sim.set_defaults(func=_simulate)

    syn = sub.add_parser("synth", help="write a synthetic consortium (partner tables + scenario.toml)")
    syn.add_argument("--out", required=True, help="folder to write (new or empty unless --force)")
    syn.add_argument("--partners", type=int, default=0, help="number of partners (default: the 3-partner default)")
    syn.add_argument("--rows", type=int, help="total rows with --partners (default 100000); with --vertical the "
                     "customers the parties share (default 20000)")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--format", choices=["csv", "csv.gz", "parquet"], default="csv")
    syn.add_argument("--rounds", type=int, default=20)
    syn.add_argument("--model", choices=["logistic", "mlp"], default="logistic")
    syn.add_argument("--force", action="store_true", help="replace a synthetic consortium already in --out "
                     "(never a folder holding other files, e.g. privacy ledgers)")
    syn.add_argument("--vertical", action="store_true", help="write a cross-industry consortium instead: a lender "
                     "(with the label), a payments platform and a bureau holding other columns about overlapping "
                     "customers (partitioning = \"vertical\")")
    syn.set_defaults(func=_synth)

    register_privacy(sub)
    register_security(sub)
    register_deploy(sub)
    register_scoring(sub)
    register_cv(sub)
    return parser


INTERRUPTED = 130     # the shell's code for a command stopped by SIGINT
GRACE_SECONDS = 10.0  # after Ctrl-C, how long finally-blocks may tidy up before the process ends regardless


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"fedcredit: error: {exc}", file=sys.stderr)
        return 2
    except FederationError as exc:
        print(f"fedcredit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fedcredit: interrupted", file=sys.stderr)
        return INTERRUPTED


def _exit_interrupted(announce: bool = True) -> NoReturn:
    if announce:
        print("fedcredit: interrupted", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(INTERRUPTED)


def install_interrupt_handler(grace: float = GRACE_SECONDS) -> None:
    """Ctrl-C ends the process, whatever it was doing. The first SIGINT raises KeyboardInterrupt as usual (so
    finally-blocks tidy up) and starts a watchdog that ends the process `grace` seconds later: an interrupt that
    lands inside a fork handler or a library's broad `except` is swallowed, and the run would go on. A second
    SIGINT ends it at once."""
    interrupted = threading.Event()

    def on_interrupt(signum: int, frame: object) -> None:
        if interrupted.is_set():
            _exit_interrupted()
        interrupted.set()
        threading.Thread(target=lambda: (time.sleep(grace), _exit_interrupted()), daemon=True).start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)


def cli() -> None:
    """The `fedcredit` command: `main()`, then exit — at once after an interrupt. A Flower simulation runs the
    ServerApp in a thread the interpreter waits for at exit; after Ctrl-C it would poll its dead partners until
    its round timeout (minutes). Everything the run wrote is already on disk (ledgers are written before a
    release leaves); an interrupted run directory stays `.incomplete`."""
    install_interrupt_handler()
    code = main()
    if code == INTERRUPTED:
        _exit_interrupted(announce=False)
    sys.exit(code)


if __name__ == "__main__":
    cli()
