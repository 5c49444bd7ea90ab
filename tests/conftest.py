"""Fixtures for unit and integration tests alike."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def project_dir() -> Iterator[Path]:
    """A scratch folder inside this checkout, removed afterwards: the templates, smoke suites and
    overlays a matrix names must lie inside its project (README "Security"), which a tmp_path
    is not."""
    folder = ROOT / "tests" / "scratch" / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
