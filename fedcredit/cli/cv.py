"""`fedcredit cv`: federated cross-validation of a grid of settings (`fedcredit.simulations.cv`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fedcredit.cli.progress import ProgressView
from fedcredit.credit.errors import InputError
from fedcredit.credit.progress import Progress


def _cv(args: argparse.Namespace) -> int:
    from fedcredit.credit.scenario import load_scenario
    from fedcredit.simulations.cv import prepare_search, render_result, run_search
    from fedcredit.simulations.cv_plan import render_search_plan

    if args.scenario and load_scenario(args.scenario).vertical:
        raise InputError("cross-validation is not available for vertical scenarios yet (a vertical run is one shot "
                         "with no settings to search): run `fedcredit simulate` on it", source=str(args.scenario))
    search = prepare_search(str(args.scenario or ""), args.folds, args.grid or [], out=str(args.out or ""),
                            rounds=args.rounds or 0)
    print(f"cross-validation of {search.base.name}: {search.folds} folds × {len(search.settings)} setting(s) = "
          f"{len(search.trainings)} trainings")
    for i, setting in enumerate(search.settings, start=1):
        print(f"  setting {i}: {setting.label()}")
    print("\nprivacy cost of the whole search, planned before it starts (nothing is released yet):")
    print(render_search_plan(search.plan))
    if search.refusal:
        raise InputError(f"{search.refusal}; nothing was trained", source=str(search.base.source or search.base.name))
    if args.dry_run:
        print("\n--dry-run: nothing was trained")
        return 0
    print()
    with ProgressView(bar=False if args.verbose else None) as view:
        trainings = view.steps("cv trainings", "trainings")
        rounds = _per_training(view.steps("federated rounds", "rounds"))
        result = run_search(search, verbose=args.verbose, on_round=rounds, log_stream=view.log_stream,
                            engine=args.engine,
                            on_run=lambda done, total, what: trainings(done, total, f"training {done}/{total} done: "
                                                                       f"{Path(what).name}"))
    print()
    print(render_result(result))
    print(f"\nsearch directory: {search.final}")
    return 0


def _per_training(on_round: Progress) -> Progress:
    """The round lines of each training, numbered by the training (its round count starts again at 0)."""
    state: dict[str, int | None] = {"training": 0, "last": None}

    def relay(done: int, total: int, what: str) -> None:
        if done == 0 and state["last"] != 0:
            state["training"] += 1
        state["last"] = done
        on_round(done, total, f"[training {state['training']}] {what}")
    return relay


def register(sub: argparse._SubParsersAction) -> None:
    cv = sub.add_parser("cv", help="federated K-fold cross-validation of a grid of settings: mean ± sd AUC per "
                        "setting, the best one picked; its privacy cost planned and shown first")
    cv.add_argument("--scenario", type=Path, help="scenario TOML (default: the embedded synthetic consortium)")
    cv.add_argument("--folds", type=int, default=5, help="folds of each partner's training rows (default 5)")
    cv.add_argument("--grid", action="append", metavar="KEY=V1,V2[;KEY=V1,V2]",
                    help="settings to search, keys as in [federation] (e.g. learning_rate, local_epochs, rounds) "
                         "or [privacy] (max_grad_norm, noise_multiplier); every combination is one setting; may "
                         "be given more than once (default: the scenario's own settings only)")
    cv.add_argument("--rounds", type=int, help="override [federation].rounds (a grid's rounds wins)")
    cv.add_argument("--out", type=Path, help="search directory to create (default: runs/<scenario>-cv-<time>)")
    cv.add_argument("--dry-run", action="store_true", help="check and show the plan and its privacy cost, then stop")
    cv.add_argument("--verbose", action="store_true", help="show Flower's own log lines")
    cv.add_argument("--engine", choices=["auto", "in-process", "ray"], default="auto",
                    help="where the partners' ClientApps run, as for `fedcredit simulate` (default auto)")
    cv.set_defaults(func=_cv)
