from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests are pure: any stray call to a Docker engine fails loudly instead of passing."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/unit-tests-must-not-use-docker.sock")
