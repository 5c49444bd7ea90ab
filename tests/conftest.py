"""Fixtures for unit and integration tests alike, and the one policy for external tools."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import TOOLS, find_tool, in_ci, tool_names

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


# --------------------------------------------------------------------------------------------------
# External tools. A test that runs one says so with `@pytest.mark.tool("name", ...)`: where a tool is
# missing the test skips, naming the command that installs it, and under CI=true it fails instead
# (CI installs every tool; a skip there would hide a check that never ran). In a unit test the mark
# also lets the test start that tool (tests/unit/conftest.py blocks every other process). The
# `tools` fixture gives the argv that starts each of them.


def _missing(item: pytest.Item) -> str | None:
    """Why ``item`` cannot run: the first tool it names that is not installed, and how to install it."""
    return next((f"{name} is not installed: {TOOLS[name][1]}" for name in tool_names(item) if find_tool(name) is None), None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if in_ci():
        return  # each fails in its setup instead
    for item in items:
        if item.get_closest_marker("tool") and (why := _missing(item)):
            item.add_marker(pytest.mark.skip(reason=why))  # reported at the test, with the install command


def pytest_runtest_setup(item: pytest.Item) -> None:
    if in_ci() and item.get_closest_marker("tool") and (why := _missing(item)):
        pytest.fail(f"{why} (CI=true: a missing tool fails rather than skips)", pytrace=False)


@pytest.fixture
def tools(request: pytest.FixtureRequest) -> dict[str, list[str]]:
    """Tool name → the argv that starts it, for each tool the test's `tool` marks name."""
    found = {name: find_tool(name) for name in tool_names(request.node)}
    return {name: argv for name, argv in found.items() if argv is not None}
