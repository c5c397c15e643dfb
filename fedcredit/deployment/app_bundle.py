"""The Flower app bundle (FAB) that `flwr run` sends to every partner, built here byte for byte as
Flower builds it (its own builder), so that `fedcredit app sign` signs exactly what a partner
receives and `fedcredit server start` can check a signature against the bundle as it is now.
Keys, signatures and the partner-side check live in `fedcredit.protection.app_signing`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from fedcredit.protection.app_signing import AppSignature, sign_digest


def build_bundle(project: str | Path) -> bytes:
    """The FAB that `flwr run <project>` builds and sends, byte for byte (Flower's own builder).

    Flower walks the whole folder (a virtualenv included: seconds) and then keeps what
    `fab-include` names; when every `fab-include` pattern starts with a folder, only the
    top-level files and those folders are walked, which selects the same files."""
    import tomllib
    import warnings

    from flwr.cli.build import build_fab_from_disk, build_fab_from_files
    from flwr.cli.utils import collect_files

    root = Path(project).expanduser().resolve()
    include = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8")).get("tool", {}).get(
        "flwr", {}).get("app", {}).get("fab-include")
    by_folder = include and all("/" in p and not any(c in p.split("/")[0] for c in "*?[!") for p in include)
    with warnings.catch_warnings():          # pathspec's deprecation notices, once per pattern
        warnings.simplefilter("ignore", DeprecationWarning)
        if not by_folder:
            return build_fab_from_disk(root)
        folders = {p.split("/")[0] for p in include}
        files = {f.name: f for f in root.iterdir() if f.is_file() and not f.is_symlink()}
        for folder in sorted(folders):
            files.update((f"{folder}/{rel}", path) for rel, path in collect_files(root / folder).items())
        return build_fab_from_files(files)[0]


def app_digest(project: str | Path) -> str:
    """SHA-256 (hex) of the bundle built from `project`."""
    return hashlib.sha256(build_bundle(project)).hexdigest()


def sign_app(key_path: str | Path, project: str | Path, *, now: datetime | None = None) -> AppSignature:
    """Sign the bundle built from `project` with the Ed25519 key at `key_path`."""
    return sign_digest(key_path, app_digest(project), now=now)
