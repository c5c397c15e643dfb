"""`flwr-clientapp` on a fedcredit partner: the app bundle's signature is checked before Flower
installs it or runs any of its code.

`fedcredit partner start` puts a `flwr-clientapp` script that calls `main()` first on the
SuperNode's PATH (Flower's SuperExec starts the ClientApp process by that name), and passes
the partner's trusted app-signing keys in `FEDCREDIT_TRUSTED_APP_KEYS` (files, os.pathsep
separated). Everything else is Flower's own `flwr-clientapp`: the check wraps its
`install_from_fab`, so a refused bundle is never unpacked or imported, Flower answers the
coordinator with an error reply, the reason goes to the node's log (one line, no traceback) and
one JSON line per decision to `FEDCREDIT_APP_LOG`. With no trusted key
configured every bundle is refused (fail closed).

Flower's `install_from_fab` unpacks the whole bundle into a temporary folder and checks each file's
hash on EVERY message, only to find it installed already (0.1–0.4 s of a ClientApp whose SecAgg+
stage work is 0.3–0.6 s). `install_once` asks Flower once per bundle: the same bytes (same SHA-256)
give the same answer, so the installed folder is remembered under FLWR_HOME/apps/INSTALLED_DIR and
reused while it exists. The signature is still checked on every message, before that.

The ClientApp pulls its message's parts (objects) from the SuperNode, which may still be pulling
them from the SuperLink (Flower's SuperExec can start the ClientApp before the node has stored them);
Flower 1.42 asks again for a missing part after 1 s, doubling
(`flwr.supercore.inflatable.inflatable_utils.pull_and_inflate_object_from_tree`, `initial_backoff`):
measured, that second was half of a SecAgg+ training stage's ClientApp. `main()` makes the runtime's
function ask again after `supernode_launcher.OBJECT_RETRY` seconds (cap, tries and time limit unchanged).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ENV_TRUSTED = "FEDCREDIT_TRUSTED_APP_KEYS"
ENV_LOG = "FEDCREDIT_APP_LOG"
ENV_PARTNER = "FEDCREDIT_PARTNER"
INSTALLED_DIR = ".fedcredit-installed"   # one file per bundle installed, named by its SHA-256, holding its folder


def _record(event: dict) -> None:
    path = os.environ.get(ENV_LOG)
    if not path:
        return
    line = json.dumps({"time": datetime.now(UTC).isoformat(timespec="seconds"),
                       "partner": os.environ.get(ENV_PARTNER, ""), **event}, sort_keys=True)
    with open(path, "a", encoding="utf-8") as f:      # one short line: appends do not interleave
        f.write(line + "\n")


def check(fab, run) -> None:
    """Raise AppRejected unless a trusted key signed `fab` (a Flower Fab) for `run`."""
    from fedcredit.credit.errors import InputError
    from fedcredit.protection.app_signing import RUN_CONFIG_KEY, AppRejected, load_trusted_keys, verify_bundle

    paths = [Path(p) for p in os.environ.get(ENV_TRUSTED, "").split(os.pathsep) if p]
    base = {"run_id": run.run_id, "fab_id": run.fab_id, "fab_sha256": fab.hash_str}
    try:
        if not paths:
            raise AppRejected("this partner has no trusted app-signing key (trusted_app_keys in [node]): "
                              "every app is refused")
        try:
            trusted = load_trusted_keys(paths)
        except InputError as exc:
            raise AppRejected(f"the trusted app-signing keys cannot be read: {exc}") from None
        sig = verify_bundle(fab.content, str(run.override_config.get(RUN_CONFIG_KEY, "") or ""), trusted)
    except AppRejected as exc:
        _record({**base, "decision": "refused", "reason": str(exc)})
        print(f"fedcredit: REFUSED app {run.fab_id!r} of run {run.run_id}: {exc}", file=sys.stderr, flush=True)
        raise
    _record({**base, "decision": "accepted", "key_id": sig.key_id, "signed_at": sig.signed_at})


def install_once(install: Callable[..., Path], content: bytes, install_dir: Path | None = None, **kwargs) -> Path:
    """`install(content, install_dir, **kwargs)` (Flower's `install_from_fab`) the first time these bytes
    are installed here; after that the folder it returned, while it exists (see the module's text)."""
    from flwr.supercore.utils import get_flwr_home

    from fedcredit.credit.atomic import atomic_write_text

    marker = (install_dir or get_flwr_home()) / "apps" / INSTALLED_DIR / hashlib.sha256(content).hexdigest()
    try:
        installed = Path(marker.read_text(encoding="utf-8").strip())
        if installed.is_dir():
            return installed
    except OSError:
        pass
    installed = Path(install(content, install_dir, **kwargs))
    marker.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, str(installed))
    return installed


class _NoTraceback(logging.Filter):
    """A refused bundle is a decision, not a crash: Flower logs it without a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        from fedcredit.protection.app_signing import AppRejected

        if record.exc_info and isinstance(record.exc_info[1], AppRejected):
            record.exc_info, record.exc_text = None, None
        return True


def prompt_object_pulls(runtime) -> bool:
    """The ClientApp runtime's `pull_and_inflate_object_from_tree` asks again for a missing part after
    OBJECT_RETRY seconds (see the module's text); False (nothing changed) if it is not Flower's own."""
    from flwr.supercore.inflatable import inflatable_utils

    from fedcredit.clients.supernode_launcher import OBJECT_RETRY

    if getattr(runtime, "pull_and_inflate_object_from_tree", None) is not \
            inflatable_utils.pull_and_inflate_object_from_tree:
        return False
    runtime.pull_and_inflate_object_from_tree = functools.partial(
        inflatable_utils.pull_and_inflate_object_from_tree, initial_backoff=OBJECT_RETRY)
    return True


def main() -> None:
    from flwr.supernode.cli.flwr_clientapp import flwr_clientapp
    from flwr.supernode.runtime import run_clientapp as runtime

    pull, install = runtime.pull_task_input, runtime.install_from_fab
    received: list = []

    def pull_remembered(client):
        message, context, run, fab = received[:] = pull(client)
        return message, context, run, fab

    def install_checked(content: bytes, install_dir: Path | None = None, **kwargs):
        # Checked here, after the message is pulled, so that Flower answers the coordinator with an
        # error reply; before anything of the bundle is unpacked or imported.
        if not received or received[3].content is not content:
            raise RuntimeError("fedcredit: the bundle to install is not the one received; refused")
        check(received[3], received[2])
        return install_once(install, content, install_dir, **kwargs)

    logging.getLogger("flwr").addFilter(_NoTraceback())
    runtime.pull_task_input, runtime.install_from_fab = pull_remembered, install_checked
    prompt_object_pulls(runtime)
    flwr_clientapp()


def launcher_script() -> str:
    """The `flwr-clientapp` script text for this interpreter."""
    return f"#!{sys.executable}\nfrom fedcredit.clients.warm_start import launch\nraise SystemExit(launch())\n"


if __name__ == "__main__":
    main()
