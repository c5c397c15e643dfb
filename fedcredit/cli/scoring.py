"""`fedcredit score | serve | model inspect`: scoring applicants at a partner (parse → call → print)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fedcredit.cli.progress import ProgressView

KEY_HELP = "the vault's key: KEYFILE, env:NAME (base64 key) or passphrase-env:NAME"
POINTS_HELP = "score points BASE:ODDS:PDO, e.g. 600:50:20 (600 points at good:bad odds 50:1, +20 doubles the odds)"


def _options(args: argparse.Namespace) -> Any:
    from fedcredit.scoring.scorer import Scaling, ScoreOptions

    return ScoreOptions(cutoff=args.cutoff, scaling=Scaling.parse(args.points) if args.points else None,
                        reasons=args.reasons)


def _audit(path: str | None) -> Any:
    from fedcredit.protection.audit import AuditLog

    return AuditLog(path) if path else None


def _psi(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _party_files(args: argparse.Namespace) -> dict[str, Path]:
    from fedcredit.credit.errors import InputError

    files: dict[str, Path] = {}
    for item in [args.input, *(args.party or [])]:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise InputError(f"{item!r}: a vertical model scores one file per party, given as NAME=FILE "
                             "(e.g. lender=new_lender.csv --party bureau=new_bureau.csv)", source="fedcredit score")
        files[name] = Path(file)
    return files


def _score_vertical(args: argparse.Namespace) -> int:
    """A vertical run's model: every party's file of the same applicants, joined by the normalised key."""
    from fedcredit.credit.errors import InputError
    from fedcredit.simulations.vertical import score_files

    out = Path(args.out)
    if out.exists() and not args.force:
        raise InputError("already exists: choose another --out, or add --force to replace it", source=str(out))
    result = score_files(Path(args.model), _party_files(args), out)
    print(f"scored {result['scored']:,} applicants held by every party ({', '.join(result['parties'])}): {out}")
    return 0


def _score(args: argparse.Namespace) -> int:
    model = Path(args.model)
    if model.name == "vertical_model.json" and model.is_file():     # a vertical run: its directory holds the parts
        args.model = str(model.parent)
        return _score_vertical(args)
    if model.is_dir() and (model / "vertical_model.json").is_file():
        return _score_vertical(args)
    from fedcredit.protection.keys import load_key
    from fedcredit.scoring import identity
    from fedcredit.scoring.batch import VaultAccess, score_file
    from fedcredit.scoring.scorer import Scorer

    model = identity.load(args.model)
    scorer = Scorer(model, _options(args))
    src = Path(args.input)
    partner = args.partner or src.name.split(".")[0]
    audit = _audit(args.audit)
    vault = VaultAccess(load_key(args.key) if args.key else None, partner,
                        audit or _audit(str(src.parent / f"{partner}.audit.jsonl")))
    with ProgressView() as view:
        result = score_file(scorer, src, args.out, key=args.key_column, rejects=args.rejects, strict=args.strict,
                            overwrite=args.force, vault=vault, sep=args.sep, decimal=args.decimal,
                            on_progress=view.stream("score", "rows"), audit=audit, purpose=args.purpose)
    report = result.to_dict()
    if args.report:
        from fedcredit.credit.atomic import atomic_write_json

        atomic_write_json(args.report, report)
    print(f"scored {result.scored:,} of {result.rows:,} rows with model {result.model_id[:19]}… in "
          f"{result.seconds:.2f} s ({result.rows_per_second:,.0f} rows/s): {result.output}")
    if result.rejected:
        print(f"rejected {result.rejected:,} row(s) that failed validation: {result.rejects} (row, field, reason)")
    if result.decisions:
        print("decisions: " + ", ".join(f"{d} {n:,}" for d, n in sorted(result.decisions.items())))
    for notice in result.notices:
        print(f"notice: {notice}")
    drift = result.drift
    score = drift.get("score", {})
    if score.get("psi") is not None or drift.get("features"):
        noised = ", references noised under DP" if drift.get("noised") else ""
        print(f"drift, PSI against the training populations{noised} (< 0.10 stable, > 0.25 a major shift): "
              f"score {_psi(score.get('psi'))} {score.get('reading', '')}")
        moved = sorted(((v["psi"], c) for c, v in drift["features"].items() if v["psi"] is not None), reverse=True)
        if moved:
            print("  columns: " + ", ".join(f"{c} {_psi(p)}" for p, c in moved[:8])
                  + (f" (+{len(moved) - 8} more in --report)" if len(moved) > 8 else ""))
    elif drift.get("why"):
        print(f"drift: {drift['why']}")
    if args.report:
        print(f"report: {args.report}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from fedcredit.scoring import identity
    from fedcredit.scoring.scorer import Scorer
    from fedcredit.scoring.service import address, bind, check_tls, create_app, serve

    model = identity.load(args.model)
    check_tls(args.tls_cert, args.tls_key)
    purposes = frozenset(p.strip() for p in args.purposes.split(",") if p.strip()) if args.purposes else None
    app = create_app(Scorer(model, _options(args)), audit=_audit(args.audit), purposes=purposes,
                     model_path=args.model)
    sock = bind(args.host, args.port)
    print(f"serving model {model.id} on {address(sock, tls=bool(args.tls_cert))} "
          "(POST /score, GET /health, GET /model, docs at /docs); Ctrl-C stops", flush=True)
    try:
        serve(app, sock, tls_cert=args.tls_cert, tls_key=args.tls_key)
    finally:
        sock.close()
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from fedcredit.scoring import identity

    model = identity.load(args.model)
    info = identity.describe(model, args.model)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    seal = "verified against the id stored in the file" if info["sealed"] else f"NOT SEALED: {info['sealed_note']}"
    cols = info["columns"]
    print(f"model {info['id']}\n  {seal}\n  scenario {info['scenario']}  run {info['run']}\n"
          f"  {info['model']}" + (f" {info['hidden']}" if info["hidden"] else "")
          + f", {info['strategy']}, {info['rounds']} rounds; secure aggregation: {info['secure_aggregation']}\n"
          f"  label {info['label']}; uses {len(cols['numeric'])} numeric and {len(cols['categorical'])} categorical "
          f"column(s) → {info['features']} features")
    for col, why in info["features_dropped"].items():
        print(f"  not used: {col} ({why})")
    print(f"  privacy: {info['privacy']}")
    for p in info["partners"]:
        priv = p.get("privacy", {})
        eps = f"ε {priv['epsilon']:.3f} of {priv['budget']:g}" if priv.get("epsilon") is not None else "no DP"
        print(f"  partner {p['name']} ({p['kind']}): ~{p['rows_train']} training rows, {eps}; dataset "
              f"{p['dataset'] or 'fingerprint kept by the partner (not known to the coordinator)'}")
    ref = info["reference"]
    print(f"  drift reference: score distribution {'yes' if ref['score'] else 'no'}, "
          f"{len(ref['features'])} column(s)" + (" (noised under DP)" if ref.get("noised") else ""))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cutoff", type=float, help="decide at this probability of default: decline when PD ≥ cutoff")
    p.add_argument("--points", help=POINTS_HELP)
    p.add_argument("--reasons", type=int, default=4, help="reason codes per applicant, 0–4 (default 4)")


def register(sub: Any) -> None:
    sc = sub.add_parser("score", help="score a file of applicants (CSV, CSV.gz, Parquet or a vault) with a model")
    sc.add_argument("model", help="the model artefact (a run's model.pt); or a vertical run's directory")
    sc.add_argument("input", help="applicants: .csv, .csv.gz, .parquet, or a vault (with --key); for a vertical "
                    "run NAME=FILE, one party's file (the others with --party)")
    sc.add_argument("--party", action="append", metavar="NAME=FILE",
                    help="a vertical run: another party's file of the same applicants (repeat per party)")
    sc.add_argument("--out", required=True, help="where to write the scores: .csv, .csv.gz or .parquet (never replaced "
                    "unless --force)")
    sc.add_argument("--key-column", help="the column identifying each row, copied to the output (default: a column "
                    "named id, key or *_id that the model does not use)")
    sc.add_argument("--rejects", help="where rows that fail validation go (default: OUT with .rejects.csv)")
    sc.add_argument("--strict", action="store_true", help="stop at the first row that fails validation")
    sc.add_argument("--report", help="write the batch report (counts, notices, drift) as JSON here")
    sc.add_argument("--key", help=KEY_HELP)
    sc.add_argument("--partner", help="the partner's name for a vault's audit trail (default: the file's stem)")
    sc.add_argument("--audit", help="hash-chained audit log to append the access and the batch to "
                    "(default for a vault: <partner>.audit.jsonl beside it)")
    sc.add_argument("--purpose", default="score", help="the purpose recorded for the batch (default: score)")
    sc.add_argument("--sep", choices=[",", ";", "\t", "|"], help="CSV separator (default: sniffed)")
    sc.add_argument("--decimal", choices=[".", ","], help="CSV decimal mark (default: '.', or sniffed)")
    sc.add_argument("--force", action="store_true", help="replace --out (and its rejects file) if they exist")
    _common(sc)
    sc.set_defaults(func=_score)

    sv = sub.add_parser("serve", help="serve a model over HTTP: POST /score, GET /health, GET /model, /docs")
    sv.add_argument("model", help="the model artefact (a run's model.pt)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    sv.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM) …")
    sv.add_argument("--tls-key", help="… and its private key (PEM)")
    sv.add_argument("--audit", help="append every request (purpose, PDs, decisions; never applicant data) to this "
                    "hash-chained audit log")
    sv.add_argument("--purposes", help="comma-separated purposes a request may state (default: any)")
    _common(sv)
    sv.set_defaults(func=_serve)

    md = sub.add_parser("model", help="model artefacts: inspect")
    mds = md.add_subparsers(dest="model_command", required=True)
    ins = mds.add_parser("inspect", help="print a model's id (content hash, verified), run, partners, privacy")
    ins.add_argument("model")
    ins.add_argument("--json", action="store_true", help="print JSON")
    ins.set_defaults(func=_inspect)


__all__ = ["register"]
