"""One small trained model per test session (a second to train), copied per test when altered."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scoring.models import train_model


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.pt"
    train_model(path)
    return path


@pytest.fixture(scope="session")
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mlp") / "model.pt"
    train_model(path, model="mlp")
    return path
