"""Targets the warm-start tests give the fork server instead of Flower's ClientApp."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def echo() -> int:
    print(json.dumps({"argv": sys.argv, "probe": os.environ.get("WARM_PROBE"), "cwd": os.getcwd(),
                      "pid": os.getpid(), "torch_loaded": "torch" in sys.modules}), flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    return 3


def sleeper() -> int:
    Path(os.environ["WARM_PIDFILE"]).write_text(str(os.getpid()))
    time.sleep(60)
    return 0
