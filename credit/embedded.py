"""The embedded default: the synthetic consortium, generated once into the user's cache.

Generation is deterministic (seeded), so every process that needs the default — the
simulation driver, a ServerApp under `flwr run .`, each ClientApp — finds the same files.
"""

from __future__ import annotations

from pathlib import Path

from credit.synthetic import GENERATOR_VERSION, default_consortium, write_consortium

CACHE = Path.home() / ".cache" / "fedcredit"
DEFAULT_SEED = 0


def default_scenario_path(cache: Path = CACHE) -> Path:
    """Path of the default scenario.toml, generating the consortium on first use."""
    folder = cache / f"synthetic-v{GENERATOR_VERSION}-seed{DEFAULT_SEED}"
    scenario = folder / "scenario.toml"
    if not scenario.is_file():
        write_consortium(default_consortium(seed=DEFAULT_SEED), folder, replace=True)   # our own cache
    return scenario
