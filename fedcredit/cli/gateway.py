"""`fedcredit certs renew` and `fedcredit server reload-cert`: a new server certificate from the
consortium's existing CA, then served on the public port by a new Fleet gateway that takes over
from the old one without refusing a connection. Partners have nothing to do (the CA is unchanged).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fedcredit.credit.errors import InputError


def _certs_renew(args: argparse.Namespace) -> int:
    from fedcredit.deployment.config import read_coordinator_settings
    from fedcredit.protection.tls_renewal import renew_server_certificate

    settings = read_coordinator_settings(args.config)
    source = f"{settings.source} [coordinator]"
    for name in ("ca_cert", "server_cert", "server_key"):
        if getattr(settings, name) is None:
            raise InputError("missing: the renewal replaces the server certificate and key named here", source=source,
                             field=name)
    new = renew_server_certificate(settings.ca_cert, args.ca_key, settings.server_cert, settings.server_key,
                                   days=args.days, sans=args.san, source=source)
    print(f"renewed {new.server_cert} (serial {new.serial:x}, valid to {new.not_after:%Y-%m-%d}; names: "
          f"{', '.join(new.sans)})\n        {new.server_key} (new key, mode 600)\n"
          f"kept the old pair (valid to {new.old_not_after:%Y-%m-%d}) as {new.backup_cert} and {new.backup_key}\n"
          f"next: `fedcredit server reload-cert --config {settings.source}` (the Fleet gateway serves it without "
          "refusing a connection; partners have nothing to do, the CA is unchanged); put the CA key offline again")
    return 0


def _server_reload_cert(args: argparse.Namespace) -> int:
    from fedcredit.cli.deploy import _say
    from fedcredit.deployment import gateway_service as gs
    from fedcredit.deployment.config import read_coordinator_settings

    gs.reload_certificate(read_coordinator_settings(args.config), wait=args.wait, out=_say)
    return 0


def register_renew(certs: argparse.ArgumentParser) -> None:
    """`certs renew` (the plain `certs --out DIR` still makes a new CA and server certificate)."""
    certs_sub = certs.add_subparsers(dest="certs_command", required=False)
    renew = certs_sub.add_parser("renew", help="replace the coordinator's server certificate and key by new ones "
                                 "from the same CA (old pair kept as .bak; partners need nothing)")
    renew.add_argument("--config", required=True, type=Path, help="coordinator scenario TOML with [coordinator] "
                       "(its ca_cert, server_cert, server_key)")
    renew.add_argument("--ca-key", required=True, type=Path, help="the CA's private key (ca.key, kept offline)")
    renew.add_argument("--days", type=int, default=365, help="lifetime of the new certificate (default %(default)s)")
    renew.add_argument("--san", action="append", metavar="DNS:host|IP:addr",
                       help="the names it certifies, repeatable (default: those of the current certificate)")
    renew.set_defaults(func=_certs_renew)


def register_reload(server_sub: argparse._SubParsersAction) -> None:
    reload = server_sub.add_parser("reload-cert", help="serve the renewed server certificate on the public port "
                                   "without refusing a connection (a new Fleet gateway takes over from the old)")
    reload.add_argument("--config", required=True, type=Path)
    reload.add_argument("--wait", type=float, default=30.0,
                        help="seconds to wait for the new gateway before giving up (default %(default)s)")
    reload.set_defaults(func=_server_reload_cert)
