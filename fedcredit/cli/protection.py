"""`fedcredit keys|vault|audit …`: key files, encrypted partner datasets, the access audit trail."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from fedcredit.cli.progress import ProgressView
from fedcredit.credit.errors import InputError

if TYPE_CHECKING:
    from fedcredit.protection.keys import KeySource
    from fedcredit.protection.vault import VaultInfo

KEY_HELP = "KEYFILE, env:NAME (base64 key) or passphrase-env:NAME"
FORCE_HELP = "replace OUT if it exists (it is destroyed: it may be someone's only copy)"


def _key(spec: str | None) -> KeySource | None:
    from fedcredit.protection.keys import load_key

    return load_key(spec) if spec else None


def _print_info(info: VaultInfo, path: str) -> None:
    print(f"vault {path}\n  version {info.version}  key id {info.key_id}  kdf {info.kdf}\n"
          f"  plaintext {info.plaintext_size} bytes in {info.segments} segment(s) of {info.segment_size}\n"
          f"  fingerprint {info.fingerprint}\n  created {info.created}")


def _keys_new(args: argparse.Namespace) -> int:
    from fedcredit.protection.keys import new_key_file

    key = new_key_file(args.keyfile)
    print(f"wrote {args.keyfile} (key id {key.key_id}, mode 600): keep it secret and back it up — "
          "vaults wrapped with it cannot be opened without it")
    return 0


def _encrypt(args: argparse.Namespace) -> int:
    from fedcredit.protection.vault import encrypt_file

    key = _key(args.key)
    if key is None:
        raise InputError(f"no key given: pass --key {KEY_HELP} (make a key file with `fedcredit keys new FILE`)")
    with ProgressView() as view:
        info = encrypt_file(args.src, args.dst, key, overwrite=args.force,
                            on_progress=view.stream("vault encrypt", "bytes"))
    _print_info(info, args.dst)
    return 0


def _decrypt(args: argparse.Namespace) -> int:
    from fedcredit.protection.vault import decrypt_file

    key = _key(args.key)
    with ProgressView() as view:
        info = decrypt_file(args.src, args.dst, key, overwrite=args.force,
                            on_progress=view.stream("vault decrypt", "bytes"))
    print(f"wrote {args.dst}: {info.plaintext_size} bytes, fingerprint {info.fingerprint}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from fedcredit.protection.vault import inspect

    _print_info(inspect(args.file), args.file)
    return 0


def _rekey(args: argparse.Namespace) -> int:
    from fedcredit.protection.vault import inspect, rekey

    if not args.new_key:
        raise InputError(f"no new key given: pass --new-key {KEY_HELP}")
    before = inspect(args.file)
    old, new = _key(args.key), _key(args.new_key)
    with ProgressView() as view:
        info = rekey(args.file, old, new, on_progress=view.stream("vault rekey", "bytes"))
    print(f"rekeyed {args.file}: key id {before.key_id} -> {info.key_id} (data not re-encrypted)")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from fedcredit.protection.audit import verify

    check = verify(args.log, head_file=args.head)
    if not check.ok:
        print(f"fedcredit: error: {args.log}: line {check.first_bad_line}: {check.reason}", file=sys.stderr)
        return 1
    print(f"{args.log}: intact, {check.lines} event(s); head {check.head or '-'}")
    return 0


def _audit_show(args: argparse.Namespace) -> int:
    from fedcredit.protection.audit import show

    print(show(args.log))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="make key-encryption key files")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    new = keys_sub.add_parser("new", help="write a new random key file (mode 600, never overwrites)")
    new.add_argument("keyfile")
    new.set_defaults(func=_keys_new)

    vault = sub.add_parser("vault", help="encrypt, decrypt, inspect and rekey partner datasets")
    vault_sub = vault.add_subparsers(dest="vault_command", required=True)
    enc = vault_sub.add_parser("encrypt", help="encrypt a data file into a vault (never overwrites OUT "
                               "unless --force)")
    enc.add_argument("src", metavar="IN")
    enc.add_argument("dst", metavar="OUT")
    enc.add_argument("--key", help=KEY_HELP)
    enc.add_argument("--force", action="store_true", help=FORCE_HELP)
    enc.set_defaults(func=_encrypt)
    dec = vault_sub.add_parser("decrypt", help="decrypt a vault to a file (the data owner's own use; never "
                               "overwrites OUT unless --force)")
    dec.add_argument("src", metavar="IN")
    dec.add_argument("dst", metavar="OUT")
    dec.add_argument("--key", help=KEY_HELP)
    dec.add_argument("--force", action="store_true", help=FORCE_HELP)
    dec.set_defaults(func=_decrypt)
    ins = vault_sub.add_parser("inspect", help="show a vault's header (no key needed)")
    ins.add_argument("file", metavar="FILE")
    ins.set_defaults(func=_inspect)
    rek = vault_sub.add_parser("rekey", help="re-wrap a vault's data key under a new key")
    rek.add_argument("file", metavar="FILE")
    rek.add_argument("--key", help=f"the current key: {KEY_HELP}")
    rek.add_argument("--new-key", help=f"the new key: {KEY_HELP}")
    rek.set_defaults(func=_rekey)

    audit = sub.add_parser("audit", help="check and read a data-access audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    ver = audit_sub.add_parser("verify", help="check the hash chain; names the first bad line")
    ver.add_argument("log", metavar="LOG")
    ver.add_argument("--head", help="head file kept by the log's writer (detects removed last events)")
    ver.set_defaults(func=_audit_verify)
    sho = audit_sub.add_parser("show", help="print the log as a table")
    sho.add_argument("log", metavar="LOG")
    sho.set_defaults(func=_audit_show)
