"""Helpers shared by the unit and integration tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT.parent / "shared" / "reference" / "junit-10.xsd"
# The schema ships beside the checkout (shared/reference); a standalone clone keeps a copy here.
if not SCHEMA.is_file():
    SCHEMA = Path(__file__).resolve().parent / "junit-10.xsd"


def xmllint_schema(path: Path) -> None:
    """Validate a JUnit report against the Jenkins xUnit schema CI viewers read."""
    xmllint = shutil.which("xmllint")
    if xmllint is None:
        pytest.fail("xmllint is needed to check reports against the JUnit schema: apt-get install libxml2-utils")
    out = subprocess.run([xmllint, "--noout", "--schema", str(SCHEMA), str(path)], capture_output=True, text=True)
    assert out.returncode == 0, f"{path} does not validate against {SCHEMA.name}:\n{out.stderr}"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
