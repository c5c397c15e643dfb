"""`fedcredit node-key new | rotate` (a partner's SuperNode key) and `fedcredit server register |
unregister` (which keys the coordinator's running SuperLink admits): making, rotating and retiring
node keys. The procedure is in docs/deployment.md, "Rotating a node key".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fedcredit.cli.deploy import _say


def _node_key_new(args: argparse.Namespace) -> int:
    from fedcredit.protection.tls import new_node_key

    files = new_node_key(args.path, comment=args.comment or "")
    _say(f"wrote {files.private_key} (node private key, mode 600: it stays here; [node] auth_key)\n"
         f"      {files.public_key} (public key: send it to the coordinator, who sets it as this partner's "
         "public_key)")
    return 0


def _node_key_rotate(args: argparse.Namespace) -> int:
    from fedcredit.protection.node_keys import commit_rotation, start_rotation

    path = args.path
    if not args.commit:
        r = start_rotation(path, comment=args.comment)
        _say(f"wrote {r.next_key} (the next node private key, mode 600: it stays here)\n"
             f"      {r.public_key} (its public key, {r.fingerprint})\n"
             f"{path} is untouched and the SuperNode keeps using it. Next:\n"
             f"  1. send {r.public_key} to the coordinator and confirm its fingerprint {r.fingerprint} by phone; "
             "they register it beside the current key (`fedcredit server register --config coordinator.toml NAME "
             "FILE.pub`)\n"
             f"  2. once they have: `fedcredit node-key rotate {path} --commit`, then, between runs, restart the "
             "SuperNode: `fedcredit partner stop --config partner.toml; fedcredit partner start --config "
             "partner.toml --detach`\n"
             "  3. tell the coordinator, who unregisters the old key (`fedcredit server unregister`)")
        return 0
    r = commit_rotation(path)
    _say(f"{r.key} is now the new key ({r.fingerprint}); the previous one is {r.old_key} ({r.old_fingerprint})\n"
         "Next: between runs, restart the SuperNode so it uses the new key: `fedcredit partner stop --config "
         "partner.toml; fedcredit partner start --config partner.toml --detach`; then ask the coordinator to "
         f"unregister the old key {r.old_fingerprint}; then delete {r.old_key} and {r.old_key}.pub")
    return 0


def _server_register(args: argparse.Namespace) -> int:
    from fedcredit.deployment.config import read_coordinator_settings
    from fedcredit.deployment.node_registry import register_key

    register_key(read_coordinator_settings(args.config), args.name, args.public_key, _say)
    return 0


def _server_unregister(args: argparse.Namespace) -> int:
    from fedcredit.deployment.config import read_coordinator_settings
    from fedcredit.deployment.node_registry import unregister_key
    from fedcredit.deployment.superlink import list_nodes

    settings = read_coordinator_settings(args.config)
    unregister_key(settings, args.name, pub=args.key, node_id=args.node_id or "", out=_say,
                   online=lambda: {str(n.get("node-id")): str(n.get("status")) for n in list_nodes(settings)})
    return 0


def register_node_key(sub: argparse._SubParsersAction) -> None:
    node_key = sub.add_parser("node-key", help="make or rotate a SuperNode authentication key pair")
    nk_sub = node_key.add_subparsers(dest="node_key_command", required=True)
    nk_new = nk_sub.add_parser("new", help="write PATH (private, mode 600) and PATH.pub (never overwrites)")
    nk_new.add_argument("path", metavar="PATH")
    nk_new.add_argument("--comment", help="text after the public key (e.g. the partner's name)")
    nk_new.set_defaults(func=_node_key_new)
    nk_rot = nk_sub.add_parser("rotate", help="write the next key pair PATH.next(.pub) beside PATH (untouched); "
                               "with --commit, once the coordinator registered it: make it PATH, keep PATH.old")
    nk_rot.add_argument("path", metavar="PATH", type=Path, help="the node's current private key ([node] auth_key)")
    nk_rot.add_argument("--commit", action="store_true", help="swap in PATH.next (registered by the coordinator)")
    nk_rot.add_argument("--comment", help="text after the new public key (default: the current key's)")
    nk_rot.set_defaults(func=_node_key_rotate)


def register_server_keys(server_sub: argparse._SubParsersAction) -> None:
    s_reg = server_sub.add_parser("register", help="admit one more key for a partner on the running SuperLink "
                                  "(its next key during a rotation)")
    s_reg.add_argument("--config", required=True, type=Path, help="coordinator scenario TOML with [coordinator]")
    s_reg.add_argument("name", metavar="NAME", help="the partner's name in the config")
    s_reg.add_argument("public_key", metavar="PUBFILE", type=Path, help="the partner's node public key (.pub)")
    s_reg.set_defaults(func=_server_register)
    s_unreg = server_sub.add_parser("unregister", help="refuse one of a partner's keys from now on, for good")
    s_unreg.add_argument("--config", required=True, type=Path, help="coordinator scenario TOML with [coordinator]")
    s_unreg.add_argument("name", metavar="NAME", help="the partner's name in the config")
    which = s_unreg.add_mutually_exclusive_group(required=True)
    which.add_argument("--key", type=Path, metavar="PUBFILE", help="the public key to retire")
    which.add_argument("--node-id", metavar="ID", help="the node id to retire (as `server status` lists it)")
    s_unreg.set_defaults(func=_server_unregister)
