"""A real Flower deployment: coordinator and partner files (config), process supervision (processes),
Flower's executables (flower) and the coordinator's and partners' Flower processes (superlink,
supernode), the node registry, the Fleet gateway."""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]      # the Flower app: pyproject.toml + fedcredit/
